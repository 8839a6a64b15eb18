"""Listing the shared cache's bucket, read by assetpipe itself, capped.

obstore reads a whole listing answer into memory before it parses it, with no size limit:
an answer that never ends grows until the request's timeout (gigabytes), and past the
address space the process aborts. Where this store signs with keys of its own settings
(an endpoint and AWS_ACCESS_KEY_ID: MinIO, SeaweedFS, R2, anything that is not AWS
itself), assetpipe asks for the pages and reads them, capped; elsewhere (AWS, or a role's
credentials, which only obstore finds) obstore lists as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import re
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final
from xml.etree import ElementTree

if TYPE_CHECKING:
    from obstore.store import S3Config

LIST_PAGE_BYTES: Final = 8 * 1024 * 1024
"""The most of one listing answer that is read (a page of 1000 names is ~300 KiB)."""
LIST_PAGE_KEYS: Final = 1000
"""How many names a page is asked for (S3's most)."""
LIST_PAGES: Final = 10_000
"""The most pages one listing takes (ten million objects), so that a server that always
says another page follows cannot keep ``cache stats`` going forever."""
LIST_PAGE_SECONDS: Final = 120.0
"""A whole page, from connecting to its last byte (the obstore client's ``timeout``)."""
_LIST_READ_S: Final = 20.0
"""Each read of a listing may wait this long (the obstore client's ``read_timeout``)."""
_LIST_ATTEMPTS: Final = 3
_LIST_READ: Final = 64 * 1024
_ERROR_BODY_BYTES: Final = 64 * 1024
"""Enough of an error answer for its S3 error code, never more."""
_EMPTY_SHA256: Final = hashlib.sha256(b"").hexdigest()
_ERROR_CODE: Final = re.compile(rb"<Code>(\w{1,64})</Code>")
_DOCTYPE: Final = re.compile(rb"<!DOCTYPE", re.IGNORECASE)
_WATCHED: ContextVar[list[socket.socket] | None] = ContextVar("listing_sockets", default=None)


class ListingFailed(Exception):
    """A listing that failed. Worded like obstore's errors (``status code: 403`` and the S3
    ``<Code>``), so that :func:`reason`, :func:`refused` and :func:`bad_credentials` read
    both alike."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient
        """Worth asking again (the server answered 5xx or 429)."""

    @classmethod
    def of_status(cls, status: int, body: bytes) -> ListingFailed:
        """The failure an HTTP error answer means, with the S3 error code in its ``body``."""
        code = _ERROR_CODE.search(body)
        text = f"list request failed, status code: {status}"
        if code is not None:
            text += f", <Code>{code.group(1).decode()}</Code>"
        return cls(text, transient=status >= 500 or status == 429)


@dataclass(frozen=True)
class Signer:
    """What a listing request is signed with (AWS Signature Version 4): the endpoint,
    region and keys the obstore client of the store was set up with."""

    endpoint: urllib.parse.SplitResult
    bucket: str
    region: str
    key_id: str
    secret: str
    token: str | None

    @classmethod
    def of(cls, bucket: str, config: S3Config) -> Signer | None:
        """The signer for a client set up with an endpoint and keys; None for AWS itself
        or for credentials that obstore finds on its own (a role, a web identity)."""
        endpoint = urllib.parse.urlsplit(config.get("endpoint") or "")
        key_id, secret = config.get("access_key_id"), config.get("secret_access_key")
        if endpoint.scheme not in {"http", "https"} or not key_id or not secret:
            return None
        region = config.get("region") or "us-east-1"  # obstore's default too
        return cls(endpoint, bucket, region, key_id, secret, config.get("session_token"))

    def request(self, query: Mapping[str, str]) -> urllib.request.Request:
        """A signed GET of the bucket (path style, as obstore asks) with ``query``."""
        path = f"{self.endpoint.path.rstrip('/')}/{urllib.parse.quote(self.bucket)}"
        encoded = "&".join(f"{_quote(k)}={_quote(v)}" for k, v in sorted(query.items()))
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        scope = f"{stamp[:8]}/{self.region}/s3/aws4_request"
        headers = {
            "host": self.endpoint.netloc,
            "x-amz-content-sha256": _EMPTY_SHA256,
            "x-amz-date": stamp,
        }
        if self.token:
            headers["x-amz-security-token"] = self.token
        names = sorted(headers)
        lines = [f"{name}:{headers[name]}" for name in names]
        canonical = "\n".join(["GET", path, encoded, *lines, "", ";".join(names), _EMPTY_SHA256])
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        signature = self._sign(stamp[:8], f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{digest}")
        headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self.key_id}/{scope}, "
            f"SignedHeaders={';'.join(names)}, Signature={signature}"
        )
        del headers["host"]  # urllib sends the URL's own, the one signed
        url = urllib.parse.urlunsplit(
            (self.endpoint.scheme, self.endpoint.netloc, path, encoded, "")
        )
        return urllib.request.Request(url, headers=headers, method="GET")  # noqa: S310 - http(s) only

    def _sign(self, day: str, text: str) -> str:
        key = f"AWS4{self.secret}".encode()
        for part in (day, self.region, "s3", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def _quote(text: str) -> str:
    """URI encoding as Signature Version 4 wants it (all but the unreserved characters)."""
    return urllib.parse.quote(text, safe="-_.~")


@dataclass(frozen=True)
class Page:
    objects: list[tuple[str, int]]
    next_token: str | None
    """Where the next page starts; None on the last one."""


def signed_pages(signer: Signer, prefix: str) -> Iterator[list[tuple[str, int]]]:
    """The objects (name, size) under ``prefix``, a page of at most 1000 at a time."""
    token: str | None = None
    while True:
        query = {"list-type": "2", "prefix": prefix, "max-keys": str(LIST_PAGE_KEYS)}
        if token is not None:
            query["continuation-token"] = token
        page = list_page(signer, query)
        yield page.objects
        if page.next_token is None:
            return
        token = page.next_token


def list_page(signer: Signer, query: Mapping[str, str]) -> Page:
    """One page of a listing, asked again (twice at most) when the server answered 5xx or
    429, as obstore's retries would."""
    attempt = 1
    while True:
        try:
            return _parse_page(_fetch_page(signer, query))
        except ListingFailed as exc:
            if not exc.transient or attempt >= _LIST_ATTEMPTS:
                raise
        time.sleep(0.5 * attempt)
        attempt += 1


def _fetch_page(signer: Signer, query: Mapping[str, str]) -> bytes:
    """The body of one listing answer: ListingFailed when it is an error, over
    LIST_PAGE_BYTES, or not whole within LIST_PAGE_SECONDS (its connection is then closed)."""
    opener = urllib.request.build_opener(_WatchedHTTP, _WatchedHTTPS, _NoRedirect)
    with _Deadline(LIST_PAGE_SECONDS) as deadline:
        try:
            with opener.open(signer.request(query), timeout=_LIST_READ_S) as response:
                body = _read_capped(response, LIST_PAGE_BYTES)
        except urllib.error.HTTPError as exc:
            failure = ListingFailed.of_status(exc.code, _error_body(exc))
            deadline.check()
            raise failure from None
        except (OSError, http.client.HTTPException) as exc:
            deadline.check()
            raise ListingFailed(f"list request failed: {_why(exc)}") from None
        deadline.check()
        return body


def _read_capped(response: http.client.HTTPResponse, cap: int) -> bytes:
    """The rest of ``response``, or ListingFailed as soon as it is over ``cap`` bytes."""
    chunks: list[bytes] = []
    total = 0
    while chunk := response.read1(_LIST_READ):
        total += len(chunk)
        if total > cap:
            raise ListingFailed(
                f"a listing answer is over {cap // (1024 * 1024)} MiB; it was not read further"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _error_body(exc: urllib.error.HTTPError) -> bytes:
    """The start of an error answer, where S3 puts its error code."""
    try:
        return exc.read(_ERROR_BODY_BYTES)
    except (OSError, http.client.HTTPException):
        return b""
    finally:
        exc.close()


def _why(exc: BaseException) -> str:
    """The cause of a failed connection, not urllib's wrapping of it."""
    cause = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    return str(cause) or type(cause).__name__


def _parse_page(body: bytes) -> Page:
    """The objects and next-page token of a ListObjectsV2 answer; ListingFailed for any
    other document. One with a document type, which could declare entities, is refused
    before it is parsed."""
    try:
        if _DOCTYPE.search(body):
            raise ValueError("a document type")
        root = ElementTree.fromstring(body)  # noqa: S314 - size-capped and without a DTD
        return _page_of(root)
    except (ElementTree.ParseError, ValueError, KeyError):
        raise ListingFailed("a listing answer is not an S3 listing") from None


def _page_of(root: ElementTree.Element) -> Page:
    """The page a parsed answer holds; ValueError or KeyError when it is not one."""
    if _local(root.tag) != "ListBucketResult":
        raise ValueError(root.tag)
    objects: list[tuple[str, int]] = []
    truncated, token = False, None
    for child in root:
        name = _local(child.tag)
        if name == "Contents":
            fields = {_local(field.tag): field.text or "" for field in child}
            size = int(fields["Size"])
            if size < 0:
                raise ValueError(size)
            objects.append((fields["Key"], size))
        elif name == "IsTruncated":
            truncated = (child.text or "").strip() == "true"
        elif name == "NextContinuationToken":
            token = child.text
    return Page(objects, token if truncated and token else None)


def _local(tag: str) -> str:
    """An element's name without its XML namespace."""
    return tag.rpartition("}")[2]


class _Deadline:
    """Closes the connections of one listing page once its time is up: socket timeouts
    bound each read, not a server that answers a byte at a time (headers included)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.sockets: list[socket.socket] = []
        self.expired = threading.Event()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._token: Token[list[socket.socket] | None] | None = None

    def __enter__(self) -> _Deadline:
        self._token = _WATCHED.set(self.sockets)
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()
        if self._token is not None:
            _WATCHED.reset(self._token)

    def check(self) -> None:
        """ListingFailed when the time ran out (whatever else the cut connection raised)."""
        if self.expired.is_set():
            raise ListingFailed(f"a listing answer took over {self.seconds:.0f} s")

    def _expire(self) -> None:
        self.expired.set()
        for sock in list(self.sockets):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _watch(sock: socket.socket | None) -> None:
    """Hand a new connection's socket to the deadline of the page being read."""
    watched = _WATCHED.get()
    if watched is not None and sock is not None:
        watched.append(sock)


class _WatchedHTTPConnection(http.client.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _watch(self.sock)


class _WatchedHTTPSConnection(http.client.HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _watch(self.sock)


class _WatchedHTTP(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_WatchedHTTPConnection, req)


class _WatchedHTTPS(urllib.request.HTTPSHandler):
    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_WatchedHTTPSConnection, req, context=ssl.create_default_context())


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A listing is signed for one host: a redirect is an error, never followed."""

    def redirect_request(self, *args: Any) -> None:
        return None
