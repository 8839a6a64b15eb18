"""Verdicts through OpenAI's Batch API: ``/v1/responses`` lines at half the price.

:class:`OpenAIJudgeBatch` is the OpenAI
:class:`~pipeline.jobs.judge_batch.JudgeBatchBackend`. A line's ``body`` is exactly the
request a direct judge call sends (:func:`~pipeline.providers.openai_judge.request_body`:
the image as a data URL, the rubric, the strict JSON schema), so a verdict means the same
whichever way it travelled, and its answer is read by the same
:func:`~pipeline.providers.openai_judge.parse_verdict`. Uploading, polling, finding a
batch by its metadata and downloading result files go through the image batch client
(:class:`~pipeline.providers.openai_batch.OpenAIBatchClient`): the same SDK retries
(off), total deadlines, id checks and redaction. Every output line is untrusted: its
length is capped as it streams in, its custom_id checked, its error text redacted.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Final

import httpx2
import openai
from openai import AsyncOpenAI

from pipeline.jobs import ProviderFailure
from pipeline.jobs.batch import READ_DEADLINE_CODE, BatchInfo, BatchLimits
from pipeline.jobs.judge_batch import JudgeResult
from pipeline.jobs.judging import JudgeRequest
from pipeline.providers.openai_batch import OpenAIBatchClient
from pipeline.providers.openai_batch_info import batch_info, checked_id, unanswered
from pipeline.providers.openai_batch_io import CUSTOM_ID, LongLine, line_error, split_lines
from pipeline.providers.openai_http import check_base_url
from pipeline.providers.openai_judge import MAX_ANSWER_CHARS, parse_verdict, request_body
from pipeline.providers.openai_provider import DEADLINE_FACTOR
from pipeline.providers.openai_wire import classify, field, sdk_client, status_failure

ENDPOINT: Final = "/v1/responses"
MAX_LINE_BYTES = 4 * MAX_ANSWER_CHARS + 64 * 1024
"""Longest output line read: a verdict's answer (capped) in its Response object, with room
for the Response's other fields; a longer line fails its check unread."""


class OpenAIJudgeBatch:
    """Judge requests through OpenAI's Batch API (``/v1/responses``)."""

    def __init__(
        self,
        client: AsyncOpenAI,
        name: str = "openai",
        *,
        limits: BatchLimits | None = None,
        deadline_s: float | None = None,
    ):
        self.batch = OpenAIBatchClient(client, name, limits=limits, deadline_s=deadline_s)
        self.client = client
        self.name = name
        self.limits = self.batch.limits
        self.redact = self.batch.redact

    @classmethod
    def openai(cls, timeout: float) -> OpenAIJudgeBatch:
        """A client reading OPENAI_API_KEY / OPENAI_BASE_URL as the image batches do."""
        check_base_url(None, "OPENAI_BASE_URL")
        return cls(sdk_client(timeout, None, None), deadline_s=DEADLINE_FACTOR * timeout)

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self.client.close()

    def line(self, custom_id: str, request: JudgeRequest) -> bytes:
        """One ``{custom_id, method, url, body}`` line of a judge batch."""
        if not CUSTOM_ID.fullmatch(custom_id):
            raise ValueError(f"custom_id {custom_id!r} is not one the Batch API takes")
        line = {
            "custom_id": custom_id,
            "method": "POST",
            "url": ENDPOINT,
            "body": request_body(request),
        }
        return json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    async def submit(self, lines: Sequence[bytes], metadata: Mapping[str, str]) -> BatchInfo:
        """Upload ``lines`` as one input file (spooled to disk) and create the batch."""
        if not lines or len(lines) > self.limits.max_lines:
            raise ValueError(f"a judge batch holds 1 to {self.limits.max_lines:,} lines")
        self.batch.check_metadata(metadata)
        with tempfile.TemporaryFile() as spool:
            for data in lines:
                spool.write(data)
                spool.write(b"\n")
            spool.seek(0)
            created = await self.batch.within_deadline(
                "uploading the judge batch input file",
                self.client.files.create(
                    file=("assetpipe-judge.jsonl", spool, "application/jsonl"), purpose="batch"
                ),
            )
        file_id = checked_id(created.id, "batch input file")
        batch = await self.batch.within_deadline(
            "creating the judge batch",
            self.client.batches.create(
                input_file_id=file_id,
                endpoint=ENDPOINT,
                completion_window="24h",
                metadata=dict(metadata),
            ),
        )
        return batch_info(batch, self.redact)

    async def retrieve(self, batch_id: str) -> BatchInfo:
        """One poll (:class:`~pipeline.jobs.batch.BatchNotFound` on a 404)."""
        return await self.batch.retrieve(batch_id)

    async def find_by_metadata(
        self, key: str, value: str, *, created_after: int | None = None
    ) -> list[BatchInfo]:
        """Batches whose metadata has ``key: value``, newest first."""
        return await self.batch.find_by_metadata(key, value, created_after=created_after)

    async def verdicts(
        self, batch: BatchInfo, expected: Sequence[str], min_scores: Mapping[str, float]
    ) -> AsyncIterator[JudgeResult]:
        """One result per expected line: the output file, then the error file, streamed;
        the first answer for a custom_id counts, lines for other ids are ignored, and
        every expected line no file answered gets a failure saying why."""
        wanted, seen = set(expected), set[str]()
        deadline_s = self.batch.file_deadline(len(expected))
        loop = asyncio.get_running_loop()
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id is None:
                continue
            when = None if deadline_s is None else loop.time() + deadline_s
            try:
                chunks = self.batch.download(file_id, when)
                async for raw in split_lines(chunks, MAX_LINE_BYTES):
                    parsed = self._parse(raw, min_scores)
                    if parsed is None or parsed[0] in seen or parsed[0] not in wanted:
                        continue
                    seen.add(parsed[0])
                    yield parsed
            except TimeoutError:
                raise ProviderFailure(
                    "timeout",
                    f"judge batch file {file_id} did not arrive within its deadline",
                    code=READ_DEADLINE_CODE,
                ) from None
            except openai.APIStatusError as exc:
                raise status_failure(exc, self.redact) from None
            except (openai.APIConnectionError, httpx2.HTTPError, OSError) as exc:
                raise ProviderFailure(
                    "connection", self.redact.text(f"reading batch file {file_id} failed: {exc}")
                ) from None
        if batch.is_terminal:
            for custom_id, failure in unanswered(batch, expected, seen):
                yield custom_id, failure

    def _parse(self, raw: bytes | LongLine, min_scores: Mapping[str, float]) -> JudgeResult | None:
        """One output or error line as (custom_id, verdict or failure); None for a line
        that names no custom_id of ours (it cannot be matched, so it is not used)."""
        if isinstance(raw, LongLine):
            return None  # the unanswered pass says its line was lost
        try:
            record = json.loads(raw)
        except (ValueError, RecursionError):
            return None
        custom_id = field(record, "custom_id") if isinstance(record, Mapping) else None
        if not isinstance(custom_id, str) or custom_id not in min_scores:
            return None
        error, response = record.get("error"), record.get("response")
        status, body = field(response, "status_code"), field(response, "body")
        request_id = self.redact.optional(field(response, "request_id"), 200)
        if isinstance(error, Mapping):
            return custom_id, line_error(error, self.redact, request_id)
        if not isinstance(status, int) or isinstance(status, bool):
            return custom_id, ProviderFailure(
                "bad_response", "the judge batch answer holds neither a verdict nor an error"
            )
        if 200 <= status < 300:
            try:
                return custom_id, parse_verdict(
                    body, min_scores[custom_id], self.redact, request_id
                )
            except ProviderFailure as failure:
                return custom_id, failure
        inner = field(body, "error")
        inner = inner if isinstance(inner, Mapping) else {}
        code, message = inner.get("code"), inner.get("message")
        return custom_id, classify(
            status,
            code if isinstance(code, str) else None,
            message if isinstance(message, str) else f"the judge request failed with HTTP {status}",
            redact=self.redact,
            param=inner.get("param"),
            body=inner,
            request_id=request_id,
        )
