"""The batch backend contract: what a batch dispatcher sees of a backend.

A batch backend (OpenAI's Batch API today) turns :class:`~pipeline.jobs.ImageRequest`\\ s
into :class:`BatchLine`\\ s, submits lines as one batch, reports the batch as a
:class:`BatchInfo` while it runs, and finally yields one ``ImageResult`` or
``ProviderFailure`` per line. It sits beside the provider contract
(:mod:`pipeline.jobs.provider`) for the same reason: nothing here imports an SDK or a
provider, so the runner types against :class:`BatchBackend` without importing the provider
layer, backends implement it, and both are tested with plain data.

A batch holds lines of one endpoint and one model, at most ``BatchLimits.max_lines`` lines
and ``BatchLimits.max_bytes`` bytes of JSONL; :func:`chunk_lines` splits a wave into such
batches, and smaller ``max_lines`` make results start arriving earlier.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from pipeline.jobs.provider import Endpoint, ImageRequest, ImageResult, ProviderFailure

BatchStatus = Literal[
    "validating",
    "failed",
    "in_progress",
    "finalizing",
    "completed",
    "expired",
    "cancelling",
    "cancelled",
]
TERMINAL_STATUSES: frozenset[str] = frozenset({"failed", "completed", "expired", "cancelled"})
"""A batch in one of these has its final output and error files (if any)."""

BatchResult = tuple[str, ImageResult | ProviderFailure]
"""One answered line: its custom_id and the image, or why there is none."""


MAX_BATCH_LINES = 50_000
MAX_BATCH_BYTES = 200_000_000
"""OpenAI's limits on one batch input file: 50,000 requests and 200 MB (read as decimal
megabytes, the smaller reading)."""


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """The most a backend takes in one batch."""

    max_lines: int = MAX_BATCH_LINES
    max_bytes: int = MAX_BATCH_BYTES


@dataclass(frozen=True, slots=True)
class BatchLine:
    """One request as a line of a batch input file (``data`` without its newline)."""

    custom_id: str
    endpoint: Endpoint
    model: str
    data: bytes

    @property
    def size(self) -> int:
        """Bytes the line takes in the file, newline included."""
        return len(self.data) + 1


@dataclass(frozen=True, slots=True)
class BatchCounts:
    """How many requests the batch holds and how many finished each way so far."""

    total: int = 0
    completed: int = 0
    failed: int = 0


@dataclass(frozen=True, slots=True)
class BatchError:
    """A reason a batch failed as a whole (``line`` is 1-based when one line is at fault)."""

    code: str | None
    message: str
    line: int | None = None
    param: str | None = None


@dataclass(frozen=True, slots=True)
class BatchInfo:
    """A batch as the backend last reported it (every field checked and bounded)."""

    id: str
    status: BatchStatus
    endpoint: Endpoint | None = None
    model: str | None = None
    input_file_id: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    counts: BatchCounts = BatchCounts()
    metadata: Mapping[str, str] = field(default_factory=dict)
    created_at: int = 0
    expires_at: int | None = None
    errors: tuple[BatchError, ...] = ()

    @property
    def is_terminal(self) -> bool:
        """Whether the batch is over: its results can be collected."""
        return self.status in TERMINAL_STATUSES


class BatchNotFound(ProviderFailure):
    """The backend answered that it has no batch of this id (HTTP 404): the batch was never
    created there (or not for this account), so none of its requests ran or were billed.

    Only that answer says so: a 5xx, a refused connection or a timeout while polling says
    nothing about the batch and stays a plain :class:`~pipeline.jobs.ProviderFailure`."""

    def __init__(self, batch_id: str, failure: ProviderFailure):
        super().__init__(
            "not_found",
            failure.message,
            code=failure.code,
            status=failure.status,
            request_id=failure.request_id,
        )
        self.batch_id = batch_id


READ_DEADLINE_CODE = "batch_read_deadline"
"""The code of a failure to read a result file within its total deadline. Unlike a dropped
connection it is not tried again in the same build: another try would hold the build as
long again, and the batch's journal entry lets the next build collect it."""


class BatchLineTooLarge(ValueError):
    """A single request is larger than a whole batch file may be."""


def chunk_lines(
    lines: Iterable[BatchLine],
    *,
    max_lines: int = MAX_BATCH_LINES,
    max_bytes: int = MAX_BATCH_BYTES,
) -> list[list[BatchLine]]:
    """Split ``lines`` into batches of one endpoint and one model, each of at most
    ``max_lines`` lines and ``max_bytes`` bytes, keeping the order of the lines (groups come
    in the order their first line came). Raises :class:`BatchLineTooLarge` for a line that
    alone exceeds ``max_bytes``."""
    if max_lines < 1 or max_bytes < 1:
        raise ValueError("max_lines and max_bytes must be at least 1")
    groups: dict[tuple[str, str], list[list[BatchLine]]] = {}
    sizes: dict[tuple[str, str], int] = {}
    for line in lines:
        if line.size > max_bytes:
            raise BatchLineTooLarge(
                f"request {line.custom_id!r} takes {line.size:,} bytes, more than the "
                f"{max_bytes:,} a batch file may hold"
            )
        key = (line.endpoint, line.model)
        chunks = groups.setdefault(key, [[]])
        current = chunks[-1]
        if current and (len(current) >= max_lines or sizes[key] + line.size > max_bytes):
            current = []
            chunks.append(current)
            sizes[key] = 0
        current.append(line)
        sizes[key] = sizes.get(key, 0) + line.size
    return [chunk for chunks in groups.values() for chunk in chunks if chunk]


class BatchBackend(Protocol):
    """What a batch dispatcher needs of a backend (OpenAI: ``OpenAIBatchClient``).

    Every method raises :class:`~pipeline.jobs.ProviderFailure` when the backend cannot be
    reached or refuses; nothing it returns holds unchecked server text.
    """

    name: str
    limits: BatchLimits

    async def prepare(self, custom_id: str, request: ImageRequest) -> BatchLine:
        """The request as a batch line (uploading large edit inputs first if need be)."""
        ...

    async def submit(self, lines: Sequence[BatchLine], metadata: Mapping[str, str]) -> BatchInfo:
        """Upload ``lines`` as one input file and create a batch carrying ``metadata``."""
        ...

    async def retrieve(self, batch_id: str) -> BatchInfo:
        """The batch's current state (one poll); raises :class:`BatchNotFound` when the
        backend has no such batch."""
        ...

    async def find_by_metadata(
        self, key: str, value: str, *, created_after: int | None = None
    ) -> list[BatchInfo]:
        """Batches whose metadata has ``key: value``, newest first (crash recovery)."""
        ...

    async def cancel(self, batch_id: str) -> BatchInfo:
        """Ask the backend to stop the batch; it goes ``cancelling``, then ``cancelled``."""
        ...

    def results(
        self,
        batch: BatchInfo,
        expected: Sequence[str] | None = None,
        *,
        formats: Mapping[str, str] | None = None,
    ) -> AsyncIterator[BatchResult]:
        """One result per answered line, read as a stream, in the order the backend wrote
        them; with ``expected`` (the custom_ids in file order) every expected line of a
        terminal batch gets exactly one result, and no other line any. A file that does
        not arrive within its total deadline raises a failure coded
        :data:`READ_DEADLINE_CODE`."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
