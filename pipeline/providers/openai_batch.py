"""OpenAI's Batch API through the official SDK: the same images at half the price, later.

:class:`OpenAIBatchClient` is the OpenAI :class:`~pipeline.jobs.batch.BatchBackend`:
it turns requests into JSONL lines (:mod:`openai_batch_io`), uploads them as one input file
(``files.create``, ``purpose="batch"``) and creates the batch (``batches.create``), polls it
(``batches.retrieve``), finds a batch by the journal id in its metadata (``batches.list``,
for a process killed between create and recording the id), cancels it, and streams the
output and error files (``files.with_streaming_response.content``) line by line, never
holding a whole file in memory.

Like the synchronous provider, the SDK's retries are off and every management call has a
total deadline; so has the download of a result file, scaled to the requests it answers
(:meth:`OpenAIBatchClient.file_deadline`), since the SDK's timeout bounds each network read
and a server trickling bytes would never trip it. The caller owns the policy (polling
backoff, resubmitting retryable lines).
Every answer is untrusted: ids are checked before they go into a URL, metadata and error
text are redacted and bounded, and output lines are capped in length.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from typing import Literal, TypeVar

import httpx2
import openai
from openai import AsyncOpenAI, omit

from pipeline.hashing import sha256_bytes
from pipeline.jobs import Endpoint, ImageInput, ImageRequest, ProviderFailure
from pipeline.jobs.batch import (
    READ_DEADLINE_CODE,
    BatchInfo,
    BatchLimits,
    BatchLine,
    BatchNotFound,
    BatchResult,
)
from pipeline.providers.openai_batch_info import batch_info, checked_id, unanswered
from pipeline.providers.openai_batch_io import (
    ENDPOINT_URLS,
    MAX_DATA_URL_CHARS,
    MAX_LINE_BYTES,
    LongLine,
    data_url_chars,
    long_line_result,
    parse_line,
    request_line,
    split_lines,
)
from pipeline.providers.openai_http import ResponseTooLarge, check_base_url
from pipeline.providers.openai_provider import DEADLINE_FACTOR, deadline_for
from pipeline.providers.openai_wire import MAX_IMAGE_BYTES, sdk_client, status_failure
from pipeline.providers.redaction import Redactor

T = TypeVar("T")

MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
InputPurpose = Literal["vision", "user_data"]
INPUT_PURPOSE: InputPurpose = "vision"
"""The purpose edit inputs are uploaded with when they go by ``file_id`` (public code uses
``vision``; ``user_data`` is the other candidate, and the fake accepts both)."""
INPUT_EXPIRY_S = 7 * 24 * 3600
"""Uploaded edit inputs expire after a week: long enough for a 24-hour batch and its
retries, short enough that a crashed build leaves nothing behind for long."""
READ_CHUNK_BYTES = 1024 * 1024
FIND_SCAN_LIMIT = 2000
"""``find_by_metadata`` reads at most this many batches (newest first)."""


class OpenAIBatchClient:
    """Image requests through OpenAI's Batch API (``/v1/images/generations`` and ``edits``)."""

    def __init__(
        self,
        client: AsyncOpenAI,
        name: str = "openai",
        *,
        limits: BatchLimits | None = None,
        deadline_s: float | None = None,
        max_line_bytes: int = MAX_LINE_BYTES,
        max_image_bytes: int = MAX_IMAGE_BYTES,
        inline_max_chars: int = MAX_DATA_URL_CHARS,
        input_purpose: InputPurpose = INPUT_PURPOSE,
        read_chunk_bytes: int = READ_CHUNK_BYTES,
    ):
        self.client = client
        self.name = name
        self.limits = limits or BatchLimits()
        self.deadline_s = deadline_s if deadline_s is not None else deadline_for(client.timeout)
        self.max_line_bytes = max_line_bytes
        self.max_image_bytes = max_image_bytes
        self.inline_max_chars = min(inline_max_chars, MAX_DATA_URL_CHARS)
        self.input_purpose = input_purpose
        self.read_chunk_bytes = read_chunk_bytes
        self.redact = Redactor([getattr(client, "api_key", None)])
        self.uploaded: dict[str, str] = {}
        """sha256 of each edit input uploaded by this client -> its file id."""

    @classmethod
    def openai(
        cls, timeout: float, api_key: str | None = None, base_url: str | None = None
    ) -> OpenAIBatchClient:
        """A client reading OPENAI_API_KEY / OPENAI_BASE_URL / org / project as the SDK does."""
        check_base_url(base_url, "OPENAI_BASE_URL")
        client = sdk_client(timeout, api_key, base_url)
        return cls(client, "openai", deadline_s=DEADLINE_FACTOR * timeout)

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self.client.close()

    # submitting ----------------------------------------------------------------------------

    async def prepare(self, custom_id: str, request: ImageRequest) -> BatchLine:
        """``request`` as a batch line; edit inputs whose data URL would be longer than
        ``inline_max_chars`` are uploaded first (once per content) and go by ``file_id``."""
        if request.endpoint == "edit":
            inputs = [*request.images, *(i for i in (request.mask, request.markup) if i)]
            for image in inputs:
                if data_url_chars(image) > self.inline_max_chars:
                    await self.upload_input(image)
        return request_line(custom_id, request, self.uploaded)

    async def upload_input(self, image: ImageInput) -> str:
        """Upload an edit input (unless this client already did) and return its file id."""
        digest = sha256_bytes(image.data)
        known = self.uploaded.get(digest)
        if known is not None:
            return known
        created = await self.within_deadline(
            "uploading an edit input",
            self.client.files.create(
                file=(image.filename, image.data, image.mime),
                purpose=self.input_purpose,
                expires_after={"anchor": "created_at", "seconds": INPUT_EXPIRY_S},
            ),
        )
        file_id = checked_id(created.id, "uploaded file")
        self.uploaded[digest] = file_id
        return file_id

    async def upload_lines(self, lines: Sequence[BatchLine]) -> str:
        """Upload ``lines`` as one batch input file (spooled to disk, not held twice in
        memory) and return its id; checks the limits and that custom_ids are unique."""
        self._check_lines(lines)
        with tempfile.TemporaryFile() as spool:
            for line in lines:
                spool.write(line.data)
                spool.write(b"\n")
            spool.seek(0)
            created = await self.within_deadline(
                "uploading the batch input file",
                self.client.files.create(
                    file=("assetpipe-batch.jsonl", spool, "application/jsonl"), purpose="batch"
                ),
            )
        return checked_id(created.id, "batch input file")

    async def create(
        self, input_file_id: str, endpoint: Endpoint, metadata: Mapping[str, str]
    ) -> BatchInfo:
        """Create a batch over an uploaded input file of ``endpoint`` lines, carrying
        ``metadata`` (record the input file id before calling this, to resume after a
        crash in between)."""
        self.check_metadata(metadata)
        batch = await self.within_deadline(
            "creating the batch",
            self.client.batches.create(
                input_file_id=checked_id(input_file_id, "input file"),
                endpoint=ENDPOINT_URLS[endpoint],
                completion_window="24h",
                metadata=dict(metadata),
            ),
        )
        return batch_info(batch, self.redact)

    async def submit(self, lines: Sequence[BatchLine], metadata: Mapping[str, str]) -> BatchInfo:
        """Upload ``lines`` and create a batch carrying ``metadata`` (put the journal id in
        it, so :meth:`find_by_metadata` finds a batch whose id was never recorded)."""
        self.check_metadata(metadata)
        file_id = await self.upload_lines(lines)
        return await self.create(file_id, lines[0].endpoint, metadata)

    def _check_lines(self, lines: Sequence[BatchLine]) -> None:
        if not lines:
            raise ValueError("a batch needs at least one line")
        kinds = {(line.endpoint, line.model) for line in lines}
        if len(kinds) > 1:
            raise ValueError(f"a batch holds one endpoint and one model, not {sorted(kinds)}")
        if len(lines) > self.limits.max_lines:
            raise ValueError(f"{len(lines):,} lines; a batch holds {self.limits.max_lines:,}")
        size = sum(line.size for line in lines)
        if size > self.limits.max_bytes:
            raise ValueError(f"{size:,} bytes; a batch file holds {self.limits.max_bytes:,}")
        if len({line.custom_id for line in lines}) != len(lines):
            raise ValueError("custom_ids repeat within the batch")

    @staticmethod
    def check_metadata(metadata: Mapping[str, str]) -> None:
        """Refuse metadata the Batch API would refuse, before anything is uploaded (the
        judge batches' client checks its own the same way)."""
        if len(metadata) > MAX_METADATA_PAIRS or any(
            not isinstance(k, str)
            or not isinstance(v, str)
            or not 0 < len(k) <= MAX_METADATA_KEY
            or len(v) > MAX_METADATA_VALUE
            for k, v in metadata.items()
        ):
            raise ValueError(
                f"batch metadata is at most {MAX_METADATA_PAIRS} string pairs, keys of 1 to "
                f"{MAX_METADATA_KEY} characters and values of at most {MAX_METADATA_VALUE}"
            )

    # watching ------------------------------------------------------------------------------

    async def retrieve(self, batch_id: str) -> BatchInfo:
        """The batch's current state (one poll; backing off between polls is the caller's).

        Raises :class:`BatchNotFound` when the API answers 404 (``openai.NotFoundError``):
        that answer alone means the batch does not exist, so its requests were never paid
        for; every other failure is a plain ProviderFailure, the batch's fate unknown."""
        checked = checked_id(batch_id, "batch")
        try:
            batch = await self.within_deadline(
                "polling the batch", self.client.batches.retrieve(checked)
            )
        except ProviderFailure as failure:
            if failure.kind == "not_found" and failure.status == 404:
                raise BatchNotFound(checked, failure) from None
            raise
        return batch_info(batch, self.redact)

    async def cancel(self, batch_id: str) -> BatchInfo:
        """Ask for the batch to stop: it goes ``cancelling`` and, within minutes,
        ``cancelled``, with the requests that finished in its output file."""
        batch = await self.within_deadline(
            "cancelling the batch", self.client.batches.cancel(checked_id(batch_id, "batch"))
        )
        return batch_info(batch, self.redact)

    async def iter_batches(
        self,
        *,
        created_after: int | None = None,
        limit: int = FIND_SCAN_LIMIT,
        page_size: int = 100,
    ) -> AsyncIterator[BatchInfo]:
        """The account's batches, newest first, up to ``limit`` of them, stopping at the
        first created before ``created_after`` (unix seconds); one ``batches.list`` call
        per ``page_size`` (1 to 100) batches."""
        after: str | None = None
        seen = 0
        while seen < limit:
            size = max(1, min(page_size, 100, limit - seen))
            page = await self.within_deadline(
                "listing batches", self.client.batches.list(limit=size, after=after or omit)
            )
            items = list(page.data or [])[:size]
            for item in items:
                info = batch_info(item, self.redact)
                if created_after is not None and info.created_at < created_after:
                    return
                seen += 1
                yield info
            if not items or page.has_more is False:
                return
            after = checked_id(items[-1].id, "batch")

    async def find_by_metadata(
        self, key: str, value: str, *, created_after: int | None = None
    ) -> list[BatchInfo]:
        """Batches whose metadata has ``key: value``, newest first (recovering a batch
        created just before a crash, whose id was never recorded)."""
        return [
            info
            async for info in self.iter_batches(created_after=created_after)
            if info.metadata.get(key) == value
        ]

    async def delete_file(self, file_id: str) -> bool:
        """Delete an uploaded or generated file; False if it was already gone."""
        try:
            await self.within_deadline(
                "deleting a file", self.client.files.delete(checked_id(file_id, "file"))
            )
        except ProviderFailure as failure:
            if failure.kind == "not_found":
                return False
            raise
        return True

    # collecting ----------------------------------------------------------------------------

    async def results(
        self,
        batch: BatchInfo,
        expected: Sequence[str] | None = None,
        *,
        formats: Mapping[str, str] | None = None,
    ) -> AsyncIterator[BatchResult]:
        """One result per answered line: the output file, then the error file, each read
        as a stream, line by line. The first answer for a custom_id counts (a repeat is
        ignored), and with ``expected`` (the custom_ids in input file order) lines for
        other ids are ignored and, once the batch is terminal, every expected id that got
        no line gets a failure saying why (expired, cancelled, the batch failed, or the
        batch lost it). ``formats`` gives each custom_id's requested output format, used
        when an answer does not echo one. Each file is read within
        :meth:`file_deadline` of the batch's requests."""
        wanted = set(expected) if expected is not None else None
        seen: set[str] = set()
        deadline_s = self.file_deadline(
            len(expected) if expected is not None else batch.counts.total
        )
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id is None:
                continue
            async for custom_id, result in self._read_file(file_id, formats, deadline_s):
                if custom_id in seen or (wanted is not None and custom_id not in wanted):
                    continue
                seen.add(custom_id)
                yield custom_id, result
        if expected is not None and batch.is_terminal:
            for custom_id, failure in unanswered(batch, expected, seen):
                yield custom_id, failure

    iter_results = results

    def file_deadline(self, requests: int) -> float | None:
        """The total deadline for downloading one result file of a batch of ``requests``.

        A synchronous request gets :data:`DEADLINE_FACTOR` x the timeout setting for its
        one image; a file answers every request of the batch, so it gets that once per
        request: one request's file ends as soon as a synchronous answer would, and a
        thousand images on a slow link still arrive in time. None: no deadline (a client
        built without a timeout)."""
        if self.deadline_s is None:
            return None
        return self.deadline_s * max(1, min(requests, self.limits.max_lines))

    async def _read_file(
        self, file_id: str, formats: Mapping[str, str] | None, deadline_s: float | None
    ) -> AsyncIterator[BatchResult]:
        count = 0
        loop = asyncio.get_running_loop()
        when = None if deadline_s is None else loop.time() + deadline_s
        try:
            async for line in split_lines(self.download(file_id, when), self.max_line_bytes):
                count += 1
                if count > self.limits.max_lines:
                    return  # more lines than a batch holds: the rest is not read
                parsed: BatchResult | None
                if isinstance(line, LongLine):
                    parsed = long_line_result(line, self.max_line_bytes)
                else:
                    parsed = parse_line(
                        line,
                        redact=self.redact,
                        formats=formats,
                        max_image_bytes=self.max_image_bytes,
                    )
                if parsed is not None:
                    yield parsed
        except TimeoutError:
            if when is None or loop.time() < when:  # not the deadline: some read timed out
                message = f"reading batch file {file_id} timed out"
                raise ProviderFailure("timeout", message) from None
            raise ProviderFailure(
                "timeout",
                f"batch file {file_id} did not arrive within {deadline_s:g} s, its total "
                f"deadline (one request's {self.deadline_s:g} s for each request it answers)",
                code=READ_DEADLINE_CODE,
            ) from None
        except openai.APIStatusError as exc:
            raise status_failure(exc, self.redact) from None
        except (openai.APIConnectionError, httpx2.HTTPError, OSError) as exc:
            raise ProviderFailure(
                "connection", self.redact.text(f"reading batch file {file_id} failed: {exc}")
            ) from None

    async def download(self, file_id: str, when: float | None) -> AsyncIterator[bytes]:
        """The file's bytes as they arrive. Every wait for the server (for the answer's head,
        then for each chunk) ends at the event loop time ``when`` with a TimeoutError;
        time spent by the reader between chunks is not interrupted, only counted."""
        content = self.client.files.with_streaming_response.content(checked_id(file_id, "file"))
        async with contextlib.AsyncExitStack() as stack:
            async with asyncio.timeout_at(when):
                response = await stack.enter_async_context(content)
            chunks = response.iter_bytes(self.read_chunk_bytes)
            while True:
                async with asyncio.timeout_at(when):
                    chunk = await anext(chunks, None)
                if chunk is None:
                    return
                yield chunk

    async def within_deadline(self, what: str, call: Awaitable[T]) -> T:
        """Await one SDK call under the total deadline, as a ProviderFailure if it fails
        (every Batch and Files call goes through here, the judge batches' included)."""
        try:
            async with asyncio.timeout(self.deadline_s):
                return await call
        except TimeoutError:
            raise ProviderFailure(
                "timeout", f"{what}: no complete answer within {self.deadline_s:g} s"
            ) from None
        except openai.APIStatusError as exc:
            raise status_failure(exc, self.redact) from None
        except openai.APITimeoutError:
            raise ProviderFailure("timeout", f"{what}: the request timed out") from None
        except openai.APIConnectionError as exc:
            raise ProviderFailure(
                "connection", self.redact.text(f"{what}: connection failed: {exc}")
            ) from None
        except ResponseTooLarge as exc:
            raise ProviderFailure("bad_response", f"{what}: {exc}") from None
