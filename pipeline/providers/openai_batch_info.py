"""Reading a Batch object the server sent (untrusted) into a :class:`BatchInfo`, and saying
what happened to the requests of a finished batch that got no line in its files.

The SDK does not validate answers, so every field is checked here: ids must look like ids
before they go into a URL path, the status must be a known one, counts whole numbers,
metadata string pairs within the documented sizes, and error text is redacted and bounded.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import get_args

from pipeline.jobs import FailureKind, ProviderFailure
from pipeline.jobs.batch import (
    BatchCounts,
    BatchError,
    BatchInfo,
    BatchStatus,
)
from pipeline.providers.openai_batch_io import ENDPOINTS
from pipeline.providers.openai_wire import MAX_TOKENS, field
from pipeline.providers.redaction import Redactor

OBJECT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,199}")
"""What a batch or file id may look like (it goes into a URL path)."""
MAX_ERRORS = 1000
"""Batch errors kept (a failed batch may list one per line)."""
_MODEL = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
_STATUSES: dict[str, BatchStatus] = {status: status for status in get_args(BatchStatus)}


def checked_id(value: object, what: str = "file") -> str:
    """``value`` if it looks like an OpenAI object id, else a ``bad_response`` failure."""
    if isinstance(value, str) and OBJECT_ID.fullmatch(value):
        return value
    raise ProviderFailure("bad_response", f"the {what} id the server gave is not an id")


def batch_info(batch: object, redact: Redactor) -> BatchInfo:
    """A Batch object (parsed by the SDK, unvalidated) as a checked :class:`BatchInfo`."""
    raw_status = field(batch, "status")
    status = _STATUSES.get(raw_status) if isinstance(raw_status, str) else None
    if status is None:
        raise ProviderFailure(
            "bad_response",
            f"the batch status {redact.text(repr(raw_status), 40)} is not one assetpipe knows",
        )
    endpoint = field(batch, "endpoint")
    model = field(batch, "model")
    counts = field(batch, "request_counts")
    return BatchInfo(
        id=checked_id(field(batch, "id"), "batch"),
        status=status,
        endpoint=ENDPOINTS.get(endpoint) if isinstance(endpoint, str) else None,
        model=model if isinstance(model, str) and _MODEL.fullmatch(model) else None,
        input_file_id=_optional_id(field(batch, "input_file_id")),
        output_file_id=_optional_id(field(batch, "output_file_id")),
        error_file_id=_optional_id(field(batch, "error_file_id")),
        counts=BatchCounts(
            total=_whole(field(counts, "total")),
            completed=_whole(field(counts, "completed")),
            failed=_whole(field(counts, "failed")),
        ),
        metadata=_metadata(field(batch, "metadata"), redact),
        created_at=_whole(field(batch, "created_at")),
        expires_at=_whole(field(batch, "expires_at")) or None,
        errors=_errors(field(field(batch, "errors"), "data"), redact),
    )


def unanswered(
    batch: BatchInfo, expected: Sequence[str], seen: set[str]
) -> Iterator[tuple[str, ProviderFailure]]:
    """A failure for each expected request of a terminal batch that no line answered."""
    by_line = {
        error.line: error
        for error in batch.errors
        if error.line is not None and 1 <= error.line <= len(expected)
    }
    first = batch.errors[0] if batch.errors else None
    for index, custom_id in enumerate(expected, start=1):
        if custom_id in seen:
            continue
        line_error = by_line.get(index)
        if line_error is not None:
            failure = ProviderFailure(
                "invalid_request",
                f"the batch refused this request: {line_error.message}",
                code=line_error.code,
                details={"param": line_error.param} if line_error.param else None,
            )
        else:
            kind, code, message = _missing(batch, first)
            failure = ProviderFailure(kind, message, code=code)
        yield custom_id, failure


def _missing(batch: BatchInfo, first: BatchError | None) -> tuple[FailureKind, str, str]:
    """Why a request of a finished batch has no line: (kind, code, message)."""
    if batch.status == "expired":
        return "timeout", "batch_expired", "the batch expired before this request ran"
    if batch.status == "cancelled":
        return "timeout", "batch_cancelled", "the batch was cancelled before this request ran"
    if batch.status == "failed":
        if first is not None and first.code == "token_limit_exceeded":
            return "rate_limit", "token_limit_exceeded", f"the batch failed: {first.message}"
        reason = f": {first.message}" if first is not None else ""
        return "server", "batch_failed", f"the batch failed{reason}; this request did not run"
    return (
        "bad_response",
        "batch_line_missing",
        f"the batch {batch.status} without a line for this request",
    )


def _optional_id(value: object) -> str | None:
    return value if isinstance(value, str) and OBJECT_ID.fullmatch(value) else None


def _whole(value: object) -> int:
    """A count or timestamp: a whole number from 0 to MAX_TOKENS * 100, else 0."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKENS * 100:
        return value
    return 0


def _metadata(value: object, redact: Redactor) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    kept: dict[str, str] = {}
    for key, item in itertools.islice(value.items(), 16):
        if isinstance(key, str) and isinstance(item, str) and len(key) <= 64 and len(item) <= 512:
            kept[redact.text(key, 64)] = redact.text(item, 512)
    return kept


def _errors(value: object, redact: Redactor) -> tuple[BatchError, ...]:
    if not isinstance(value, list):
        return ()
    errors = []
    for item in value[:MAX_ERRORS]:
        code, message = field(item, "code"), field(item, "message")
        line, param = field(item, "line"), field(item, "param")
        errors.append(
            BatchError(
                code=redact.optional(code, 100),
                message=redact.optional(message, 500) or "(no message)",
                line=line if isinstance(line, int) and not isinstance(line, bool) else None,
                param=redact.optional(param, 200),
            )
        )
    return tuple(errors)
