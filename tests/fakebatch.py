"""The Files and Batches endpoints of the fake OpenAI API (``tests/fakeapi.py``).

``FakeImagesAPI`` owns one ``FakeBatchAPI`` as ``api.batch`` and hands it every request its
own routes do not take. It serves, over the same real HTTP server and for the real SDK:

- ``POST /v1/files`` (multipart ``file`` + ``purpose``; ``batch`` files must be ``.jsonl``
  and at most ``max_file_bytes``), ``GET /v1/files/{id}``, ``GET /v1/files/{id}/content``
  (sent in ``content_chunk_bytes`` writes), ``DELETE /v1/files/{id}``;
- ``POST /v1/batches`` (``input_file_id`` of a ``batch`` file, ``endpoint`` one of the two
  image endpoints or ``/v1/responses``, ``completion_window: "24h"``, ``metadata`` of at
  most 16 string pairs),
  ``GET /v1/batches/{id}``, ``GET /v1/batches`` (newest first, ``after``/``limit`` 1-100,
  default 20), ``POST /v1/batches/{id}/cancel``.

A batch moves on only when it is retrieved (poll counts, never wall time, so no test
depends on the machine's speed): ``validating`` for ``validating_polls`` retrieves, then the
input file is validated (a bad file makes the batch ``failed`` with ``errors.data`` naming
the lines: ``invalid_json_line``, ``missing_required_parameter``, ``invalid_request``,
``invalid_url``, ``duplicate_custom_id``, ``mismatched_model``, ``model_not_found``,
``streaming_unsupported``, ``model_not_supported`` for a model in ``unbatched_models``,
the per-model Batch refusal; too many enqueued tokens makes it ``failed`` with
``token_limit_exceeded``), then ``in_progress`` for ``in_progress_polls`` retrieves while
the lines run a share at a time, ``finalizing`` for ``finalizing_polls``, then
``completed``. Each line runs like a synchronous request (the same validation, moderation,
drawing, usage and billing as ``fakeapi``; edits take the JSON body with ``images`` and
``mask`` as data URLs or ``file_id`` of ``vision``/``user_data`` uploads) and is billed
once when it succeeds. Output and error lines are shuffled (``shuffle_seed``); failed lines
go only to the error file, as ``{"error": null, "response": {"status_code": 4xx/5xx, "body":
{"error": ...}}}`` or, for failures that are not HTTP answers, ``{"error": {"code",
"message"}, "response": null}``. A batch where every line failed has no output file.

Faults, per line (``line_faults``: custom_id, or ``"prompt:<words>"`` for prompts holding
them, mapped to a kind or a list of kinds used one per run): "rate_limit", "server_error",
"moderation", "insufficient_quota", "echo_key" (a 400 echoing the caller's key), each also
as "object:<kind>" in the non-HTTP shape; and delivery faults of a billed success:
"huge_line" (a line of ``huge_line_bytes``), "garbage_line" (not JSON), "duplicate_line",
"drop_line" (the line is lost). Per batch (``batch_script``, one per created batch):
"ok", "expire" (``expired`` after ``expire_after_polls`` in-progress polls: finished lines
in the output, the rest ``batch_expired`` in the error file), "token_limit_exceeded".
``cancel`` goes ``cancelling`` for ``cancelling_polls`` retrieves, then ``cancelled`` with
the lines that ran. Lines an expired or cancelled batch never ran are ``batch_expired`` /
``batch_cancelled`` error lines, or absent when ``unrun_lines_in_error_file`` is False.

``/v1/responses`` lines are judged by the fake's judge (``tests/fakejudge.py``,
``api.judge.answer_line``: the same deterministic verdicts and ``judge_script`` modes as a
direct call); a ``prompt:<words>`` fault matches the prompt the judged image was drawn
for. They are counted in ``judge_lines_billed`` (not in ``images_billed``).

Hostile delivery: ``retrieve_faults`` (a list of "server_error" or "ok", one used per
``GET /v1/batches/{id}``, before the batch is even looked up) answers a poll with a 500;
``trickle_content`` sends result files one byte per ``api.trickle_seconds`` (below any
per-read timeout, so only a total deadline ends the download) until the client hangs up,
the fake stops, or ``api.slow_seconds`` pass.

Counters (``stats()``, also at ``GET /_batch/stats``; ``POST /_batch/config`` configures):
batches created, files uploaded, retrieves (and those answered with a retrieve fault),
lists, cancels, content downloads and bytes, lines run, lines and images billed, billed
images per custom_id, and the synchronous Images requests of the same fake
(``sync_image_requests``: zero for a build that only batched).
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import re
import secrets
import sys
import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qs, urlsplit

ENDPOINTS = {
    "/v1/images/generations": "generations",
    "/v1/images/edits": "edits",
    "/v1/responses": "responses",
}
OTHER_ENDPOINTS = frozenset(
    {"/v1/chat/completions", "/v1/embeddings", "/v1/completions"}
    | {"/v1/moderations", "/v1/videos"}
)
PURPOSES = frozenset({"assistants", "batch", "fine-tune", "vision", "user_data", "evals"})
INPUT_PURPOSES = frozenset({"vision", "user_data"})
LINE_FAULTS = frozenset({"rate_limit", "server_error", "moderation", "insufficient_quota"})
LINE_FAULTS |= {"echo_key"} | {f"object:{k}" for k in LINE_FAULTS}
DELIVERY_FAULTS = frozenset({"huge_line", "garbage_line", "duplicate_line", "drop_line"})
BATCH_OUTCOMES = frozenset({"ok", "expire", "token_limit_exceeded"})
MAX_DATA_URL_CHARS = 20_971_520
WINDOW_S = 24 * 3600
DEFAULTS: dict[str, Any] = {
    "validating_polls": 1,
    "in_progress_polls": 2,
    "finalizing_polls": 1,
    "cancelling_polls": 1,
    "expire_after_polls": 1,
    "batch_script": (),
    "line_faults": {},
    "shuffle_seed": 0,
    "enqueued_token_limit": None,
    "max_lines": 50_000,
    "max_file_bytes": 200_000_000,
    "huge_line_bytes": 8 * 1024 * 1024,
    "content_chunk_bytes": 64 * 1024,
    "unrun_lines_in_error_file": True,
    "hold": None,
    "retrieve_faults": (),
    "trickle_content": False,
    "unbatched_models": (),
}
RETRIEVE_FAULTS = frozenset({"ok", "server_error"})
HOLDS = frozenset({"create_before", "create_after", "content"})
"""Where a request may be held until ``release`` is set, so a test can kill the client
there: before a batch is created, after it is created but before the answer is sent, or
halfway through a result file. ``held`` is set when a request reaches the point."""
COUNTERS = (
    "batches_created",
    "files_uploaded",
    "retrieves",
    "retrieve_faults",
    "lists",
    "cancels",
    "content_downloads",
    "content_bytes",
    "lines_run",
    "lines_billed",
    "images_billed",
    "judge_lines_billed",
)
_FILE_PATH = re.compile(r"^/v1/files/(?P<id>[^/]+)(?P<content>/content)?$")
_BATCH_PATH = re.compile(r"^/v1/batches/(?P<id>[^/]+)(?P<cancel>/cancel)?$")
_DATA_URL = re.compile(r"^data:image/(png|jpeg|jpg|webp);base64,(.*)$", re.DOTALL)
_CODES = {
    "rate_limit": (429, "rate_limit_exceeded", "requests", "Rate limit exceeded. Retry later."),
    "server_error": (500, "server_error", "server_error", "The server had an error."),
    "insufficient_quota": (429, "insufficient_quota", "insufficient_quota", "Quota exceeded."),
}


@dataclass(frozen=True)
class _Req:
    body: bytes
    query: dict[str, list[str]]
    auth: str | None
    content_type: str


def _id(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(12)}"


@dataclass
class FakeFile:
    id: str
    purpose: str
    filename: str
    data: bytes
    created_at: int
    expires_at: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
        }


@dataclass
class FakeBatch:
    id: str
    endpoint: str
    input_file_id: str
    metadata: dict[str, str] | None
    created_at: int
    outcome: str
    polls: dict[str, int]
    api_key: str
    status: str = "validating"
    model: str | None = None
    seen: int = 0  # retrieves seen in the current status
    lines: list[dict[str, Any]] = field(default_factory=list)
    done: int = 0  # lines run so far
    out: list[bytes] = field(default_factory=list)
    err: list[bytes] = field(default_factory=list)
    completed: int = 0
    failed: int = 0
    errors: list[dict[str, Any]] | None = None
    times: dict[str, int] = field(default_factory=dict)
    output_file_id: str | None = None
    error_file_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        stamps = ("in_progress", "expires", "finalizing", "completed", "failed", "expired")
        stamps += ("cancelling", "cancelled")
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "model": self.model,
            "errors": None if self.errors is None else {"object": "list", "data": self.errors},
            "input_file_id": self.input_file_id,
            "completion_window": "24h",
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            **{f"{s}_at": self.times.get(s) for s in stamps},
            "request_counts": {
                "total": len(self.lines),
                "completed": self.completed,
                "failed": self.failed,
            },
            "metadata": self.metadata,
        }


class FakeBatchAPI:
    """The Files and Batches endpoints of one ``FakeImagesAPI`` (see the module doc)."""

    def __init__(self, api: Any) -> None:
        self.api = api
        self.fk = sys.modules[type(api).__module__]  # fakeapi, even when run as __main__
        self._lock = threading.RLock()
        self.files: dict[str, FakeFile] = {}
        self.batches: dict[str, FakeBatch] = {}  # in creation order
        self._faults_used: Counter[str] = Counter()
        for name, value in DEFAULTS.items():
            setattr(self, name, value)
        self.batch_script: deque[str] = deque()
        self.retrieve_faults: deque[str] = deque()
        self.held = threading.Event()
        self.release = threading.Event()
        self.reset_counters()

    def configure(self, **config: Any) -> None:
        """Set batch config knobs (names as in ``DEFAULTS``)."""
        unknown = sorted(set(config) - set(DEFAULTS))
        if unknown:
            raise ValueError(f"unknown batch config {unknown}")
        with self._lock:
            for name, given in config.items():
                value = given
                if name == "batch_script":
                    value = deque([given] if isinstance(given, str) else given)
                    if set(value) - BATCH_OUTCOMES:
                        raise ValueError(f"batch outcomes are {sorted(BATCH_OUTCOMES)}")
                if name == "retrieve_faults":
                    value = deque([given] if isinstance(given, str) else given)
                    if set(value) - RETRIEVE_FAULTS:
                        raise ValueError(f"retrieve faults are {sorted(RETRIEVE_FAULTS)}")
                if name == "hold" and value is not None and value not in HOLDS:
                    raise ValueError(f"holds are {sorted(HOLDS)}")
                if name == "line_faults":
                    kinds = {k for v in value.values() for k in ([v] if isinstance(v, str) else v)}
                    if kinds - LINE_FAULTS - DELIVERY_FAULTS - {"ok"}:
                        raise ValueError(f"unknown line faults {sorted(kinds)}")
                    self._faults_used.clear()
                setattr(self, name, value)

    def reset_counters(self) -> None:
        with self._lock:
            self.counters: Counter[str] = Counter(dict.fromkeys(COUNTERS, 0))
            self.billed_by_custom_id: Counter[str] = Counter()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                **self.counters,
                "billed_by_custom_id": dict(self.billed_by_custom_id),
                "sync_image_requests": len(self.api.requests),
                "statuses": dict(Counter(b.status for b in self.batches.values())),
            }

    # HTTP ------------------------------------------------------------------------------------

    def serve(self, handler: Any, path: str, body: bytes) -> bool:
        """Answer ``handler`` if the request is one of ours; False if it is not."""
        method = handler.command
        query = parse_qs(urlsplit(handler.path).query)
        if path in ("/_batch/stats", "/_batch/config"):
            try:
                self._reply(handler, 200, self._control(path, body))
            except (TypeError, ValueError) as exc:
                self._reply(handler, 400, {"error": {"message": f"Invalid config: {exc}"}})
            return True
        route = self._route(method, path)
        if route is None:
            return False
        auth = handler.headers.get("Authorization")
        creating = route[0] == self._create
        if creating and self.hold == "create_before":
            self._hold()
            handler.close_connection = True  # the client was killed here: nothing is created
            return True
        try:
            self.api._authenticate(auth)
            with self._lock:
                if route[0] == "content":
                    data = self._file(route[1]).data
                    self.counters["content_downloads"] += 1
                    self.counters["content_bytes"] += len(data)
                else:
                    req = _Req(body, query, auth, handler.headers.get("Content-Type", ""))
                    status, answer = route[0](*route[1:], req=req)
        except self.fk.ApiError as exc:
            self._reply(handler, exc.status, {"error": exc.body}, exc.headers)
            return True
        if route[0] == "content":
            self._stream(handler, data)
        else:
            if creating and status == 200 and self.hold == "create_after":
                self._hold()
            self._reply(handler, status, answer)
        return True

    def _trickle(self, handler: Any, data: bytes) -> None:
        """Announce the whole file, then send it a byte at a time (``api._trickle``); the
        connection is closed after, since the body may be cut off midway."""
        handler.close_connection = True
        handler.send_response(200)
        handler.send_header("Content-Type", "application/octet-stream")
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("Connection", "close")
        handler.end_headers()
        self.api._trickle(handler, data)

    def _hold(self) -> None:
        """Stop here until the test releases the request (or a minute passes)."""
        self.held.set()
        self.release.wait(timeout=60)

    def _route(self, method: str, path: str) -> tuple[Any, ...] | None:
        if path == "/v1/files" and method == "POST":
            return (self._upload,)
        if path == "/v1/batches":
            return {"POST": (self._create,), "GET": (self._list,)}.get(method)
        match = _FILE_PATH.match(path)
        if match and match["content"] and method == "GET":
            return ("content", match["id"])
        if match and not match["content"] and method in ("GET", "DELETE"):
            return (self._file_get if method == "GET" else self._file_delete, match["id"])
        match = _BATCH_PATH.match(path)
        if match and match["cancel"] and method == "POST":
            return (self._cancel, match["id"])
        if match and not match["cancel"] and method == "GET":
            return (self._retrieve, match["id"])
        return None

    def _control(self, path: str, body: bytes) -> dict[str, Any]:
        if path == "/_batch/config":
            self.configure(**json.loads(body or b"{}"))
        return self.stats()

    def _reply(
        self, handler: Any, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        reply = self.fk._Reply(status, body, {"x-request-id": _id("req_"), **(headers or {})})
        self.api._send(handler, reply)

    def _stream(self, handler: Any, data: bytes) -> None:
        if self.trickle_content:
            self._trickle(handler, data)
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "application/octet-stream")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        step = max(1, self.content_chunk_bytes)
        try:
            for start in range(0, len(data), step):
                if self.hold == "content" and start >= len(data) // 2:
                    self._hold()
                handler.wfile.write(data[start : start + step])
                handler.wfile.flush()
        except OSError:
            handler.close_connection = True  # the client stopped reading

    # files -----------------------------------------------------------------------------------

    def _upload(self, *, req: _Req) -> tuple[int, dict[str, Any]]:
        fields, uploads = _multipart(req.content_type, req.body)
        purpose = fields.get("purpose")
        if purpose not in PURPOSES:
            raise self.fk._invalid("purpose", f"Invalid value for 'purpose': {purpose!r}.")
        if "file" not in uploads:
            raise self.fk._invalid("file", "Missing required parameter: 'file'.")
        filename, data = uploads["file"]
        if purpose == "batch":
            if not filename.endswith(".jsonl"):
                raise self.fk._invalid("file", "Invalid file format for Batch API. Must be .jsonl")
            if len(data) > self.max_file_bytes:
                raise self.fk._invalid(
                    "file",
                    f"File is too large: {len(data):,} bytes; batch input files may be at most "
                    f"{self.max_file_bytes:,} bytes.",
                )
        now = int(self.api.clock())
        seconds = fields.get("expires_after[seconds]")
        item = FakeFile(_id("file-"), purpose, filename, data, now)
        if seconds is not None:
            item.expires_at = now + int(seconds)
        self.files[item.id] = item
        self.counters["files_uploaded"] += 1
        return 200, item.as_dict()

    def _file(self, file_id: str) -> FakeFile:
        item = self.files.get(file_id)
        if item is None:
            raise self.fk.ApiError(404, f"No such File object: {file_id}", param="id")
        return item

    def _file_get(self, file_id: str, *, req: _Req) -> tuple[int, dict[str, Any]]:
        return 200, self._file(file_id).as_dict()

    def _file_delete(self, file_id: str, *, req: _Req) -> tuple[int, dict[str, Any]]:
        del self.files[self._file(file_id).id]
        return 200, {"id": file_id, "object": "file", "deleted": True}

    # batches ---------------------------------------------------------------------------------

    def _create(self, *, req: _Req) -> tuple[int, dict[str, Any]]:
        try:
            fields = json.loads(req.body)
        except ValueError as exc:
            raise self.fk.ApiError(
                400, "We could not parse the JSON body of your request."
            ) from exc
        if not isinstance(fields, dict):
            raise self.fk.ApiError(400, "The JSON body of your request must be an object.")
        allowed = {"input_file_id", "endpoint", "completion_window", "metadata"}
        for name in set(fields) - allowed - {"output_expires_after"}:
            raise self.fk.ApiError(
                400, f"Unknown parameter: '{name}'.", code="unknown_parameter", param=name
            )
        source = self._file(str(fields.get("input_file_id")))
        if source.purpose != "batch":
            raise self.fk._invalid("input_file_id", "The input file must have purpose 'batch'.")
        endpoint = fields.get("endpoint")
        if endpoint not in ENDPOINTS:
            known = "is not served by the fake" if endpoint in OTHER_ENDPOINTS else "is unknown"
            raise self.fk._invalid("endpoint", f"Invalid value: '{endpoint}' {known}.")
        if fields.get("completion_window") != "24h":
            raise self.fk._invalid("completion_window", "Supported values are: '24h'.")
        metadata = fields.get("metadata")
        if metadata is not None and not _good_metadata(metadata):
            raise self.fk._invalid(
                "metadata", "Metadata is at most 16 pairs; keys <= 64 chars, values <= 512."
            )
        outcome = self.batch_script.popleft() if self.batch_script else "ok"
        polls = {k: int(getattr(self, k)) for k in DEFAULTS if k.endswith("_polls")}
        key = req.auth[7:].strip() if req.auth else ""
        batch = FakeBatch(
            _id("batch_"), endpoint, source.id, metadata, int(self.api.clock()), outcome, polls, key
        )
        batch.times["expires"] = batch.created_at + WINDOW_S
        self.batches[batch.id] = batch
        self.counters["batches_created"] += 1
        return 200, batch.as_dict()

    def _batch(self, batch_id: str) -> FakeBatch:
        batch = self.batches.get(batch_id)
        if batch is None:
            raise self.fk.ApiError(404, f"No batch found with id '{batch_id}'.", param="batch_id")
        return batch

    def _retrieve(self, batch_id: str, *, req: _Req) -> tuple[int, dict[str, Any]]:
        fault = self.retrieve_faults.popleft() if self.retrieve_faults else "ok"
        if fault == "server_error":
            self.counters["retrieve_faults"] += 1
            status, code, type_, message = _CODES[fault]
            raise self.fk.ApiError(status, message, code=code, type_=type_)
        batch = self._batch(batch_id)
        self.counters["retrieves"] += 1
        self._advance(batch)
        return 200, batch.as_dict()

    def _list(self, *, req: _Req) -> tuple[int, dict[str, Any]]:
        query = req.query
        self.counters["lists"] += 1
        limit = self.fk._integer({"limit": query.get("limit", ["20"])[0]}, "limit", 20, 1, 100)
        newest = list(reversed(self.batches.values()))
        after = query.get("after", [None])[0]
        if after is not None:
            ids = [b.id for b in newest]
            newest = newest[ids.index(after) + 1 :] if after in ids else []
        page = newest[:limit]
        return 200, {
            "object": "list",
            "data": [b.as_dict() for b in page],
            "first_id": page[0].id if page else None,
            "last_id": page[-1].id if page else None,
            "has_more": len(newest) > limit,
        }

    def _cancel(self, batch_id: str, *, req: _Req) -> tuple[int, dict[str, Any]]:
        batch = self._batch(batch_id)
        if batch.status not in ("validating", "in_progress", "finalizing"):
            raise self.fk.ApiError(
                409, f"Cannot cancel a batch with status '{batch.status}'.", param=None
            )
        self.counters["cancels"] += 1
        batch.status, batch.seen = "cancelling", 0
        batch.times["cancelling"] = int(self.api.clock())
        return 200, batch.as_dict()

    # the life of a batch ---------------------------------------------------------------------

    def _advance(self, batch: FakeBatch) -> None:
        """One retrieve's worth of progress."""
        polls = batch.polls
        if batch.status == "validating":
            if batch.seen < polls["validating_polls"]:
                batch.seen += 1
                return
            if not self._validate(batch):
                return
            batch.status, batch.seen = "in_progress", 0
            batch.times["in_progress"] = int(self.api.clock())
        if batch.status == "in_progress":
            if batch.outcome == "expire" and batch.seen >= polls["expire_after_polls"]:
                self._finish(batch, "expired", "batch_expired")
                return
            if batch.seen < polls["in_progress_polls"]:
                batch.seen += 1
                self._run(batch, len(batch.lines) * batch.seen // (polls["in_progress_polls"] + 1))
                return
            self._run(batch, len(batch.lines))
            batch.status, batch.seen = "finalizing", 0
            batch.times["finalizing"] = int(self.api.clock())
        if batch.status == "finalizing":
            if batch.seen < polls["finalizing_polls"]:
                batch.seen += 1
                return
            self._finish(batch, "completed", None)
        elif batch.status == "cancelling":
            if batch.seen < polls["cancelling_polls"]:
                batch.seen += 1
                return
            self._finish(batch, "cancelled", "batch_cancelled")

    def _fail(self, batch: FakeBatch, errors: list[dict[str, Any]]) -> bool:
        batch.status, batch.errors = "failed", errors
        batch.times["failed"] = int(self.api.clock())
        return False

    def _validate(self, batch: FakeBatch) -> bool:
        """Check the input file; False (and the batch ``failed``) if it is refused."""
        source = self.files.get(batch.input_file_id)
        if source is None:
            return self._fail(batch, [_error("invalid_request", "The input file is gone.")])
        errors: list[dict[str, Any]] = []
        seen: set[str] = set()
        lines = [line for line in source.data.split(b"\n") if line.strip()]
        if not lines:
            errors.append(_error("invalid_request", "The input file holds no requests."))
        if len(lines) > self.max_lines:
            errors.append(
                _error(
                    "invalid_request",
                    f"The input file holds {len(lines):,} requests; "
                    f"the most is {self.max_lines:,}.",
                )
            )
        for number, raw in enumerate(lines, start=1):
            try:
                batch.lines.append(self._check_line(batch, raw, seen))
            except _Refused as refused:
                errors.append({**refused.error, "line": number})
        if errors:
            batch.lines = []
            return self._fail(batch, errors[:1000])
        limit = self.enqueued_token_limit
        tokens = sum(line["tokens"] for line in batch.lines)
        enqueued = sum(
            line["tokens"]
            for other in self.batches.values()
            if other is not batch
            and other.status in ("in_progress", "finalizing")
            and other.model == batch.model
            for line in other.lines[other.done :]
        )
        if batch.outcome == "token_limit_exceeded" or (
            limit is not None and tokens + enqueued > limit
        ):
            message = (
                f"Enqueued token limit reached for {batch.model} in organization org-fake. "
                f"Limit: {limit or tokens:,} enqueued tokens. Please try again once some "
                "in_progress batches have been completed."
            )
            batch.lines = []
            return self._fail(batch, [_error("token_limit_exceeded", message)])
        return True

    def _check_line(self, batch: FakeBatch, raw: bytes, seen: set[str]) -> dict[str, Any]:
        """The line as a request; raises _Refused if it is refused."""
        try:
            request = json.loads(raw)
        except ValueError:
            raise _Refused(
                "invalid_json_line", "This line is not parseable as valid JSON."
            ) from None
        if not isinstance(request, dict):
            raise _Refused("invalid_request", "Each line must be a JSON object.")
        for name, kind in (("custom_id", str), ("method", str), ("url", str), ("body", dict)):
            if name not in request:
                raise _Refused("missing_required_parameter", f"Missing {name}.", name)
            if not isinstance(request[name], kind):
                raise _Refused("invalid_request", f"{name} has the wrong type.", name)
        custom_id, body = request["custom_id"], request["body"]
        if request["method"] != "POST":
            raise _Refused("invalid_request", "Method must be POST.", "method")
        if request["url"] != batch.endpoint:
            raise _Refused(
                "invalid_url",
                "The URL provided for this request does not match the batch endpoint.",
                "url",
            )
        if custom_id in seen:
            raise _Refused(
                "duplicate_custom_id",
                "The custom_id for this request is a duplicate of another request. The "
                "custom_id parameter must be unique for each individual request in a batch.",
                "custom_id",
            )
        seen.add(custom_id)
        if body.get("stream"):
            raise _Refused("streaming_unsupported", "Streaming is not supported.", "body.stream")
        model = body.get("model")
        judging = ENDPOINTS[batch.endpoint] == "responses"  # a judge model, not an image one
        if not isinstance(model, str) or (
            not judging
            and (
                model in self.fk.RETIRED_MODELS
                or (self.api.models is not None and model not in self.api.models)
            )
        ):
            raise _Refused("model_not_found", f"The model '{model}' does not exist.", "body.model")
        if model in self.unbatched_models:
            raise _Refused(
                "model_not_supported",
                f"The model '{model}' is not supported by the Batch API.",
                "body.model",
            )
        batch.model = batch.model or model
        if model != batch.model:
            raise _Refused(
                "mismatched_model",
                f"Requests in a batch must all use one model: '{model}' after '{batch.model}'.",
                "body.model",
            )
        return {"custom_id": custom_id, "body": body, "tokens": self._tokens(batch, body)}

    def _tokens(self, batch: FakeBatch, body: dict[str, Any]) -> int:
        if ENDPOINTS[batch.endpoint] == "responses":
            return 1000
        fields = {k: v for k, v in body.items() if k not in ("images", "mask", "markup")}
        try:
            params = self.fk._validate(ENDPOINTS[batch.endpoint], fields, self.api.models)
        except self.fk.ApiError:
            return 0
        per = self.fk.OUTPUT_TOKENS_PER_MEGAPIXEL[params.quality]
        return round(per * params.width * params.height / (1024 * 1024)) * params.n

    def _run(self, batch: FakeBatch, upto: int) -> None:
        while batch.done < min(upto, len(batch.lines)):
            self._run_line(batch, batch.lines[batch.done])
            batch.done += 1

    def _fault(self, line: dict[str, Any]) -> str | None:
        prompt = str(line["body"].get("prompt", ""))
        if "input" in line["body"]:  # a judge line: the prompt of the image it judges
            prompt = self.api.judge.prompt_of(line["body"])
        for key, value in self.line_faults.items():
            matched = key == line["custom_id"] or (
                key.startswith("prompt:") and key.removeprefix("prompt:") in prompt
            )
            if matched:
                kinds = [value] if isinstance(value, str) else list(value)
                used = self._faults_used[key]
                self._faults_used[key] += 1
                return kinds[min(used, len(kinds) - 1)] if kinds else None
        return None

    def _run_line(self, batch: FakeBatch, line: dict[str, Any]) -> None:
        self.counters["lines_run"] += 1
        custom_id, fault = line["custom_id"], self._fault(line)
        try:
            if fault in LINE_FAULTS:
                self._raise_fault(str(fault), batch)
            body = self._serve_line(batch, line)
        except self.fk.ApiError as exc:
            batch.failed += 1
            if fault is not None and fault.startswith("object:"):
                error = {"code": exc.body["code"], "message": exc.body["message"]}
                batch.err.append(_line(custom_id, None, error))
            else:
                response = {
                    "status_code": exc.status,
                    "request_id": _id("req_"),
                    "body": {"error": exc.body},
                }
                batch.err.append(_line(custom_id, response, None))
            return
        batch.completed += 1
        self.counters["lines_billed"] += 1
        if "output" in body:  # a verdict
            self.counters["judge_lines_billed"] += 1
            self.billed_by_custom_id[custom_id] += 1
        else:
            n = len(body["data"])
            self.counters["images_billed"] += n
            self.billed_by_custom_id[custom_id] += n
        response = {"status_code": 200, "request_id": _id("req_"), "body": body}
        text = _line(custom_id, response, None)
        if fault == "huge_line" and "data" in body:
            body["data"][0]["b64_json"] = "A" * self.huge_line_bytes
            text = _line(custom_id, response, None)
        elif fault == "garbage_line":
            text = text[: len(text) // 2]
        if fault != "drop_line":
            batch.out.append(text)
        if fault == "duplicate_line":
            batch.out.append(text)

    def _raise_fault(self, fault: str, batch: FakeBatch) -> None:
        kind = fault.removeprefix("object:")
        if kind == "echo_key":
            key = batch.api_key
            raise self.fk.ApiError(
                400,
                f"Invalid request signed with {key} (Authorization: Bearer {key}).",
                code="invalid_value",
                param="prompt",
            )
        if kind == "moderation":
            raise self.api._moderation_error()
        status, code, type_, message = _CODES[kind]
        raise self.fk.ApiError(status, message, code=code, type_=type_)

    def _serve_line(self, batch: FakeBatch, line: dict[str, Any]) -> dict[str, Any]:
        """Run one line like a synchronous request; the ImagesResponse body (or, for a
        judge line, the Response), billed."""
        body = dict(line["body"])
        endpoint = ENDPOINTS[batch.endpoint]
        if endpoint == "responses":
            status, answer = self.api.judge.answer_line(body)
            if status != 200:
                error = answer["error"]
                raise self.fk.ApiError(
                    status, error["message"], code=error.get("code"), type_=error["type"]
                )
            return answer
        images = body.pop("images", None) if endpoint == "edits" else None
        mask = body.pop("mask", None) if endpoint == "edits" else None
        markup = body.pop("markup", None) if endpoint == "edits" else None
        params = self.fk._validate(endpoint, body, self.api.models)
        record = self.fk.RequestRecord(
            method="POST",
            path=batch.endpoint,
            endpoint=endpoint,
            headers={},
            auth=None,
            request_id=_id("req_"),
            fields=body,
        )
        if endpoint == "edits":
            if not isinstance(images, list) or not 1 <= len(images) <= 16:
                raise self.fk._invalid("images", "'images' must hold 1 to 16 image references.")
            sizes = []
            for index, ref in enumerate(images):
                data = self._image_ref(ref, f"images[{index}]")
                record.image_sha256.append(str(index))
                sizes.append(self.fk._image_size(data, f"images[{index}]"))
            if mask is not None:
                mask_size = self.fk._image_size(self._image_ref(mask, "mask"), "mask")
                if mask_size != sizes[0]:
                    raise self.fk._invalid("mask", "The mask must match the first image's size.")
            if markup is not None:
                self._image_ref(markup, "markup")
                if not str(params.model).startswith(self.fk.MARKUP_PREFIXES):
                    raise self.fk._invalid("markup", "'markup' is not supported for this model.")
        if any(word in params.prompt for word in self.api.blocked_words):
            raise self.api._moderation_error()
        record.n = params.n
        return dict(self.api._success(record, params, {}).body)

    def _image_ref(self, ref: Any, param: str) -> bytes:
        if not isinstance(ref, dict) or len(ref) != 1 or not {"image_url", "file_id"} & set(ref):
            raise self.fk._invalid(param, f"'{param}' needs exactly one of image_url, file_id.")
        if "file_id" in ref:
            item = self.files.get(str(ref["file_id"]))
            if item is None or item.purpose not in INPUT_PURPOSES:
                raise self.fk.ApiError(
                    400,
                    f"Image file {ref['file_id']!r} was not found (or is not an image upload).",
                    code="image_file_not_found",
                    param=param,
                )
            return item.data
        url = str(ref["image_url"])
        if len(url) > MAX_DATA_URL_CHARS:
            raise self.fk._invalid(f"{param}.image_url", "The image URL is too long.")
        match = _DATA_URL.match(url)
        if match is None:
            raise self.fk.ApiError(
                400,
                "The fake downloads nothing: use a data URL or a file_id.",
                code="failed_to_download_image",
                param=f"{param}.image_url",
            )
        try:
            return base64.b64decode(match[2], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise self.fk.ApiError(
                400,
                "The image data URL is not valid base64.",
                code="invalid_base64_image",
                param=f"{param}.image_url",
            ) from exc

    def _finish(self, batch: FakeBatch, status: str, leftover: str | None) -> None:
        """End the batch: write the output and error files (shuffled)."""
        messages = {
            "batch_expired": "This request could not be executed before the completion "
            "window expired.",
            "batch_cancelled": "This request was not executed because the batch was cancelled.",
        }
        if leftover is not None and self.unrun_lines_in_error_file:
            for line in batch.lines[batch.done :]:
                error = {"code": leftover, "message": messages[leftover]}
                batch.err.append(_line(line["custom_id"], None, error))
                batch.failed += 1
        if self.shuffle_seed is not None:  # the same order for the same batch of a test
            rng = random.Random(f"{self.shuffle_seed}:{list(self.batches).index(batch.id)}")
            rng.shuffle(batch.out)
            rng.shuffle(batch.err)
        now = int(self.api.clock())
        for lines, attr, kind in (
            (batch.out, "output_file_id", "output"),
            (batch.err, "error_file_id", "error"),
        ):
            if lines:
                item = FakeFile(
                    _id("file-"),
                    "batch_output",
                    f"{batch.id}_{kind}.jsonl",
                    b"".join(text + b"\n" for text in lines),
                    now,
                )
                self.files[item.id] = item
                setattr(batch, attr, item.id)
        batch.status = status
        batch.times[status] = now


def _line(custom_id: str, response: dict[str, Any] | None, error: dict[str, Any] | None) -> bytes:
    record = {"id": _id("batch_req_"), "custom_id": custom_id, "response": response, "error": error}
    return json.dumps(record, separators=(",", ":")).encode("utf-8")


class _Refused(Exception):
    """An input line the batch's validation refuses."""

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.error = _error(code, message, param)


def _error(code: str, message: str, param: str | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "param": param, "line": None}


def _good_metadata(metadata: Any) -> bool:
    return (
        isinstance(metadata, dict)
        and len(metadata) <= 16
        and all(
            isinstance(k, str) and isinstance(v, str) and len(k) <= 64 and len(v) <= 512
            for k, v in metadata.items()
        )
    )


def _multipart(
    content_type: str, body: bytes
) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    """Text fields, and file parts as name -> (filename, bytes), of a multipart body."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes]] = {}
    if not message.is_multipart():
        return fields, files
    for part in message.iter_parts():
        name = str(part.get_param("name", "", header="content-disposition"))
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            files[name] = (filename, data)
        else:
            fields[name] = data.decode("utf-8", errors="replace")
    return fields, files
