"""The wire is untrusted: what a hostile or broken server can and cannot do to a build.

Every API response is untrusted input: the key is redacted wherever text from the server
goes, server-controlled waits and sizes are capped, and a failure that would lose paid
images stops new starts (docs/reliability.md). Builds run the real CLI and the real
``openai`` SDK against the fake Images API; waits are checked on the fake clock.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import random
import re
import struct
import threading
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from fakeapi import FakeImagesAPI, RequestRecord
from PIL import Image
from processes import many
from runner_kit import direct_runner

from pipeline import api as pipeline_api
from pipeline.jobs import ImageRequest, ImageResult, ProviderFailure, RateLimitInfo
from pipeline.providers.openai_http import CappedAsyncClient
from pipeline.providers.openai_provider import OpenAIProvider
from pipeline.providers.ratelimit_headers import parse_duration, rate_limit_info, retry_after
from pipeline.providers.redaction import BEARER_MARKER, KEY_MARKER, Redactor
from pipeline.runner import delivery, engine
from pipeline.runner.deps import RunConfig
from pipeline.runner.limiter import RateLimiter
from pipeline.runner.retry import MAX_RETRY_AFTER_S, RetryPolicy, give_up_note
from pipeline.store import LocalStore
from pipeline.testing import FakeClock, ScriptedProvider

SECRET_KEY = "sk-proj-Zq7SECRETkey0123456789abcdefXYZ"
SECRET_PART = b"SECRETkey0123456789abcdef"
"""A piece of the key that no redaction marker contains: it must appear nowhere."""


def manifest(project: Any) -> dict[str, Any]:
    """The manifest, parsed strictly: NaN or Infinity in it is an error, as in any other
    JSON reader than Python's."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"the manifest holds {constant}, which is not JSON")

    text = (project / "output/manifest.json").read_text("utf-8")
    return dict(json.loads(text, parse_constant=refuse))


def entries(project: Any) -> dict[str, dict[str, Any]]:
    return {e["job"]: e for e in manifest(project)["entries"]}


def files_holding(root: Path, needle: bytes) -> list[str]:
    """Every file under ``root`` (output, cache, journal, gallery...) that contains needle."""
    return sorted(
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and needle in path.read_bytes()
    )


def assert_key_nowhere(project: Any, result: Any, key: str) -> None:
    """The key, or a telling piece of it, is in no file of the project and in no output."""
    for needle in (key.encode(), SECRET_PART):
        assert files_holding(project.root, needle) == []
        assert needle.decode() not in result.out
        assert needle.decode() not in result.err


def png_claiming(width: int, height: int) -> bytes:
    """A valid, fully decodable 1-bit PNG of ``width`` x ``height`` black pixels; a
    13000x13000 one is about 20 kB on the wire and 169 megapixels once decoded."""
    row = b"\x00" + bytes(-(-width // 8))
    deflate = zlib.compressobj(9)
    idat = b"".join(deflate.compress(row) for _ in range(height)) + deflate.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


# -- 1. the key is redacted wherever server text goes ----------------------------------------


def test_a_401_echoing_the_key_leaves_it_in_no_file_and_no_output(project, run, api, monkeypatch):
    """A 401 whose message quotes the full key, with headers echoing ``Bearer <key>`` and a
    request id made of it: the build exits 1 (account stop), the message and request id are
    kept with the key replaced by the marker, and the key is in no file under the project
    (output, manifest, gallery, cache) and not on stdout or stderr."""
    monkeypatch.setenv("OPENAI_API_KEY", SECRET_KEY)
    project.gen({"specs/set.yaml": many(3)})
    api.script = ["echo_key"]
    result = run("build", "--provider", "openai", "--concurrency", "1")
    assert result.code == 1, result.err
    first = api.requests[0]
    assert first.auth == f"Bearer {SECRET_KEY}"  # the key was sent, and echoed back
    assert api.count() == 1
    got = entries(project)
    failed = got["set/a1"]
    assert failed["status"] == "failed"
    assert failed["error"]["type"] == "auth"
    assert failed["error"]["code"] == "invalid_api_key"
    assert f"Incorrect API key provided: {KEY_MARKER}." in failed["error"]["message"]
    assert f"'Authorization: {BEARER_MARKER}'" in failed["error"]["message"]
    assert failed["request_id"] == f"req_{KEY_MARKER}"
    assert {got[j]["status"] for j in ("set/a2", "set/a3")} == {"skipped"}
    assert f"Incorrect API key provided: {KEY_MARKER}" in result.err
    assert_key_nowhere(project, result, SECRET_KEY)


def test_a_moderation_body_echoing_any_key_shape_is_redacted(project, run, api, monkeypatch):
    """A key that does not look like ``sk-...`` is still redacted (the exact configured key
    is): a 400 moderation_blocked quoting it in its message, its moderation_details and a
    ``Bearer`` header line leaves it nowhere, while the other job builds and is cached with
    a request id that echoed the key too (it is kept, redacted, in the manifest and cache)."""
    key = "azure-7f3eSECRETkey0123456789abcdef"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    project.gen({"specs/set.yaml": many(2)})
    api.configure(
        script=["echo_key_moderation"],
        reply_headers={"x-request-id": f"req_{key}", "x-echo": f"Bearer {key}"},
    )
    result = run("build", "--provider", "openai", "--concurrency", "1")
    assert result.code == 1, result.err
    got = entries(project)
    assert {job: e["status"] for job, e in got.items()} == {
        "set/a1": "failed",
        "set/a2": "generated",
    }
    error = got["set/a1"]["error"]
    assert error["type"] == "moderation"
    assert error["code"] == "moderation_blocked"
    assert error["message"] == (
        "Error code: 400 - Your request was rejected by the safety system. "
        f"safety_violations=[violence] (request signed with {KEY_MARKER})"
    )
    assert error["moderation_details"] == {
        "moderation_stage": "input",
        "categories": ["violence"],
        "caller": KEY_MARKER,
        "headers": [f"Authorization: {BEARER_MARKER}"],
    }
    assert got["set/a1"]["request_id"] == f"req_{KEY_MARKER}"
    assert got["set/a2"]["request_id"] == f"req_{KEY_MARKER}"
    assert_key_nowhere(project, result, key)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("key sk-live-0123456789abcdef in use", f"key {KEY_MARKER} in use"),
        ("req_sk-abcdefgh12345678", f"req_{KEY_MARKER}"),
        ("Authorization: bearer eyJhbGciOi.J9xyz", f"Authorization: {BEARER_MARKER}"),
        ("mine is my-own-key-42 ok", f"mine is {KEY_MARKER} ok"),
        ("using Bearer auth, a task-force and disk-cache-entries", None),
    ],
)
def test_redactor_replaces_the_key_any_key_shaped_token_and_bearer_credentials(text, expected):
    """The configured key, ``sk-`` tokens (even glued to an id) and ``Bearer`` credentials
    become markers; ordinary words that merely contain ``sk-`` or ``Bearer`` are kept."""
    redactor = Redactor(["my-own-key-42"])
    assert redactor.text(text) == (text if expected is None else expected)


def test_redactor_bounds_what_it_keeps():
    """Messages are cut to the limit with an ellipsis, and a 64 kB scan never keeps the start
    of a secret it cut in two; details keep 50 items, 4 levels, and drop NaN and objects
    that are not JSON-like."""
    redactor = Redactor([])
    assert redactor.text("x" * 50, limit=10) == "x" * 9 + "…"
    secret = "not-shaped-like-a-key-0123"
    straddling = "a" * (64 * 1024 - 10) + secret + "b" * 10
    kept = Redactor([secret]).text(straddling, limit=10**6)
    assert kept == "a" * (64 * 1024 - len(secret))
    deep = {"a": {"b": {"c": {"d": {"e": 1}}}}}
    assert redactor.data(deep) == {"a": {"b": {"c": {"d": None}}}}
    assert redactor.data(list(range(60))) == list(range(50))
    assert redactor.data({"n": math.nan, "o": object(), "ok": 1.5}) == {
        "n": None,
        "o": None,
        "ok": 1.5,
    }


# -- 2. server-controlled waits are capped ---------------------------------------------------


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "NaN", "-5", "1e999", "Infinity"])
def test_non_finite_or_negative_waits_are_unreadable(value):
    """``inf``, ``nan``, negative and overflowing numbers are not waits: None everywhere."""
    assert retry_after({"retry-after-ms": value}) is None
    assert retry_after({"retry-after": value}) is None
    assert parse_duration(value) is None
    info = rate_limit_info({"x-ratelimit-reset-images": value, "x-ratelimit-limit-images": value})
    assert info == RateLimitInfo()


def test_an_unreadable_retry_after_ms_falls_back_to_retry_after_and_junk_does_not_crash():
    """``retry-after-ms: inf`` defers to ``retry-after``; a retry-after that is neither a
    number nor an HTTP date reads as None (it used to raise ValueError)."""
    assert retry_after({"retry-after-ms": "inf", "retry-after": "7"}) == 7.0
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({"retry-after": "x" * 10_000}) is None
    assert rate_limit_info({"x-ratelimit-remaining-images": "-1"}) == RateLimitInfo()


def starts(limiter: RateLimiter, n: int) -> list[float]:
    clock = limiter.clock

    async def go() -> list[float]:
        times = []
        for _ in range(n):
            await limiter.acquire()
            times.append(clock())
        return times

    return asyncio.run(go())


def test_a_reset_header_past_the_cap_is_clamped_to_it():
    """``x-ratelimit-reset-images: 999999s`` with nothing remaining holds starts for the
    900 s cap, not eleven days, and no single sleep is longer than the cap."""
    clock = FakeClock()
    limiter = RateLimiter(None, None, clock=clock, sleep=clock.sleep)
    limiter.observe(
        rate_limit_info(
            {"x-ratelimit-remaining-images": "0", "x-ratelimit-reset-images": "999999s"}
        )
    )
    assert starts(limiter, 2) == [MAX_RETRY_AFTER_S, MAX_RETRY_AFTER_S]
    assert clock.sleeps == [MAX_RETRY_AFTER_S]


def test_a_retry_after_past_the_cap_holds_other_starts_at_most_the_cap():
    """A 429 asking for 999999 s holds every start for 900 s (the job that got it fails)."""
    clock = FakeClock()
    limiter = RateLimiter(None, None, clock=clock, sleep=clock.sleep)
    limiter.throttle(999_999.0, None)
    assert starts(limiter, 1) == [MAX_RETRY_AFTER_S]


@pytest.mark.parametrize("seconds", [math.inf, math.nan, -5.0, 0.0])
def test_holds_that_are_not_finite_positive_hold_nothing(seconds):
    """A hold of inf, NaN, a negative or zero seconds does not delay the next start."""
    clock = FakeClock()
    limiter = RateLimiter(None, None, clock=clock, sleep=clock.sleep)
    limiter.hold(seconds)
    assert starts(limiter, 1) == [0.0]
    assert clock.sleeps == []


def test_a_tiny_learned_limit_never_sleeps_past_the_cap():
    """An advertised limit of 1 image a minute, slowed by a 429, spaces starts by more than
    900 s; each sleep is still capped at 900 s."""
    clock = FakeClock()
    limiter = RateLimiter(None, None, clock=clock, sleep=clock.sleep)
    limiter.throttle(None, RateLimitInfo(limit_images=1))
    for _ in range(20):
        limiter.throttle(None, None)
    starts(limiter, 3)
    assert clock.sleeps
    assert max(clock.sleeps) == MAX_RETRY_AFTER_S


def test_retry_policy_caps_server_waits_and_ignores_unreadable_ones():
    """Retry-After up to 900 s is waited (plus < 0.25 s jitter); 900.5 s fails the job with
    a note saying why; inf and NaN (from a provider that passed them on) mean backoff."""
    policy = RetryPolicy(base_s=1.0)
    rng = random.Random(0)
    at_cap = policy.delay(ProviderFailure("rate_limit", "x", retry_after_s=900.0), 1, rng)
    assert at_cap is not None
    assert 900.0 <= at_cap < 900.25
    past = ProviderFailure("rate_limit", "x", retry_after_s=900.5)
    assert policy.delay(past, 1, rng) is None
    assert give_up_note(past) == (
        "the server asked to wait 900 s before retrying, longer than the 900 s assetpipe "
        "waits; build again later"
    )
    for wait in (math.inf, math.nan):
        failure = ProviderFailure("rate_limit", "x", retry_after_s=wait)
        delay = policy.delay(failure, 1, rng)
        assert delay is not None
        assert 0 <= delay <= 1.0
        assert give_up_note(failure) is None


def test_bad_responses_are_retried_once_only():
    """A malformed answer gets one more attempt, never a third (each may be billed)."""
    policy = RetryPolicy(max_attempts=6)
    failure = ProviderFailure("bad_response", "no image")
    assert policy.delay(failure, 1, random.Random(0)) is not None
    assert policy.delay(failure, 2, random.Random(0)) is None


def test_a_huge_retry_after_fails_that_job_and_the_build_goes_on_within_the_cap(project):
    """On the fake clock: the job told to wait 999999 s fails at once with a message saying
    so, the limiter holds the others for 900 s at most, and they all build."""
    project.gen({"specs/set.yaml": many(3)})
    ws = pipeline_api.open_workspace(
        pipeline_api.Request(project=project.root, flags={"provider": "preview"})
    )
    clock = FakeClock()
    # The one prompt gets a 429 asking for 999999 s on every attempt it may make.
    huge_wait = ProviderFailure("rate_limit", "Rate limit exceeded", retry_after_s=999_999)
    provider = ScriptedProvider([huge_wait] * RetryPolicy().max_attempts, prompt="Asset number 1")
    with LocalStore(project.root / ".assetpipe/cache") as cache:
        runner = direct_runner(ws, cache, provider, clock, root=project.root)
        report = asyncio.run(runner.run())
    statuses = {job: o.status for job, o in report.outcomes.items()}
    assert statuses == {"set/a1": "failed", "set/a2": "generated", "set/a3": "generated"}
    error = report.outcomes["set/a1"].error
    assert error is not None
    assert error["message"] == (
        "Rate limit exceeded (the server asked to wait 999999 s before retrying, longer than "
        "the 900 s assetpipe waits; build again later)"
    )
    assert provider.prompts.count("Asset number 1") == 1
    assert max(clock.sleeps) <= MAX_RETRY_AFTER_S
    assert clock.now <= MAX_RETRY_AFTER_S + 2 * RunConfig().checkpoint_s


def test_retry_after_ms_inf_and_a_huge_retry_after_end_the_build_at_once(project, run, api):
    """The fake answers 429 with ``retry-after-ms: inf`` (unreadable, so ``retry-after`` is
    read) and ``retry-after: 999999``: the job fails after one request with a message that
    says why, and the build exits 1 instead of waiting for days."""
    project.gen({"specs/set.yaml": many(1)})
    api.configure(
        script=["rate_limit"] * 5,
        reply_headers={"retry-after-ms": "inf", "retry-after": "999999"},
    )
    result = run("build", "--provider", "openai")
    assert result.code == 1, result.err
    assert api.count() == 1
    entry = entries(project)["set/a1"]
    assert entry["status"] == "failed"
    assert entry["error"]["type"] == "rate_limit"
    note = (
        "(the server asked to wait 999999 s before retrying, longer than the 900 s "
        "assetpipe waits; build again later)"
    )
    assert entry["error"]["message"].endswith(note)
    assert note in result.err


def test_retry_after_ms_inf_alone_means_backoff_and_the_build_ends(project, run, api, monkeypatch):
    """With ``retry-after-ms: inf`` and no readable ``retry-after``, a 429 storm is retried
    with ordinary backoff (no hold) until max_attempts, then the job fails: exit 1."""
    project.gen({"specs/set.yaml": many(1)})
    monkeypatch.setenv("ASSETPIPE_MAX_ATTEMPTS", "2")
    api.configure(
        script=["rate_limit"] * 5,
        reply_headers={"retry-after-ms": "inf", "retry-after": "nan"},
    )
    result = run("build", "--provider", "openai")
    assert result.code == 1, result.err
    assert api.count() == 2
    entry = entries(project)["set/a1"]
    assert entry["status"] == "failed"
    assert entry["error"]["type"] == "rate_limit"
    assert entry["error"]["message"].startswith("Error code: 429 - ")


# -- 3. a trickling server meets a total deadline ----------------------------------------------


def test_a_trickled_answer_meets_the_total_deadline_and_is_retried(project, run, api):
    """An answer sent a byte every 0.2 s never trips the SDK's 0.5 s per-read timeout; the
    1.5 x timeout deadline abandons it, the retry (a timeout is retryable) succeeds, and
    the job is generated. The trickled answer was billed, as a real one would be."""
    project.gen({"specs/set.yaml": many(1)})
    api.configure(script=["trickle"], trickle_seconds=0.2, slow_seconds=5)
    result = run("build", "--provider", "openai", "--timeout", "0.5")
    assert result.code == 0, result.err
    assert re.search(
        r"^retry     set/a1 in \d+\.\ds after timeout \(attempt 1\): no complete answer "
        r"within 0\.75 s \(1\.5 x the timeout setting\)$",
        result.err,
        re.MULTILINE,
    )
    first, second = api.requests
    assert first.fault == "trickle"
    assert second.fault is None
    assert second.status == 200
    assert api.billed_images == 2
    assert entries(project)["set/a1"]["status"] == "generated"


def provider_for(api: FakeImagesAPI, **kwargs: Any) -> OpenAIProvider:
    max_body = kwargs.pop("max_body_bytes", 64 * 1024 * 1024)
    timeout = kwargs.pop("timeout", 10.0)
    client = openai.AsyncOpenAI(
        base_url=api.base_url,
        api_key="sk-test-key",
        max_retries=0,
        timeout=timeout,
        http_client=CappedAsyncClient(max_body_bytes=max_body),
    )
    return OpenAIProvider(client, **kwargs)


def call(provider: OpenAIProvider) -> ImageResult:
    request = ImageRequest(
        endpoint="generate",
        model="gpt-image-2.5-flare",
        prompt="a red fox",
        params={"size": "1024x1024", "quality": "low", "output_format": "png", "n": 1},
    )

    async def go() -> ImageResult:
        try:
            return await provider.generate(request)
        finally:
            await provider.aclose()

    return asyncio.run(go())


def test_the_deadline_is_a_timeout_failure_naming_itself(api):
    """Through the real SDK: a trickle past the deadline raises a ``timeout`` failure whose
    message gives the deadline (1.5 x a 0.4 s timeout = 0.6 s)."""
    api.configure(script=["trickle"], trickle_seconds=0.1)
    provider = provider_for(api, timeout=0.4)
    assert provider.deadline_s == pytest.approx(0.6)
    with pytest.raises(
        ProviderFailure, match=r"^no complete answer within 0\.6 s \(1\.5 x"
    ) as info:
        call(provider)
    assert info.value.kind == "timeout"
    assert info.value.retryable


# -- 4. what a response may contain ----------------------------------------------------------


EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\nshowpage\n"


def test_an_eps_image_is_never_decoded_and_fails_the_job(project, run, api):
    """EPS bytes in ``b64_json`` (which Pillow would hand to Ghostscript) fail the job as a
    ``bad_response`` after one request (paid, so not asked again); its cost is recorded."""
    project.gen({"specs/set.yaml": many(1)})
    api.image_bytes = EPS
    result = run("build", "--provider", "openai", "--json")
    assert result.code == 1, result.err
    assert api.count() == 1
    entry = entries(project)["set/a1"]
    assert entry["status"] == "failed"
    assert entry["error"]["type"] == "bad_response"
    assert entry["error"]["message"] == (
        "the API answered with an image that cannot be delivered: cannot decode image "
        f"({len(EPS)} bytes, starting b'%!PS-Adobe-3'): not a png, webp or jpeg file"
    )
    assert entry["cost_usd"] > 0
    assert entry["cost_usd"] == pytest.approx(json.loads(result.out)["spent_usd"])
    assert not (project / "output/set/a1.png").exists()


def truncated_png(side: int = 1024) -> bytes:
    """A real ``side`` x ``side`` PNG cut off in its pixel data: its header is whole (the
    size and format the job asked for), its pixels cannot be decoded."""
    buffer = io.BytesIO()
    Image.effect_noise((side, side), 64).convert("RGB").save(buffer, "PNG", compress_level=1)
    data = buffer.getvalue()
    return data[: len(data) // 2]


def test_an_image_cut_off_in_its_pixels_fails_and_is_asked_for_again(project, run, api):
    """A PNG whose header says it is exactly what the job asked for is committed before a
    pixel is decoded, so its request's slot is free sooner; when it then cannot be decoded
    the job fails as a ``bad_response`` (its cost counted), no file lands, and the entry is
    taken back out of the cache: the next build asks again, as it would had the image
    been refused before it was committed."""
    project.gen({"specs/set.yaml": many(1)})
    cut = truncated_png()
    assert Image.open(io.BytesIO(cut)).size == (1024, 1024)
    api.image_bytes = cut
    result = run("build", "--provider", "openai", "--json")
    assert result.code == 1, result.err
    entry = entries(project)["set/a1"]
    assert entry["status"] == "failed"
    assert entry["error"]["type"] == "bad_response"
    assert entry["error"]["message"].startswith(
        "the API answered with an image that cannot be delivered: cannot decode image "
        f"({len(cut)} bytes, starting "
    )
    assert entry["cost_usd"] > 0
    assert entry["cost_usd"] == pytest.approx(json.loads(result.out)["spent_usd"])
    assert not (project / "output/set/a1.png").exists()
    assert api.count() == 1

    api.image_bytes = None
    again = run("build", "--provider", "openai")
    assert again.code == 0, again.err
    assert api.count() == 2
    assert entries(project)["set/a1"]["status"] == "generated"


PREFIX = "the API answered with an image that cannot be delivered: cannot decode image: "


@pytest.mark.parametrize(
    ("side", "message"),
    [
        # Past Pillow's own bomb threshold: its DecompressionBombWarning is an error.
        (
            13000,
            r"too large to decode safely \(Image size \(169000000 pixels\) exceeds limit "
            r"of 89478485 pixels, .*\)",
        ),
        # Under Pillow's threshold but past the cap on what the API may return.
        (
            5000,
            r"it claims 5000x5000 pixels, more than the 16,777,216 assetpipe decodes",
        ),
    ],
)
def test_a_pixel_bomb_png_is_refused_from_its_header(project, run, api, side, message):
    """A valid square PNG of 13000 (169 MP) or 5000 (25 MP) pixels a side, a few kB on the
    wire, is refused before any pixel is decoded: more than the 4096x4096 accepted from the
    API. The job fails as a ``bad_response`` after one request."""
    project.gen({"specs/set.yaml": many(1)})
    api.image_bytes = png_claiming(side, side)
    result = run("build", "--provider", "openai")
    assert result.code == 1, result.err
    entry = entries(project)["set/a1"]
    assert entry["status"] == "failed"
    assert entry["error"]["type"] == "bad_response"
    assert re.fullmatch(re.escape(PREFIX) + message, entry["error"]["message"])
    assert api.count() == 1


def test_a_gzip_body_inflating_to_a_gigabyte_is_cut_off_at_the_cap(project, run, api):
    """An answer of 1 MB gzip that inflates to 1 GiB is read only up to the 64 MiB cap
    (memory stays far below the gigabyte), fails as ``bad_response``, is retried once, and
    the job fails after exactly two requests."""
    project.gen({"specs/set.yaml": many(1)})
    api.configure(script=["gzip_bomb", "gzip_bomb"], bomb_bytes=1024 * 1024 * 1024)
    tracemalloc.start()
    try:
        result = run("build", "--provider", "openai")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.code == 1, result.err
    assert [r.fault for r in api.requests] == ["gzip_bomb", "gzip_bomb"]
    entry = entries(project)["set/a1"]
    assert entry["status"] == "failed"
    assert entry["error"]["type"] == "bad_response"
    assert entry["error"]["message"] == (
        "the response body is larger than 64 MiB after gzip decoding; no image answer is "
        "that large, so it was not read"
    )
    assert peak < 200 * 1024 * 1024


def test_the_capped_client_is_the_sdks_aiohttp_client():
    """assetpipe depends on the SDK's ``aiohttp`` extra, and every body cap above is
    enforced on that transport: the capped client is built on ``DefaultAioHttpClient``."""
    assert issubclass(CappedAsyncClient, openai.DefaultAioHttpClient)


def test_a_base64_image_over_the_cap_is_not_decoded(api):
    """A ``b64_json`` longer than the image cap allows is refused before decoding."""
    provider = provider_for(api, max_image_bytes=1000)
    with pytest.raises(
        ProviderFailure, match=r"characters of base64, more than the 1,336 "
    ) as info:
        call(provider)
    assert info.value.kind == "bad_response"


def test_a_body_over_the_cap_is_not_read(api):
    """A plain (not compressed) body over the client's cap is a ``bad_response`` too."""
    provider = provider_for(api, max_body_bytes=1024 * 1024)
    api.image_bytes = bytes(2 * 1024 * 1024)
    with pytest.raises(ProviderFailure, match=r"^the response body is larger than 1 MiB;") as info:
        call(provider)
    assert info.value.kind == "bad_response"


@pytest.mark.parametrize(
    ("patch", "shown"),
    [
        ({"output_tokens": math.nan}, "output_tokens=nan"),
        (
            {"input_tokens_details": {"text_tokens": -5, "image_tokens": 0}},
            "input_tokens_details.text_tokens=-5",
        ),
    ],
)
def test_nan_or_negative_usage_counts_the_estimate_and_keeps_the_budget(
    project, run, api, patch, shown
):
    """Usage with NaN or a negative count is dropped with a warning (on stderr and as a
    failed ``response`` check) and the estimate is counted instead, so the manifest stays
    valid JSON and --max-cost still stops the third of three jobs."""
    project.gen({"specs/set.yaml": many(3)})
    plan = json.loads(run("plan", "--json", "--provider", "openai").out)
    estimate = plan["jobs"][0]["estimated_cost_usd"]
    assert {job["estimated_cost_usd"] for job in plan["jobs"]} == {estimate}
    api.usage_patch = patch
    cap = str(round(estimate * 2.5, 6))
    result = run("build", "--provider", "openai", "--concurrency", "1", "--max-cost", cap)
    assert result.code == 3, result.err
    got = entries(project)
    assert sorted(e["status"] for e in got.values()) == ["generated", "generated", "skipped"]
    note = (
        f"the response reported unusable token usage ({shown}); its cost is counted as the estimate"
    )
    for entry in got.values():
        if entry["status"] != "generated":
            continue
        assert entry["usage"] is None
        assert entry["cost_usd"] == pytest.approx(estimate)
        assert {"name": "response", "ok": False, "detail": note, "value": None} in entry["checks"]
        assert f"warning: {entry['job']}: {note}" in result.err
    assert manifest(project)["totals"]["spent_this_build_usd"] == pytest.approx(2 * estimate)


def test_a_smaller_image_than_requested_fails_the_job_instead_of_an_upscale(project, run, api):
    """A 512x512 answer to a 1024x1024 request is not scaled up: the job fails as a
    ``bad_response`` after one request and no file is delivered."""
    project.gen({"specs/set.yaml": many(1)})
    api.image_size = "512x512"
    result = run("build", "--provider", "openai")
    assert result.code == 1, result.err
    assert api.count() == 1
    entry = entries(project)["set/a1"]
    assert entry["status"] == "failed"
    assert entry["error"]["type"] == "bad_response"
    assert entry["error"]["message"] == (
        "the API answered with an image that cannot be delivered: the API returned a "
        "512x512 image for a 1024x1024 request; assetpipe does not scale a smaller image up "
        "to the target"
    )
    assert f"set/a1: {entry['error']['message']}" in result.err
    assert not (project / "output/set/a1.png").exists()


def test_a_larger_image_than_requested_is_delivered_with_a_loud_warning(project, run, api):
    """A 1536x1536 answer to a 1024x1024 request is scaled down (no quality lost) and
    delivered at 1024x1024, with a warning on stderr and a failed ``response`` check that
    survives delivery from the cache."""
    project.gen({"specs/set.yaml": many(1)})
    api.image_size = "1536x1536"
    result = run("build", "--provider", "openai")
    assert result.code == 0, result.err
    note = "the API returned 1536x1536 for a 1024x1024 request; it was scaled down"
    assert f"warning: set/a1: {note}" in result.err
    check = {"name": "response", "ok": False, "detail": note, "value": None}
    assert check in entries(project)["set/a1"]["checks"]
    with Image.open(project / "output/set/a1.png") as image:
        assert image.size == (1024, 1024)
    (project / "output/set/a1.png").unlink()
    (project / "output/manifest.json").unlink()
    again = run("build", "--provider", "openai")
    assert again.code == 0, again.err
    assert api.count() == 1
    entry = entries(project)["set/a1"]
    assert entry["status"] == "cached"
    assert check in entry["checks"]


# -- 5. a write that fails stops paid work ---------------------------------------------------


def when_first_request(action: Callable[[], None]) -> Callable[[RequestRecord], float]:
    """A fake latency that runs ``action`` once, while the first request is being served."""
    done: list[bool] = []

    def latency(record: RequestRecord) -> float:
        if not done:
            done.append(True)
            action()
        return 0.0

    return latency


def test_a_cache_that_cannot_be_written_stops_every_new_paid_request(project, run, api, tmp_path):
    """Mid-build, the cache's image folder becomes a file (root ignores permissions, not
    that): the image that arrived cannot be stored, so its job fails with the write error,
    no other request is made (one billed image in all) and the rest are skipped; exit 1."""
    project.gen({"specs/set.yaml": many(4)})
    blobs = project / ".assetpipe/cache/blobs"

    def break_cache() -> None:
        if blobs.exists():
            blobs.rename(tmp_path / "blobs-moved")
        blobs.parent.mkdir(parents=True, exist_ok=True)
        blobs.write_bytes(b"not a folder\n")

    api.latency = when_first_request(break_cache)
    result = run("build", "--provider", "openai", "--concurrency", "1")
    assert result.code == 1, result.err
    assert api.count() == 1
    assert api.billed_images == 1
    got = entries(project)
    failed = [e for e in got.values() if e["status"] == "failed"]
    assert len(failed) == 1
    assert failed[0]["error"]["type"] == "write_error"
    assert failed[0]["error"]["message"].startswith("could not write the cache: [Errno ")
    assert failed[0]["cost_usd"] > 0
    skipped = [e for e in got.values() if e["status"] == "skipped"]
    assert len(skipped) == 3
    for entry in skipped:
        assert entry["error"]["message"].startswith("stopped after a write failed: could not")
    assert result.err.count("No new jobs were started: free disk space") == 1


class WriteFailureMidRequest:
    """The worst case of an output folder that fails mid-build, forced by events rather
    than left to the machine's speed: the first request puts a file where the folder goes;
    the first delivery (which then fails) waits until the second request has reached the
    fake, and that request is held there until the build has stopped starting new work.

    Left to timing, a busy machine delivered the first image late enough for the fake to
    answer two more requests before the failure stopped the build."""

    WAIT_S = 30.0
    """A deadline for an event that never comes (a hang), not a pace."""

    def __init__(self, blocker: Path, monkeypatch: pytest.MonkeyPatch):
        self.blocker = blocker
        self.second_arrived = threading.Event()
        self.stopped = threading.Event()
        self.arrivals = 0
        self.delivered = 0
        self.problems: list[str] = []
        self._lock = threading.Lock()
        real_store, real_stop = delivery.Delivery.store, engine.Runner._stop_writing

        def store(runner_delivery: Any, *args: Any, **kwargs: Any) -> Any:
            self._hold_first_delivery()
            return real_store(runner_delivery, *args, **kwargs)

        def stop_writing(runner: Any, exc: Any) -> None:
            real_stop(runner, exc)
            self.stopped.set()

        monkeypatch.setattr(delivery.Delivery, "store", store)
        monkeypatch.setattr(engine.Runner, "_stop_writing", stop_writing)

    def latency(self, record: RequestRecord) -> float:
        """The fake's latency hook: the first request blocks the folder, a later one waits
        for the build to stop."""
        with self._lock:
            self.arrivals += 1
            first = self.arrivals == 1
        if first:
            self.blocker.write_bytes(b"in the way\n")
            return 0.0
        self.second_arrived.set()
        self._wait(self.stopped, "the build never stopped after the failed write")
        return 0.0

    def _hold_first_delivery(self) -> None:
        """The first delivery starts only once the next request is in flight."""
        with self._lock:
            self.delivered += 1
            first = self.delivered == 1
        if first:
            self._wait(self.second_arrived, "no second request while the first was delivered")

    def _wait(self, event: threading.Event, problem: str) -> None:
        if not event.wait(self.WAIT_S):
            self.problems.append(problem)


def test_an_output_folder_that_cannot_be_written_stops_new_requests_and_loses_nothing(
    project, run, api, monkeypatch
):
    """Mid-build, a file appears where the collection's output folder goes: the paid image
    is already cached, delivery fails, no request starts beyond the one in flight (the
    request whose slot had been freed, held until the build stopped), and once the file
    is removed a build pays only for the jobs never started."""
    project.gen({"specs/set.yaml": many(4)})
    held = WriteFailureMidRequest(project / "output/set", monkeypatch)
    api.latency = held.latency
    result = run("build", "--provider", "openai", "--concurrency", "1")
    assert held.problems == []
    assert result.code == 1, result.err
    assert api.count() == 2  # the first request, and the one in flight when the write failed
    assert api.billed_images == 2
    got = entries(project)
    failed = sorted(j for j, e in got.items() if e["status"] == "failed")
    skipped = sorted(j for j, e in got.items() if e["status"] == "skipped")
    assert len(failed) == 2
    assert len(skipped) == 2
    for job in failed:
        assert got[job]["error"]["type"] == "write_error"
        assert got[job]["error"]["message"].startswith("could not write set/a")
    for job in skipped:
        assert got[job]["error"]["message"].startswith("stopped after a write failed: could not")
    api.latency = 0.0
    held.blocker.unlink()
    again = run("build", "--provider", "openai")
    assert again.code == 0, again.err
    assert api.count() == 4
    final = {job: e["status"] for job, e in entries(project).items()}
    assert sorted(j for j, s in final.items() if s == "cached") == failed
    assert sorted(j for j, s in final.items() if s == "generated") == skipped
