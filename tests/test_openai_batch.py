"""The OpenAI batch client, through the real SDK, against the fake's Files and Batches API.

Batches move on only when polled (``tests/fakebatch.py``), so every test drives them with
a counted number of ``retrieve`` calls and never waits on a timer.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import socket
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import pytest
from fakeapi import FakeImagesAPI
from images import png
from openai import AsyncOpenAI
from PIL import Image

from pipeline.jobs import ImageInput, ImageRequest, ImageResult, ProviderFailure
from pipeline.jobs.batch import (
    READ_DEADLINE_CODE,
    BatchInfo,
    BatchLimits,
    BatchLine,
    BatchLineTooLarge,
    BatchNotFound,
    chunk_lines,
)
from pipeline.providers.openai_batch import OpenAIBatchClient
from pipeline.providers.openai_batch_info import batch_info
from pipeline.providers.openai_batch_io import LongLine, long_line_result, request_line, split_lines
from pipeline.providers.openai_http import CappedAsyncClient
from pipeline.providers.redaction import KEY_MARKER, Redactor

KEY = "sk-proj-BatchSECRETkey0123456789abcdef"
MODEL = "gpt-image-2"
T = TypeVar("T")


def drive(
    api: FakeImagesAPI | str, work: Callable[[OpenAIBatchClient], Awaitable[T]], **kw: Any
) -> T:
    """Run ``work`` with a batch client on the fake, or on a base URL (SDK retries off, as
    in production)."""
    base_url = api if isinstance(api, str) else api.base_url

    async def go() -> T:
        sdk = AsyncOpenAI(
            base_url=base_url, api_key=KEY, max_retries=0, http_client=CappedAsyncClient()
        )
        client = OpenAIBatchClient(sdk, **{"deadline_s": 30, **kw})
        try:
            return await work(client)
        finally:
            await client.aclose()

    return asyncio.run(go())


def gen(prompt: str, **params: Any) -> ImageRequest:
    return ImageRequest(
        "generate", MODEL, prompt, {"size": "1024x1024", "quality": "low", **params}
    )


def edit(image: bytes, mask: bytes | None = None, prompt: str = "make it blue") -> ImageRequest:
    return ImageRequest(
        "edit",
        MODEL,
        prompt,
        {"size": "1024x1024", "quality": "low"},
        images=(ImageInput("in.png", image, "image/png"),),
        mask=ImageInput("mask.png", mask, "image/png") if mask else None,
    )


async def submit(
    client: OpenAIBatchClient, requests: dict[str, ImageRequest], journal: str = "j-1"
) -> tuple[BatchInfo, list[str]]:
    lines = [await client.prepare(cid, request) for cid, request in requests.items()]
    info = await client.submit(lines, {"assetpipe_journal": journal})
    return info, [line.custom_id for line in lines]


async def poll(
    client: OpenAIBatchClient, batch_id: str, statuses: list[str] | None = None
) -> BatchInfo:
    """Retrieve until the batch is terminal (at most 20 polls), noting each status."""
    for _ in range(20):
        info = await client.retrieve(batch_id)
        if statuses is not None:
            statuses.append(info.status)
        if info.is_terminal:
            return info
    raise AssertionError("the batch never finished")


async def collect(
    client: OpenAIBatchClient, info: BatchInfo, expected: Sequence[str] | None
) -> list[tuple[str, ImageResult | ProviderFailure]]:
    return [item async for item in client.results(info, expected)]


def run_batch(
    api: FakeImagesAPI, requests: dict[str, ImageRequest], **kw: Any
) -> tuple[BatchInfo, list[tuple[str, ImageResult | ProviderFailure]]]:
    """Submit ``requests`` as one batch, poll it to the end and collect every result."""

    async def work(client: OpenAIBatchClient) -> tuple[BatchInfo, list[Any]]:
        info, order = await submit(client, requests)
        done = await poll(client, info.id)
        return done, await collect(client, done, order)

    return drive(api, work, **kw)


def failures(results: list[tuple[str, Any]]) -> dict[str, ProviderFailure]:
    return {cid: r for cid, r in results if isinstance(r, ProviderFailure)}


def images(results: list[tuple[str, Any]]) -> dict[str, ImageResult]:
    return {cid: r for cid, r in results if isinstance(r, ImageResult)}


# --- the happy path -----------------------------------------------------------------------


def test_generations_run_through_the_batch_lifecycle_and_come_back_out_of_order(
    api: FakeImagesAPI,
) -> None:
    """Six generations: one input file, one batch that goes validating -> in_progress ->
    finalizing -> completed over counted polls, and six images matched by custom_id from a
    shuffled output file, each billed once and none through the synchronous endpoint."""
    requests = {f"gen-{i}": gen(f"a fox number {i}") for i in range(6)}
    statuses: list[str] = []

    async def work(client: OpenAIBatchClient) -> tuple[BatchInfo, list[Any]]:
        info, order = await submit(client, requests)
        assert info.status == "validating"
        assert info.metadata == {"assetpipe_journal": "j-1"}
        done = await poll(client, info.id, statuses)
        return done, await collect(client, done, order)

    done, results = drive(api, work)
    assert statuses == [
        "validating",
        "in_progress",
        "in_progress",
        "finalizing",
        "completed",
    ]
    assert (done.counts.total, done.counts.completed, done.counts.failed) == (6, 6, 0)
    assert done.endpoint == "generate" and done.model == MODEL and done.error_file_id is None
    got = images(results)
    assert sorted(got) == sorted(requests)
    assert [cid for cid, _ in results] != list(requests)  # the output file was shuffled
    for result in got.values():
        assert Image.open(io.BytesIO(result.data)).size == (1024, 1024)
        assert result.output_format == "png" and result.quality == "low"
        assert result.usage is not None and result.usage.output_tokens == 200
    stats = api.batch.stats()
    assert stats["sync_image_requests"] == 0
    assert stats["billed_by_custom_id"] == dict.fromkeys(requests, 1)
    assert (stats["batches_created"], stats["files_uploaded"]) == (1, 1)
    source = api.batch.files[done.input_file_id or ""]
    lines = [json.loads(line) for line in source.data.splitlines()]
    assert [line["custom_id"] for line in lines] == list(requests)
    assert lines[0] == {
        "custom_id": "gen-0",
        "method": "POST",
        "url": "/v1/images/generations",
        "body": {"model": MODEL, "prompt": "a fox number 0", "size": "1024x1024", "quality": "low"},
    }


def test_edits_go_as_json_with_data_urls_and_large_inputs_by_file_id(api: FakeImagesAPI) -> None:
    """Edits use the JSON body: small inputs and masks inline as data URLs, inputs over the
    inline limit uploaded once (purpose vision) and referenced by file_id; all succeed and
    count their input images."""
    small, big = png(1024, 1024), png(1024, 1024, (10, 20, 30, 255)) + b"\0" * 3000
    requests = {
        "edit-inline": edit(small, mask=png(1024, 1024, (0, 0, 0, 0))),
        "edit-upload-1": edit(big),
        "edit-upload-2": edit(big, prompt="make it green"),
    }

    done, results = run_batch(api, requests, inline_max_chars=len(small) * 3 // 2)
    assert sorted(images(results)) == sorted(requests)
    assert all(r.usage and r.usage.input_image_tokens == 300 for r in images(results).values())
    uploads = [f for f in api.batch.files.values() if f.purpose == "vision"]
    assert [(f.filename, f.data) for f in uploads] == [("in.png", big)]
    source = api.batch.files[done.input_file_id or ""]
    bodies = {json.loads(x)["custom_id"]: json.loads(x)["body"] for x in source.data.splitlines()}
    inline = bodies["edit-inline"]
    assert inline["images"] == [
        {"image_url": "data:image/png;base64," + base64.b64encode(small).decode()}
    ]
    assert inline["mask"]["image_url"].startswith("data:image/png;base64,")
    assert bodies["edit-upload-1"]["images"] == [{"file_id": uploads[0].id}]
    assert bodies["edit-upload-2"]["images"] == [{"file_id": uploads[0].id}]
    assert api.batch.stats()["sync_image_requests"] == 0


# --- failed lines ---------------------------------------------------------------------------


def test_both_error_line_shapes_are_classified_like_synchronous_errors(api: FakeImagesAPI) -> None:
    """Failed lines are only in the error file, as an HTTP answer in ``response.body`` or as
    a bare ``error`` object; both become the same FailureKinds as synchronous errors
    (429/5xx retryable, moderation and invalid values terminal), and only successes bill."""
    api.batch.configure(
        line_faults={
            "r429": "rate_limit",
            "r500": "server_error",
            "mod": "moderation",
            "o429": "object:rate_limit",
            "o500": "object:server_error",
            "prompt:ECHO": "echo_key",
        }
    )
    requests = {
        "ok": gen("fine"),
        "r429": gen("a"),
        "r500": gen("b"),
        "mod": gen("c"),
        "o429": gen("d"),
        "o500": gen("e"),
        "bad-size": gen("f", size="1000x1000"),
        "echo": gen("ECHO the key"),
    }

    done, results = run_batch(api, requests)
    assert sorted(images(results)) == ["ok"]
    failed = failures(results)
    shown = {c: (f.kind, f.status, f.code, f.retryable) for c, f in failed.items()}
    assert shown == {
        "r429": ("rate_limit", 429, "rate_limit_exceeded", True),
        "r500": ("server", 500, "server_error", True),
        "mod": ("moderation", 400, "moderation_blocked", False),
        "o429": ("rate_limit", None, "rate_limit_exceeded", True),
        "o500": ("server", None, "server_error", True),
        "bad-size": ("invalid_request", 400, "invalid_value", False),
        "echo": ("invalid_request", 400, "invalid_value", False),
    }
    assert failed["bad-size"].details == {"param": "size"}
    assert failed["mod"].details["moderation_details"] == {
        "moderation_stage": "input",
        "categories": ["violence"],
    }
    assert KEY not in failed["echo"].message and KEY_MARKER in failed["echo"].message
    assert (done.counts.completed, done.counts.failed) == (1, 7)
    assert api.batch.stats()["billed_by_custom_id"] == {"ok": 1}


def test_a_batch_where_every_line_failed_completes_without_an_output_file(
    api: FakeImagesAPI,
) -> None:
    """``completed`` with no output_file_id: the failures are read from the error file and
    none is dropped."""
    requests = {f"blocked-{i}": gen(f"FORBIDDEN thing {i}") for i in range(3)}

    done, results = run_batch(api, requests)
    assert done.status == "completed" and done.output_file_id is None
    assert done.error_file_id is not None
    assert {c: f.kind for c, f in failures(results).items()} == dict.fromkeys(
        requests, "moderation"
    )
    assert api.billed_images == 0


@pytest.mark.parametrize("listed", [True, False])
def test_an_expired_batch_keeps_what_finished_and_the_rest_is_retryable(
    api: FakeImagesAPI, listed: bool
) -> None:
    """An expired batch has an output file with the lines that ran; the others come back
    as retryable ``batch_expired`` failures (from the error file, or, if the server left
    them out, from the expected ids nobody answered)."""
    api.batch.configure(batch_script=["expire"], unrun_lines_in_error_file=listed)
    requests = {f"g{i}": gen(f"fox {i}") for i in range(6)}

    done, results = run_batch(api, requests)
    assert done.status == "expired"
    assert len(images(results)) == 2  # one in-progress poll ran 6 * 1 // 3 lines
    failed = failures(results)
    assert len(failed) == 4
    assert {(f.kind, f.code, f.retryable) for f in failed.values()} == {
        ("timeout", "batch_expired", True)
    }
    assert sum(api.batch.stats()["billed_by_custom_id"].values()) == 2


@pytest.mark.parametrize("listed", [True, False])
def test_cancel_goes_cancelling_then_cancelled_with_partial_output(
    api: FakeImagesAPI, listed: bool
) -> None:
    """Cancelling a running batch: ``cancelling`` for a poll, then ``cancelled``; the lines
    that ran are images, the rest retryable ``batch_cancelled`` failures whether or not the
    server lists them; cancelling a finished batch is refused (409)."""
    api.batch.configure(unrun_lines_in_error_file=listed)
    requests = {f"g{i}": gen(f"fox {i}") for i in range(6)}

    async def work(client: OpenAIBatchClient) -> tuple[list[str], BatchInfo, list[Any]]:
        info, order = await submit(client, requests)
        seen = [(await client.retrieve(info.id)).status for _ in range(2)]
        seen.append((await client.cancel(info.id)).status)
        done = await poll(client, info.id, seen)
        with pytest.raises(ProviderFailure, match="Cannot cancel a batch") as refused:
            await client.cancel(info.id)
        assert refused.value.status == 409
        return seen, done, await collect(client, done, order)

    seen, done, results = drive(api, work)
    assert seen == ["validating", "in_progress", "cancelling", "cancelling", "cancelled"]
    assert done.status == "cancelled" and len(images(results)) == 2
    assert {(f.kind, f.code) for f in failures(results).values()} == {
        ("timeout", "batch_cancelled")
    }
    assert len(failures(results)) == 4 and api.batch.stats()["cancels"] == 1


def test_a_batch_failing_validation_names_its_bad_lines(api: FakeImagesAPI) -> None:
    """A bad input file makes the batch ``failed`` with ``errors.data`` per line: those
    lines are terminal failures with the server's code, the others did not run and are
    retryable."""
    good = request_line("c1", gen("ok"))
    streaming = BatchLine(
        "c2",
        "generate",
        MODEL,
        b'{"custom_id":"c2","method":"POST","url":"/v1/images/generations",'
        b'"body":{"model":"gpt-image-2","prompt":"x","stream":true}}',
    )
    broken = BatchLine("c3", "generate", MODEL, b'{"custom_id": "c3", not json')

    async def work(client: OpenAIBatchClient) -> tuple[BatchInfo, list[Any]]:
        info = await client.submit([good, streaming, broken], {"assetpipe_journal": "j"})
        done = await poll(client, info.id)
        return done, await collect(client, done, ["c1", "c2", "c3"])

    done, results = drive(api, work)
    assert done.status == "failed" and done.output_file_id is None
    assert [(e.line, e.code) for e in done.errors] == [
        (2, "streaming_unsupported"),
        (3, "invalid_json_line"),
    ]
    shown = {c: (f.kind, f.code, f.retryable) for c, f in failures(results).items()}
    assert shown == {
        "c1": ("server", "batch_failed", True),
        "c2": ("invalid_request", "streaming_unsupported", False),
        "c3": ("invalid_request", "invalid_json_line", False),
    }
    assert api.billed_images == 0


def test_token_limit_exceeded_fails_the_batch_when_polled_and_is_retryable(
    api: FakeImagesAPI,
) -> None:
    """Too many enqueued tokens: ``batches.create`` succeeds, the first poll after
    validation says ``failed`` with ``token_limit_exceeded``, every line is a retryable
    rate-limit failure."""
    api.batch.configure(enqueued_token_limit=500)
    requests = {f"g{i}": gen(f"fox {i}") for i in range(3)}  # 3 x 200 tokens

    done, results = run_batch(api, requests)
    assert done.status == "failed"
    assert [e.code for e in done.errors] == ["token_limit_exceeded"]
    assert "Enqueued token limit reached" in done.errors[0].message
    assert {(f.kind, f.code, f.retryable) for f in failures(results).values()} == {
        ("rate_limit", "token_limit_exceeded", True)
    }


# --- finding, listing, deleting --------------------------------------------------------------


def test_list_pages_newest_first_and_find_by_metadata_recovers_a_lost_batch(
    api: FakeImagesAPI,
) -> None:
    """``batches.list`` pages with ``after``/``limit``, newest first; ``find_by_metadata``
    finds the batch carrying a journal id (a batch created just before a crash), and
    ``created_after`` stops the scan at older batches."""
    now = [1_000.0]
    api.clock = lambda: now[0]

    async def work(client: OpenAIBatchClient) -> tuple[list[BatchInfo], list[BatchInfo], Any]:
        ids = []
        for i in range(5):
            now[0] = 1_000.0 + i
            info, _ = await submit(client, {f"g{i}": gen(f"fox {i}")}, journal=f"j{i}")
            ids.append(info.id)
        listed = [info async for info in client.iter_batches(page_size=2)]
        found = await client.find_by_metadata("assetpipe_journal", "j2")
        recent = await client.find_by_metadata("assetpipe_journal", "j2", created_after=1_003)
        assert [info.id for info in listed] == ids[::-1]
        return found, recent, ids

    lists_before = api.batch.stats()["lists"]
    found, recent, ids = drive(api, work)
    assert [(b.id, b.created_at) for b in found] == [(ids[2], 1_002)]
    assert recent == []
    assert api.batch.stats()["lists"] - lists_before == 3 + 1 + 1


def test_deleted_files_and_unknown_batches_are_not_found(api: FakeImagesAPI) -> None:
    """Deleting a file twice: True, then False; collecting a batch whose output file is
    gone, or polling an unknown batch, is a ``not_found`` failure."""

    async def work(client: OpenAIBatchClient) -> tuple[bool, bool]:
        info, order = await submit(client, {"g": gen("x")})
        done = await poll(client, info.id)
        first = await client.delete_file(done.output_file_id or "")
        second = await client.delete_file(done.output_file_id or "")
        with pytest.raises(ProviderFailure, match="No such File object") as gone:
            await collect(client, done, order)
        with pytest.raises(ProviderFailure, match="No batch found") as missing:
            await client.retrieve("batch_nope")
        assert (gone.value.kind, missing.value.kind) == ("not_found", "not_found")
        return first, second

    assert drive(api, work) == (True, False)


def test_only_a_404_says_a_batch_does_not_exist(api: FakeImagesAPI) -> None:
    """Polling a batch the API answers 404 for is a BatchNotFound naming it; a 500 or a
    refused connection on the same poll is a plain retryable failure, never that."""

    async def work(client: OpenAIBatchClient) -> list[ProviderFailure]:
        seen = []
        for fault in ("ok", "server_error"):
            api.batch.configure(retrieve_faults=[fault])
            with pytest.raises(ProviderFailure) as failed:
                await client.retrieve("batch_nope")
            seen.append(failed.value)
        return seen

    async def refused(client: OpenAIBatchClient) -> ProviderFailure:
        with pytest.raises(ProviderFailure) as failed:
            await client.retrieve("batch_nope")
        return failed.value

    missing, server = drive(api, work)
    assert isinstance(missing, BatchNotFound)
    assert (missing.batch_id, missing.kind, missing.status) == ("batch_nope", "not_found", 404)
    assert not isinstance(server, BatchNotFound)
    assert (server.kind, server.status, server.retryable) == ("server", 500, True)
    with socket.socket() as sock:  # a port nothing listens on: connections are refused
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    connection = drive(dead, refused)
    assert not isinstance(connection, BatchNotFound)
    # The SDK's aiohttp transport reports a refused connection as APITimeoutError.
    assert connection.kind in ("connection", "timeout")
    assert connection.retryable


def test_a_trickled_result_file_ends_at_its_total_deadline(api: FakeImagesAPI) -> None:
    """A result file sent a byte at a time (no read ever waits long) is abandoned at its
    total deadline, one request's deadline per request of the batch; the same file read
    at a normal pace comes back whole."""
    api.configure(trickle_seconds=0.02)

    async def work(client: OpenAIBatchClient) -> list[tuple[str, Any]]:
        assert [client.file_deadline(n) for n in (0, 1, 2, 10**6)] == [0.5, 0.5, 1.0, 1.0]
        info, order = await submit(client, {"g": gen("fox")})
        done = await poll(client, info.id)
        api.batch.configure(trickle_content=True)
        with pytest.raises(ProviderFailure) as late:
            await collect(client, done, order)
        assert (late.value.kind, late.value.code) == ("timeout", READ_DEADLINE_CODE)
        assert f"batch file {done.output_file_id} did not arrive within 0.5 s" in str(late.value)
        api.batch.configure(trickle_content=False)
        return await collect(client, done, order)

    results = drive(api, work, deadline_s=0.5, limits=BatchLimits(max_lines=2))
    assert list(images(results)) == ["g"]
    assert api.batch.stats()["content_downloads"] == 2


def test_the_servers_file_limits_come_back_as_invalid_requests(api: FakeImagesAPI) -> None:
    """An input file over the server's size limit is refused at upload; one with more
    requests than a batch holds fails the batch in validation."""
    lines = [request_line(f"g{i}", gen(f"fox {i}")) for i in range(3)]

    async def work(client: OpenAIBatchClient) -> BatchInfo:
        api.batch.configure(max_file_bytes=100)
        with pytest.raises(ProviderFailure, match="File is too large") as refused:
            await client.submit(lines, {})
        assert (refused.value.kind, refused.value.status) == ("invalid_request", 400)
        api.batch.configure(max_file_bytes=200_000_000, max_lines=2)
        info = await client.submit(lines, {})
        return await poll(client, info.id)

    done = drive(api, work)
    assert done.status == "failed"
    assert [e.message for e in done.errors] == ["The input file holds 3 requests; the most is 2."]


# --- the wire is untrusted --------------------------------------------------------------------


def test_hostile_output_lines_are_refused_one_by_one(api: FakeImagesAPI) -> None:
    """A line over the cap is skipped as it streams (its request a ``bad_response``), a
    line that is not JSON likewise, a repeated line counts once, and a lost line is
    reported as missing; the good lines are unaffected."""
    api.batch.configure(
        line_faults={
            "huge": "huge_line",
            "junk": "garbage_line",
            "twice": "duplicate_line",
            "lost": "drop_line",
        },
        huge_line_bytes=3 * 1024 * 1024,
    )
    requests = {cid: gen(f"fox {cid}") for cid in ("ok", "huge", "junk", "twice", "lost")}

    _, results = run_batch(api, requests, max_line_bytes=1024 * 1024)
    assert sorted(cid for cid, _ in results) == sorted(requests)  # each exactly once
    assert sorted(images(results)) == ["ok", "twice"]
    failed = failures(results)
    assert {c: (f.kind, f.code) for c, f in failed.items()} == {
        "huge": ("bad_response", None),
        "junk": ("bad_response", None),
        "lost": ("bad_response", "batch_line_missing"),
    }
    assert "it was not read" in failed["huge"].message
    assert "not JSON" in failed["junk"].message


def test_lines_for_ids_not_in_the_batch_are_ignored(api: FakeImagesAPI) -> None:
    """With ``expected`` given, a line whose custom_id the caller did not submit in this
    batch is not reported (a server cannot inject results for other jobs)."""
    requests = {"a": gen("a"), "b": gen("b")}

    async def work(client: OpenAIBatchClient) -> list[Any]:
        info, _ = await submit(client, requests)
        done = await poll(client, info.id)
        return await collect(client, done, ["a"])

    assert [cid for cid, _ in drive(api, work)] == ["a"]


def test_a_multi_megabyte_output_file_is_streamed_line_by_line(api: FakeImagesAPI) -> None:
    """Collecting a 30+ MB output file never holds it: the peak of memory allocated while
    reading it stays under half its size (the SDK's streaming response, read in chunks)."""
    api.image_bytes = os.urandom(1024 * 1024)
    requests = {f"big-{i}": gen(f"fox {i}") for i in range(24)}

    async def work(client: OpenAIBatchClient) -> tuple[int, int, int]:
        info, order = await submit(client, requests)
        done = await poll(client, info.id)
        size = len(api.batch.files[done.output_file_id or ""].data)
        count = 0
        tracemalloc.start()
        try:
            async for _, result in client.results(done, order):
                assert isinstance(result, ImageResult) and len(result.data) == 1024 * 1024
                count += 1
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        return size, peak, count

    size, peak, count = drive(api, work, read_chunk_bytes=64 * 1024)
    assert count == 24 and size > 30 * 1024 * 1024
    assert peak < size // 2


def test_lines_are_split_from_any_chunking_and_long_ones_skipped() -> None:
    """Lines split across chunks (here one byte at a time) come out whole; a line over the
    cap comes out as its length and first bytes only; blank lines are dropped."""
    text = b'{"a":1}\n\n' + b'{"custom_id":"big","x":"' + b"y" * 50 + b'"}\n{"b":2}'

    async def chunks() -> AsyncIterator[bytes]:
        for index in range(len(text)):
            yield text[index : index + 1]

    async def read() -> list[bytes | LongLine]:
        return [line async for line in split_lines(chunks(), max_line=40)]

    got = asyncio.run(read())
    assert got[0] == b'{"a":1}' and got[2] == b'{"b":2}' and len(got) == 3
    assert isinstance(got[1], LongLine) and got[1].length == 76
    assert got[1].head.startswith(b'{"custom_id":"big"')
    refused = long_line_result(got[1], 40)
    assert refused is not None and refused[0] == "big"
    assert refused[1].kind == "bad_response"


def test_batch_objects_from_the_server_are_checked() -> None:
    """Ids that are not ids (they go into URL paths), unknown statuses and oversized or
    secret-bearing metadata are refused or cleaned before anything uses them."""
    redact = Redactor([KEY])
    good = {"id": "batch_1", "status": "completed", "created_at": 5, "request_counts": {}}
    assert batch_info(good, redact).id == "batch_1"
    with pytest.raises(ProviderFailure, match="batch id the server gave is not an id"):
        batch_info({**good, "id": "../files/file-x"}, redact)
    with pytest.raises(ProviderFailure, match="status 'exploded' is not one"):
        batch_info({**good, "status": "exploded"}, redact)
    info = batch_info(
        {
            **good,
            "metadata": {"j": f"value {KEY}", "k" * 65: "too long a key", "n": 7},
            "output_file_id": "file/../../x",
            "request_counts": {"total": -1, "completed": True, "failed": 2},
        },
        redact,
    )
    assert info.metadata == {"j": f"value {KEY_MARKER}"}
    assert info.output_file_id is None
    assert (info.counts.total, info.counts.completed, info.counts.failed) == (0, 0, 2)


# --- lines and chunks (no network) -------------------------------------------------------------


def test_request_lines_are_checked_before_anything_is_sent() -> None:
    """custom_ids are short and plain; an edit input too large for a data URL must be
    uploaded first; a batch holds one endpoint and one model."""
    with pytest.raises(ValueError, match="custom_id 'a b' is not 1 to 64"):
        request_line("a b", gen("x"))
    with pytest.raises(ValueError, match="too large for a data URL"):
        request_line("e", edit(b"\0" * 16 * 1024 * 1024))
    line = request_line("m", gen("x", moderation="low", output_format="webp"))
    assert json.loads(line.data)["body"] == {
        "model": MODEL,
        "prompt": "x",
        "size": "1024x1024",
        "quality": "low",
        "output_format": "webp",
        "moderation": "low",
    }


def test_submit_refuses_mixed_or_oversized_batches_without_uploading(api: FakeImagesAPI) -> None:
    """Mixed endpoints, too many lines, repeated custom_ids and bad metadata are caught
    before any upload."""
    gen_line = request_line("g", gen("x"))
    edit_line = request_line("e", edit(png(8, 8)))

    async def work(client: OpenAIBatchClient) -> None:
        with pytest.raises(ValueError, match="one endpoint and one model"):
            await client.submit([gen_line, edit_line], {})
        with pytest.raises(ValueError, match="custom_ids repeat"):
            await client.submit([gen_line, gen_line], {})
        with pytest.raises(ValueError, match="at most 16 string pairs"):
            await client.submit([gen_line], {f"k{i}": "v" for i in range(17)})

    async def too_many(client: OpenAIBatchClient) -> None:
        with pytest.raises(ValueError, match="2 lines; a batch holds 1"):
            await client.submit([gen_line, request_line("g2", gen("y"))], {})

    drive(api, work)
    drive(api, too_many, limits=BatchLimits(max_lines=1))
    assert api.batch.stats()["files_uploaded"] == 0


def test_chunk_lines_splits_by_endpoint_model_count_and_bytes() -> None:
    """One chunk per endpoint and model, none over the line or byte limit, order kept."""
    lines = [
        BatchLine(f"g{i}", "generate", "m1", b"x" * 9)
        for i in range(5)  # 10 bytes each
    ] + [BatchLine("e0", "edit", "m1", b"x" * 9), BatchLine("h0", "generate", "m2", b"x")]
    chunks = chunk_lines(lines, max_lines=2, max_bytes=25)
    assert [[line.custom_id for line in chunk] for chunk in chunks] == [
        ["g0", "g1"],
        ["g2", "g3"],
        ["g4"],
        ["e0"],
        ["h0"],
    ]
    assert [len(c) for c in chunk_lines(lines[:5], max_bytes=30)] == [3, 2]
    with pytest.raises(BatchLineTooLarge, match="request 'g0' takes 10 bytes"):
        chunk_lines(lines, max_bytes=9)
