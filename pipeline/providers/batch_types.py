"""The batch backend contract's former address; it lives in :mod:`pipeline.jobs.batch`.

The contract moved down beside the provider contract so that the runner, which types
against :class:`BatchBackend`, never imports the provider layer. These names stay here so
that a third-party backend written against this module (a plugin's ``ProviderEntry.batch``)
still imports; assetpipe's own code imports :mod:`pipeline.jobs.batch`.
"""

from pipeline.jobs.batch import (
    MAX_BATCH_BYTES,
    MAX_BATCH_LINES,
    READ_DEADLINE_CODE,
    TERMINAL_STATUSES,
    BatchBackend,
    BatchCounts,
    BatchError,
    BatchInfo,
    BatchLimits,
    BatchLine,
    BatchLineTooLarge,
    BatchNotFound,
    BatchResult,
    BatchStatus,
    chunk_lines,
)

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_BATCH_LINES",
    "READ_DEADLINE_CODE",
    "TERMINAL_STATUSES",
    "BatchBackend",
    "BatchCounts",
    "BatchError",
    "BatchInfo",
    "BatchLimits",
    "BatchLine",
    "BatchLineTooLarge",
    "BatchNotFound",
    "BatchResult",
    "BatchStatus",
    "chunk_lines",
]
