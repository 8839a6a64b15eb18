"""``assetpipe review``: the review page served on 127.0.0.1 (Starlette on uvicorn).

The server is a thin UI over :mod:`pipeline.api`: a click on the page is ``api.pick``,
a key is ``api.reject``, a confirmed reroll is ``api.confirm`` followed by
``assetpipe build --only ...`` (see :mod:`.tasks`).

A local server that can change files and spend money is a target for any web page the
same person has open, so:

- it listens on 127.0.0.1 only, and refuses any request whose ``Host`` is not
  ``127.0.0.1:PORT`` or ``localhost:PORT`` (a DNS-rebinding page names its own host);
- every POST must carry the per-session token embedded in the page (``X-Assetpipe-Token``),
  be JSON, and come from the page's own origin when the browser says where it comes
  from: another site can neither read the token nor send that header without a
  preflight this server never grants (CSRF);
- files are served only from inside the output tree and the previews' tree, through
  :class:`~pipeline.output.OutputTree` (no ``..``, no absolute paths, no symbolic links),
  and only images: regular files (a FIFO or a device is never opened for a read that
  could block), up to :data:`~pipeline.review.files.MAX_FILE` bytes, streamed from the
  descriptor that was checked (:mod:`pipeline.review.files`);
- a POST body is read only up to :data:`MAX_BODY` bytes, whatever its headers claim;
- a reroll's previews come from its build through a pipe, each checked and capped
  (:mod:`pipeline.review.partials`), and are served only as the PNG, WebP or JPEG their
  bytes say they are;
- the page escapes everything it shows and its Content-Security-Policy allows only its
  own script (by hash) and same-origin requests.
"""

from __future__ import annotations

import errno
import hmac
import json
import logging
import secrets
import socket
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
)
from starlette.routing import Route

from pipeline import api
from pipeline.errors import PipelineError, UsageError
from pipeline.gallery import LIVE_CSP
from pipeline.review.files import image
from pipeline.review.partials import image_type
from pipeline.review.source import PageSource
from pipeline.review.tasks import Busy, Tasks

log = logging.getLogger("assetpipe.review")

HOST: Final = "127.0.0.1"
MAX_BODY: Final = 16 * 1024
"""The largest POST body read: the page sends a few short fields (a variant, an action,
a 64-hex quote), so anything near this is not the page talking."""
_SECURITY_HEADERS: Final = [
    (b"content-security-policy", f"{LIVE_CSP}; frame-ancestors 'none'".encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-resource-policy", b"same-origin"),
]

_UNREAD: Final = {"Connection": "close"}
"""On a response sent before the request's body was read: the connection closes rather
than the server taking in (and dropping) whatever body the client still sends."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Guard:
    """ASGI middleware: the Host check, the token on every POST, and security headers."""

    def __init__(self, app: ASGIApp, port: int, token: str):
        self.app = app
        self.hosts = {f"{HOST}:{port}".encode(), f"localhost:{port}".encode()}
        self.origins = {b"http://" + h for h in self.hosts}
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name.lower(), value)  # the first of a repeated header
        refusal = self._refusal(scope["method"], headers)
        if refusal is not None:
            status, text = refusal
            log.warning("refused %s %s: %s", scope["method"], scope["path"], text)
            refused = PlainTextResponse(text, status_code=status, headers=_UNREAD)
            await refused(scope, receive, send)
            return

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, secured)

    def _refusal(self, method: str, headers: dict[bytes, bytes]) -> tuple[int, str] | None:
        if headers.get(b"host") not in self.hosts:
            return 421, "unknown Host: this server answers only to 127.0.0.1 and localhost"
        if method in ("GET", "HEAD"):
            return None
        if method != "POST":
            return 405, "only GET and POST"
        if not hmac.compare_digest(headers.get(b"x-assetpipe-token", b""), self.token):
            return 403, "missing or wrong session token; reload the page"
        origin = headers.get(b"origin")
        if origin is not None and origin not in self.origins:
            return 403, "cross-origin request refused"
        if not headers.get(b"content-type", b"").startswith(b"application/json"):
            return 415, "send JSON"
        return None


def _listen(port: int) -> socket.socket:
    """A socket listening on ``127.0.0.1:port``; a port that cannot be had is a
    :class:`UsageError` (exit 2) saying which port and what to do, not a traceback."""
    try:
        return socket.create_server((HOST, port))
    except OSError as exc:
        raise UsageError(_unavailable(port, exc)) from None


def _unavailable(port: int, exc: OSError) -> str:
    """Why ``port`` cannot be listened on, in one line that ends with the way out."""
    if exc.errno == errno.EADDRINUSE:
        why = "is already in use by another program"
    elif exc.errno == errno.EACCES:
        why = "needs privileges this user does not have"
    else:
        why = f"cannot be listened on ({exc.strerror or exc})"
    return (
        f"port {port} on {HOST} {why}; choose another with --port N, or --port 0 to take a free one"
    )


class ReviewServer:
    """The review page of one project on a local port (0: a free one, chosen at bind)."""

    def __init__(self, req: api.Request, *, port: int = 0, poll_ms: int = 1000):
        self.req = req
        self.token = secrets.token_urlsafe(32)
        self.source = PageSource(req, self.token, poll_ms)
        self.tasks = Tasks(req)
        self._writes = threading.Lock()  # one change to assetpipe.lock at a time
        self.socket = _listen(port)
        self.port = int(self.socket.getsockname()[1])
        self.app = Guard(self._starlette(), self.port, self.token)
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            log_level="warning",
            access_log=False,
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=5,
        )
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The page's address."""
        return f"http://{HOST}:{self.port}/"

    def serve(self) -> None:
        """Serve until Ctrl-C; a confirmed build still running is waited for."""
        try:
            self.server.run(sockets=[self.socket])
        finally:
            self.socket.close()
            self.tasks.join()

    def start(self) -> ReviewServer:
        """Serve from a background thread (tests, embedding); returns once it listens."""
        self._thread = threading.Thread(target=self.serve, daemon=True)
        self._thread.start()
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the review server stopped while starting")
            self._thread.join(0.02)
        return self

    def stop(self) -> None:
        """Stop the background server and wait for it."""
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join()

    def _starlette(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/", self.page, methods=["GET"]),
                Route("/favicon.ico", _no_icon, methods=["GET"]),
                Route("/api/state", self.state, methods=["GET"]),
                Route("/api/partial", self.partial, methods=["GET"]),
                Route("/files/{path:path}", self.file, methods=["GET"]),
                Route("/previews/{path:path}", self.preview, methods=["GET"]),
                Route("/api/pick", self.pick, methods=["POST"]),
                Route("/api/unpick", self.unpick, methods=["POST"]),
                Route("/api/reject", self.reject, methods=["POST"]),
                Route("/api/quote", self.quote, methods=["POST"]),
                Route("/api/run", self.run, methods=["POST"]),
            ]
        )

    async def page(self, request: Request) -> Response:
        html = await run_in_threadpool(self.source.html)
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    async def state(self, request: Request) -> Response:
        version = await run_in_threadpool(self.source.version)
        task = self.tasks.current
        body = {"version": version, "task": task.as_json() if task else None}
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    async def partial(self, request: Request) -> Response:
        """The latest preview of the reroll being made (``?seq=N`` from ``/api/state``):
        404 once a newer one replaced it, so the page never shows an old one as new."""
        seq = request.query_params.get("seq", "")
        number = seq.isascii() and seq.isdigit() and len(seq) <= 18
        preview = self.tasks.preview(int(seq)) if number else None
        media = image_type(preview.data) if preview is not None else None
        if preview is None or media is None:
            return PlainTextResponse("no such preview", status_code=404)
        return Response(preview.data, media_type=media, headers={"Cache-Control": "no-store"})

    async def file(self, request: Request) -> Response:
        return await image(self.source.output, request)

    async def preview(self, request: Request) -> Response:
        return await image(self.source.previews, request)

    async def pick(self, request: Request) -> Response:
        return await _answer(request, {"ref": str}, self._pick)

    async def unpick(self, request: Request) -> Response:
        return await _answer(request, {"asset": str}, self._unpick)

    async def reject(self, request: Request) -> Response:
        return await _answer(request, {"ref": str, "rejected": bool}, self._reject)

    async def quote(self, request: Request) -> Response:
        return await _answer(request, {"action": str, "asset": str}, self._quote)

    async def run(self, request: Request) -> Response:
        return await _answer(request, {"action": str, "asset": str, "quote": str}, self._run)

    def _pick(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._writes:
            result = api.pick(self.req, body["ref"])
        return {"message": f"picked {result.job}", "job": result.job}

    def _unpick(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._writes:
            asset = api.unpick(self.req, body["asset"])
        return {"message": f"unpicked {asset}"}

    def _reject(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._writes:
            job = api.reject(self.req, body["ref"], rejected=body["rejected"])
        word = "rejected" if body["rejected"] else "restored"
        return {"message": f"{word} {job}", "job": job}

    def _quote(self, body: dict[str, Any]) -> dict[str, Any]:
        q = api.quote(self.req, body["action"], body["asset"])
        return {
            "quote": q.digest,
            "summary": q.summary,
            "jobs": list(q.jobs),
            "cost_usd": q.cost_usd,
            "list_usd": q.list_usd,
            "provider": q.provider,
        }

    def _run(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._writes:
            task = self.tasks.start(body["action"], body["asset"], body["quote"])
        return task.as_json()


class BadRequest(Exception):
    """A POST body that is not what the page sends."""


class TooLarge(Exception):
    """A POST body over :data:`MAX_BODY` bytes, declared or sent."""


async def _body(request: Request) -> bytes:
    """The POST body, never more than :data:`MAX_BODY` bytes of it.

    A ``Content-Length`` over the cap is refused before a byte is read; a chunked body,
    or one longer than it claimed, is refused by the chunk that would cross the cap,
    which is dropped rather than kept.
    """
    declared = request.headers.get("content-length", "0")
    if not (declared.isascii() and declared.isdigit()) or int(declared) > MAX_BODY:
        raise TooLarge
    data = bytearray()
    async for chunk in request.stream():
        if len(data) + len(chunk) > MAX_BODY:
            raise TooLarge
        data += chunk
    return bytes(data)


def _fields(raw: bytes, fields: dict[str, type]) -> dict[str, Any]:
    """The POST body: a small JSON object with these typed fields (others ignored)."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadRequest("the body is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the body is not a JSON object")
    for name, kind in fields.items():
        if not isinstance(body.get(name), kind):
            raise BadRequest(f"'{name}' is missing or not a {kind.__name__}")
    return {name: body[name] for name in fields}


async def _answer(
    request: Request,
    fields: dict[str, type],
    do: Callable[[dict[str, Any]], dict[str, Any]],
) -> Response:
    """Parse the body, run the api call off the event loop, and turn its user-facing
    errors into JSON errors the page shows."""
    try:
        body = _fields(await _body(request), fields)
        return JSONResponse(await run_in_threadpool(do, body))
    except TooLarge:
        error = {"error": f"request body too large (the limit is {MAX_BODY // 1024} KiB)"}
        return JSONResponse(error, status_code=413, headers=_UNREAD)
    except BadRequest as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    except (api.QuoteChanged, Busy) as exc:
        return JSONResponse({"error": str(exc)}, status_code=409)
    except PipelineError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)


async def _no_icon(request: Request) -> Response:
    """No favicon (and no 404 in the browser's console)."""
    return Response(status_code=204)
