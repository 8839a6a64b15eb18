"""The Batch API's files, line by line: request lines out, output and error lines in.

Requests go out as JSONL lines (``{"custom_id", "method": "POST", "url", "body"}``); edits
use the JSON edit body (``EditImageBodyJsonParam``), since a JSONL line cannot carry a
multipart upload: each input image is a base64 data URL or, when the caller uploaded it,
a ``file_id`` reference.

Answers come back as lines of an output file and an error file, in any order, matched by
``custom_id``. A success is ``{"response": {"status_code": 200, "body": ImagesResponse}}``;
a failure is either ``{"error": {"code", "message"}, "response": null}`` (not an HTTP
failure: expired, cancelled) or ``{"error": null, "response": {"status_code": 4xx/5xx,
"body": {"error": {...}}}}``. Every byte of those files is untrusted (see the threat model
in docs/reliability.md): lines are split from the stream with a cap on their length,
custom_ids are checked, and the answer is read by the same code as a synchronous one
(:mod:`openai_wire`).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pipeline.hashing import sha256_bytes
from pipeline.jobs import Endpoint, FailureKind, ImageInput, ImageRequest, ImageResult
from pipeline.jobs import ProviderFailure as Failure
from pipeline.jobs.batch import BatchLine
from pipeline.providers.openai_request import EDIT_JSON_PARAMS, GENERATE_PARAMS, svg_param
from pipeline.providers.openai_wire import (
    ID_CHARS,
    MAX_IMAGE_BYTES,
    MODERATION_CODES,
    base64_limit,
    classify,
    field,
    image_result,
)
from pipeline.providers.redaction import Redactor

EndpointURL = Literal["/v1/images/generations", "/v1/images/edits"]
ENDPOINT_URLS: dict[Endpoint, EndpointURL] = {
    "generate": "/v1/images/generations",
    "edit": "/v1/images/edits",
}
ENDPOINTS: dict[str, Endpoint] = {url: endpoint for endpoint, url in ENDPOINT_URLS.items()}

MAX_DATA_URL_CHARS = 20_971_520
"""Longest ``image_url`` the JSON edit body takes (``ImageRefParam.image_url.maxLength``)."""
MAX_LINE_BYTES = base64_limit(MAX_IMAGE_BYTES) + 1024 * 1024
"""Longest output line read: the base64 of the largest image accepted plus room for JSON."""
CUSTOM_ID = re.compile(r"[A-Za-z0-9_.:=+-]{1,64}")
"""custom_ids assetpipe writes, and the only ones it reads back (64 characters is safe)."""

_HEAD_BYTES = 4096
_CUSTOM_ID_IN_HEAD = re.compile(rb'"custom_id"\s*:\s*"([A-Za-z0-9_.:=+-]{1,64})"')

_NOT_RUN: dict[str, tuple[FailureKind, str]] = {
    "batch_expired": ("timeout", "the batch expired before this request ran"),
    "batch_cancelled": ("timeout", "the batch was cancelled before this request ran"),
}
_LINE_CODES: dict[str, FailureKind] = {
    "rate_limit_exceeded": "rate_limit",
    "token_limit_exceeded": "rate_limit",
    "insufficient_quota": "quota",
    "server_error": "server",
    "internal_error": "server",
    "timeout": "timeout",
    **dict.fromkeys(MODERATION_CODES, "moderation"),
}


def data_url(image: ImageInput) -> str:
    """``image`` as a base64 data URL."""
    return f"data:{image.mime};base64,{base64.b64encode(image.data).decode('ascii')}"


def data_url_chars(image: ImageInput) -> int:
    """The length of :func:`data_url` of ``image``, without building it."""
    return len(f"data:{image.mime};base64,") + base64_limit(len(image.data))


def request_body(request: ImageRequest, file_ids: Mapping[str, str]) -> dict[str, Any]:
    """The JSON body of ``request``; an input whose sha256 is in ``file_ids`` goes by
    reference, any other inline as a data URL (raises ValueError if one is too long)."""
    params = request.params
    body: dict[str, Any] = {"model": request.model, "prompt": request.prompt}
    if request.endpoint == "generate":
        body.update({k: params[k] for k in GENERATE_PARAMS if k in params})
        body.update(svg_param(params))
        return body
    body["images"] = [_image_ref(image, file_ids) for image in request.images]
    if request.mask is not None:
        body["mask"] = _image_ref(request.mask, file_ids)
    if request.markup is not None:
        body["markup"] = _image_ref(request.markup, file_ids)
    body.update({k: params[k] for k in EDIT_JSON_PARAMS if k in params})
    body.update(svg_param(params))
    return body


def request_line(
    custom_id: str, request: ImageRequest, file_ids: Mapping[str, str] | None = None
) -> BatchLine:
    """``request`` as one line of a batch input file (see :func:`request_body`)."""
    if not CUSTOM_ID.fullmatch(custom_id):
        raise ValueError(
            f"custom_id {custom_id!r} is not 1 to 64 letters, digits and '_.:=+-' characters"
        )
    if request.endpoint == "edit" and not request.images:
        raise ValueError(f"edit {custom_id!r} has no input image")
    line = {
        "custom_id": custom_id,
        "method": "POST",
        "url": ENDPOINT_URLS[request.endpoint],
        "body": request_body(request, file_ids or {}),
    }
    data = json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return BatchLine(custom_id, request.endpoint, request.model, data)


def _image_ref(image: ImageInput, file_ids: Mapping[str, str]) -> dict[str, str]:
    file_id = file_ids.get(sha256_bytes(image.data))
    if file_id is not None:
        return {"file_id": file_id}
    if data_url_chars(image) > MAX_DATA_URL_CHARS:
        raise ValueError(
            f"input {image.filename!r} ({len(image.data):,} bytes) is too large for a data "
            "URL; upload it and reference it by file_id"
        )
    return {"image_url": data_url(image)}


@dataclass(frozen=True, slots=True)
class LongLine:
    """A line longer than the cap: its length and its first bytes (to find its custom_id)."""

    length: int
    head: bytes


async def split_lines(
    chunks: AsyncIterator[bytes], max_line: int
) -> AsyncIterator[bytes | LongLine]:
    """The non-empty lines of a byte stream; a line over ``max_line`` bytes is skipped as it
    arrives (only its first bytes are kept) and comes out as a :class:`LongLine`."""
    buffer = bytearray()
    long_length = -1  # -1: not in a long line
    async for chunk in chunks:
        start = 0
        while start <= len(chunk):
            end = chunk.find(b"\n", start)
            piece = chunk[start : end if end >= 0 else len(chunk)]
            if long_length >= 0:
                long_length += len(piece)
            elif len(buffer) + len(piece) > max_line:
                long_length = len(buffer) + len(piece)
                del buffer[_HEAD_BYTES:]
                buffer += piece[: max(0, _HEAD_BYTES - len(buffer))]
            else:
                buffer += piece
            if end < 0:
                break
            if long_length >= 0:
                yield LongLine(long_length, bytes(buffer))
            elif buffer.strip():
                yield bytes(buffer)
            buffer.clear()
            long_length = -1
            start = end + 1
    if long_length >= 0:
        yield LongLine(long_length, bytes(buffer))
    elif buffer.strip():
        yield bytes(buffer)


def long_line_result(line: LongLine, max_line: int) -> tuple[str, Failure] | None:
    """A refused over-long line as a failure of its request, if its custom_id can be found."""
    match = _CUSTOM_ID_IN_HEAD.search(line.head)
    if match is None:
        return None
    return match[1].decode("ascii"), Failure(
        "bad_response",
        f"the batch answer for this request is a line of {line.length:,} bytes, more than "
        f"the {max_line:,} accepted; it was not read",
    )


def parse_line(
    line: bytes,
    *,
    redact: Redactor,
    formats: Mapping[str, str] | None = None,
    max_image_bytes: int = MAX_IMAGE_BYTES,
) -> tuple[str, ImageResult | Failure] | None:
    """One output or error line as (custom_id, result); None for a line that names no
    usable custom_id (it cannot be matched to a request, so it is not used)."""
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        return _unparsable(line)
    custom_id = field(record, "custom_id") if isinstance(record, Mapping) else None
    if not isinstance(custom_id, str) or not CUSTOM_ID.fullmatch(custom_id):
        return None
    error, response = record.get("error"), record.get("response")
    status = field(response, "status_code")
    request_id = field(response, "request_id")
    body = field(response, "body")
    if isinstance(error, Mapping):
        return custom_id, line_error(error, redact, request_id)
    if isinstance(status, int) and not isinstance(status, bool) and 200 <= status < 300:
        shown_id = redact.optional(request_id, ID_CHARS)
        try:
            result = image_result(
                body,
                default_format=(formats or {}).get(custom_id, "png"),
                request_id=shown_id,
                redact=redact,
                max_image_bytes=max_image_bytes,
            )
        except Failure as failure:
            return custom_id, failure
        return custom_id, result
    if isinstance(status, int) and not isinstance(status, bool) and 400 <= status <= 599:
        inner = field(body, "error")
        inner = inner if isinstance(inner, Mapping) else {}
        code, message = inner.get("code"), inner.get("message")
        return custom_id, classify(
            status,
            code if isinstance(code, str) else None,
            message if isinstance(message, str) else f"the request failed with HTTP {status}",
            redact=redact,
            param=inner.get("param"),
            body=inner,
            request_id=request_id,
        )
    return custom_id, Failure(
        "bad_response", "the batch answer for this request holds neither an image nor an error"
    )


def _unparsable(line: bytes) -> tuple[str, Failure] | None:
    match = _CUSTOM_ID_IN_HEAD.search(line[:_HEAD_BYTES])
    if match is None:
        return None
    return match[1].decode("ascii"), Failure(
        "bad_response", "the batch answer for this request is not JSON"
    )


def line_error(error: Mapping[str, Any], redact: Redactor, request_id: object) -> Failure:
    """A failure that is not an HTTP answer: ``{"code", "message"}`` only."""
    raw_code = error.get("code")
    code = raw_code if isinstance(raw_code, str) else None
    message = error.get("message")
    text = message if isinstance(message, str) and message else None
    kind: FailureKind
    if code in _NOT_RUN:
        kind, default = _NOT_RUN[code]
    else:
        kind = _LINE_CODES.get(code or "", "server")
        if code is not None and code.startswith(("invalid", "missing", "unsupported")):
            kind = "invalid_request"
        default = "the batch could not run this request"
    return Failure(
        kind,
        redact.text(text or default),
        code=redact.optional(code, 100),
        request_id=redact.optional(request_id, ID_CHARS),
    )
