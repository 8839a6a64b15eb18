"""The judge's batch contract: verdicts through a Batch API, at the batch discount.

Beside :class:`~pipeline.jobs.judging.Judge` (one call per image) as
:class:`~pipeline.jobs.batch.BatchBackend` is beside the image provider: the runner's judge
batcher (``pipeline/runner/judge_batching.py``) types against this protocol and never
imports the provider layer; OpenAI's implementation (``/v1/responses`` lines) lives in
``pipeline/providers/openai_judge_batch.py``. A judge batch holds lines of one endpoint and
one judge model, within the same :class:`~pipeline.jobs.batch.BatchLimits` as image
batches, and ends in one :class:`~pipeline.jobs.judging.Verdict` or one
:class:`~pipeline.jobs.ProviderFailure` per line.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Protocol

from pipeline.jobs.batch import BatchInfo, BatchLimits
from pipeline.jobs.judging import JudgeRequest, Verdict
from pipeline.jobs.provider import ProviderFailure

JudgeResult = tuple[str, Verdict | ProviderFailure]
"""One answered judge line: its custom_id and the verdict, or why there is none."""


class JudgeBatchBackend(Protocol):
    """What the judge batcher needs of a Batch API.

    Every method raises :class:`~pipeline.jobs.ProviderFailure` when the backend cannot be
    reached or refuses (``retrieve``: :class:`~pipeline.jobs.batch.BatchNotFound` for a
    batch it does not have); nothing it returns holds unchecked server text."""

    name: str
    limits: BatchLimits

    def line(self, custom_id: str, request: JudgeRequest) -> bytes:
        """``request`` as one line of a batch input file (no newline); ValueError when it
        cannot be one (a custom_id the API would refuse)."""
        ...

    async def submit(self, lines: Sequence[bytes], metadata: Mapping[str, str]) -> BatchInfo:
        """Upload ``lines`` as one input file and create a batch carrying ``metadata``."""
        ...

    async def retrieve(self, batch_id: str) -> BatchInfo:
        """The batch's current state (one poll)."""
        ...

    async def find_by_metadata(
        self, key: str, value: str, *, created_after: int | None = None
    ) -> list[BatchInfo]:
        """Batches whose metadata has ``key: value``, newest first (crash recovery)."""
        ...

    def verdicts(
        self, batch: BatchInfo, expected: Sequence[str], min_scores: Mapping[str, float]
    ) -> AsyncIterator[JudgeResult]:
        """One result per expected line of a terminal batch, read as a stream; each verdict
        is passed or failed against its line's ``min_scores`` entry, not the model's say."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
