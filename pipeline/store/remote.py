"""The shared tier of the result cache: an S3-compatible bucket, through ``obstore``.

What is stored there, and why it is trusted no further than plain data, is in
:mod:`pipeline.store.shared_format`; this module writes and reads it (DESIGN section 11):

- Records are created with a conditional create (``If-None-Match: *``): the first result
  committed under a key stays, and a writer that lost the race gets the winner's record
  back, so every machine delivers the same pixels. A damaged record is replaced only
  conditionally on its ETag (``If-Match``), so two writers repairing it still agree.
- Blobs are content-addressed: they are overwritten rather than created-if-absent (the
  same bytes again, which repairs a damaged copy), size-capped while they download, and
  must hash to their name.
- The shared cache never fails or stalls a build: a failed read is a miss with a warning
  (said once), a failed write raises :class:`~pipeline.store.base.RemoteUnavailable` (the
  layered store keeps the local result). Timeouts are short and retries few, and once the
  remote proved unreachable or unreadable the store stops asking: a down remote costs one
  timeout, not one a job.

Importing this module without ``obstore`` raises
:class:`~pipeline.store.base.S3SupportMissing`, which names the extra to install.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import logging
import os
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

from pipeline.errors import UsageError
from pipeline.hashing import CacheRequest, sha256_bytes
from pipeline.store.base import (
    CacheRecord,
    CacheStats,
    RemoteUnavailable,
    S3SupportMissing,
    is_blob_name,
    with_request,
)
from pipeline.store.shared_format import (
    LAYOUT,
    MAX_BLOB_BYTES,
    MAX_RECORD_BYTES,
    aws_settings,
    bad_credentials,
    blob_path,
    decode_record,
    encode_record,
    http_failure,
    is_key,
    parse_url,
    reason,
    record_path,
    refused,
)

try:
    import obstore
    from obstore.exceptions import AlreadyExistsError, PreconditionError
    from obstore.store import S3Store as _Bucket
except ImportError as exc:  # tested by hiding obstore (test_store_remote)
    raise S3SupportMissing(
        "a shared cache (remote_cache) needs the obstore package: pip install 'assetpipe[s3]'"
    ) from exc

if TYPE_CHECKING:
    from obstore import PutMode
    from obstore.store import S3Config

log = logging.getLogger("assetpipe.cache")

_CHUNK = 1024 * 1024
_WRITE_ATTEMPTS = 4


class S3Store:
    """The shared cache in one bucket and prefix; a :class:`ResultStore` whose reads never
    raise and whose writes raise only :class:`RemoteUnavailable` (or ValueError for
    metadata no store may hold).

    ``writable=False`` (read-only mode) refuses every write. ``environ`` stands in for the
    process environment (tests give each server its own). Safe to share between threads.
    """

    def __init__(
        self, url: str, *, writable: bool = True, environ: Mapping[str, str] | None = None
    ) -> None:
        bucket, prefix = parse_url(url)
        self.url = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        self.bucket = bucket
        self.root = f"{prefix}/{LAYOUT}" if prefix else LAYOUT
        """Where this store's objects live in the bucket."""
        self.writable = writable
        config, client, retry = aws_settings(os.environ if environ is None else environ)
        try:
            self._bucket = _Bucket(
                bucket, prefix=self.root, config=config, client_options=client, retry_config=retry
            )
        except Exception as exc:
            raise UsageError(
                f"the shared cache {self.url} cannot be set up: {reason(exc)}"
            ) from None
        self._lock = threading.Lock()
        self._probe_lock = threading.Lock()
        self._warned: set[str] = set()
        self._probed = False
        self._unlisted = False
        """Listing is forbidden: then S3 answers 403, not 404, for a missing object."""
        self._down: str | None = None
        """The warning said when the remote proved unusable; then it is asked no more."""
        self._refused: str | None = None
        """The warning said when it refused a write (it may still be read)."""

    def __str__(self) -> str:
        return self.url

    def close(self) -> None:
        """Nothing to release: obstore's connections are pooled and end with the store."""

    # -- failures ---------------------------------------------------------------------------

    def _warn_once(self, message: str) -> None:
        with self._lock:
            if message in self._warned:
                return
            self._warned.add(message)
        log.warning("%s", message)

    def _usable(self) -> bool:
        """Whether to ask the remote at all. The first call lists the prefix once (other
        threads wait for it), so a wrong bucket or a dead endpoint is one clear warning."""
        if not self._probed:
            with self._probe_lock:
                if not self._probed:
                    self._probe()
                    self._probed = True
        return self._down is None

    def _probe(self) -> None:
        try:
            self._list_top()
        except Exception as exc:
            if refused(exc) and not bad_credentials(exc):
                self._unlisted = True  # a policy may allow objects but not listing
            else:
                self._fail(
                    f"no bucket {self.bucket!r}" if http_failure(exc)[0] == 404 else reason(exc)
                )

    def _missing(self, exc: Exception) -> bool:
        """Whether a failed read means "no such object": where listing is forbidden, S3
        answers a missing object with 403, which then says nothing about access."""
        return self._unlisted and refused(exc) and not bad_credentials(exc)

    def _fail(self, why: str) -> RemoteUnavailable:
        """Stop asking the remote, with a warning (once); returns the error a write raises."""
        message = f"the shared cache {self.url} cannot be used ({why}); going on without it"
        with self._lock:
            self._down = self._down or message
            message = self._down
        self._warn_once(message)
        return RemoteUnavailable(message, logged=True)

    def _failed_write(self, exc: Exception) -> RemoteUnavailable:
        """What a failed write means: refused (the remote may still be read) or down."""
        if isinstance(exc, FileNotFoundError):
            return self._fail(f"no bucket {self.bucket!r}")
        if not refused(exc) or bad_credentials(exc):
            return self._fail(reason(exc))
        message = (
            f"the shared cache {self.url} refused a write ({reason(exc)}); "
            "results are kept in the local cache only"
        )
        with self._lock:
            self._refused = self._refused or message
            message = self._refused
        self._warn_once(message)
        return RemoteUnavailable(message, logged=True)

    # -- reads ------------------------------------------------------------------------------

    def _fetch(self, path: str, cap: int, what: str) -> tuple[bytes, str | None] | None:
        """The bytes and ETag of an object; None when absent, larger than ``cap`` (with a
        warning) or when the remote fails (then it is no longer asked)."""
        if not self._usable():
            return None
        chunks: list[bytes] = []
        try:
            result = obstore.get(self._bucket, path)
            meta = result.meta
            total = int(meta["size"])
            if total <= cap:
                total = 0
                for chunk in result.stream(min_chunk_size=_CHUNK):
                    total += len(chunk)
                    if total > cap:
                        break
                    chunks.append(chunk)
        except FileNotFoundError:
            return None
        except Exception as exc:
            if not self._missing(exc):
                self._fail(reason(exc))
            return None
        if total > cap:
            self._warn_once(f"{what} in the shared cache is over {cap} bytes; ignoring it")
            return None
        return b"".join(chunks), meta.get("e_tag")

    def _record(self, key: str) -> tuple[CacheRecord | None, str | None] | None:
        """The stored record for ``key`` (None when damaged, with a warning) and its
        ETag; None when there is none or the remote failed."""
        fetched = self._fetch(record_path(key), MAX_RECORD_BYTES, f"cache entry {key[:12]}")
        if fetched is None:
            return None
        data, etag = fetched
        record = decode_record(key, data)
        if record is None:
            self._warn_once(
                f"shared cache entry {key[:12]} is unreadable or was not made from its "
                "request; ignoring it"
            )
        return record, etag

    def _blob_size(self, sha: str) -> int | None:
        """The stored size of a blob; None when it is missing or the remote failed."""
        if not self._usable():
            return None
        try:
            return int(obstore.head(self._bucket, blob_path(sha))["size"])
        except FileNotFoundError:
            return None
        except Exception as exc:
            if not self._missing(exc):
                self._fail(reason(exc))
            return None

    def _complete(self, key: str, record: CacheRecord) -> bool:
        """Whether ``record``'s delivered bytes are there and not oversized."""
        size = self._blob_size(record.blob)
        if size is None or size > MAX_BLOB_BYTES:
            if self._down is None:
                self._warn_once(f"shared cache entry {key[:12]} has no usable image; ignoring it")
            return False
        return True

    def lookup(self, request: CacheRequest) -> CacheRecord | None:
        """The record for ``request`` when it is well-formed, made from that request, and
        its blob is there (checked by its size, not downloaded); else a miss."""
        key = request.key
        found = self._record(key)
        if found is None or found[0] is None:
            return None
        return found[0] if self._complete(key, found[0]) else None

    def get(self, request: CacheRequest) -> tuple[CacheRecord, bytes] | None:
        """The record and delivered bytes for ``request``, verified; None on a miss."""
        key = request.key
        found = self._record(key)
        record = found[0] if found is not None else None
        data = self.read_blob(record.blob) if record is not None else None
        if record is None or data is None:
            if record is not None and self._down is None:
                self._warn_once(f"shared cache entry {key[:12]} has no usable image; ignoring it")
            return None
        return record, data

    def read_blob(self, sha: str) -> bytes | None:
        """The bytes named ``sha``; None when missing, oversized, corrupt (with a
        warning) or when ``sha`` is not a blob name."""
        if not is_blob_name(sha):
            return None
        fetched = self._fetch(blob_path(sha), MAX_BLOB_BYTES, f"image {sha[:12]}")
        if fetched is None:
            return None
        data = fetched[0]
        if sha256_bytes(data) != sha:
            self._warn_once(f"shared cache image {sha[:12]} is corrupt; treating it as missing")
            return None
        return data

    # -- writes -----------------------------------------------------------------------------

    def _put(self, path: str, data: bytes, mode: PutMode) -> None:
        """Write one object; conflicts propagate, every other failure is RemoteUnavailable."""
        try:
            obstore.put(self._bucket, path, data, mode=mode, use_multipart=False)
        except (AlreadyExistsError, PreconditionError):
            raise
        except Exception as exc:
            raise self._failed_write(exc) from None

    def _writable(self, key: str, blobs: tuple[bytes, ...], body: bytes) -> None:
        """RemoteUnavailable unless this result may be written now."""
        if not self.writable:
            raise RemoteUnavailable(f"the shared cache {self.url} is read-only here")
        if self._refused is not None:
            raise RemoteUnavailable(self._refused, logged=True)
        if not is_key(key):
            raise RemoteUnavailable(f"cache key {key[:12]!r} cannot name a shared record")
        if max(map(len, blobs)) > MAX_BLOB_BYTES or len(body) > MAX_RECORD_BYTES:
            raise RemoteUnavailable(f"cache entry {key[:12]} is too large to share")
        if not self._usable():
            raise RemoteUnavailable(str(self._down), logged=True)

    def commit(
        self,
        request: CacheRequest,
        delivered: bytes,
        original: bytes | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> CacheRecord:
        """Share a result of ``request``: the blobs, then the record by a conditional
        create under the request's key. Returns the record now stored there, another
        writer's when one got there first (and when its record was already there, nothing
        of ours is uploaded)."""
        key = request.key
        blob = sha256_bytes(delivered)
        original_sha = sha256_bytes(original) if original is not None else None
        record = CacheRecord(
            blob=blob,
            original=original_sha if original_sha != blob else None,
            meta=with_request(request, meta),
        )
        body = encode_record(key, record)
        self._writable(key, (delivered, original or b""), body)
        uploaded = False
        for _ in range(_WRITE_ATTEMPTS):
            found = self._record(key)
            if found is not None and found[0] is not None and self._complete(key, found[0]):
                return found[0]
            if self._down is not None:
                raise RemoteUnavailable(self._down, logged=True)
            exists, etag = found is not None, found[1] if found is not None else None
            if exists and etag is None:
                break  # a damaged record may be replaced only conditionally, on its ETag
            if not uploaded:
                self._put(blob_path(blob), delivered, "overwrite")
                if original is not None and record.original is not None:
                    self._put(blob_path(record.original), original, "overwrite")
                uploaded = True
            if exists:
                self._warn_once(f"replacing the damaged shared cache entry {key[:12]}")
            try:
                self._put(record_path(key), body, {"e_tag": etag} if exists else "create")
            except (AlreadyExistsError, PreconditionError):
                continue  # another writer got there first: read what it stored
            return record
        raise RemoteUnavailable(
            f"shared cache entry {key[:12]} could not be settled; it is kept in the local cache"
        )

    # -- maintenance ------------------------------------------------------------------------

    def stats(self) -> CacheStats:
        """Records, blobs and blob bytes under this store's prefix, by listing them;
        RemoteUnavailable when the remote cannot be listed."""
        if not self._usable():
            raise RemoteUnavailable(str(self._down), logged=True)
        entries = blobs = size = 0
        try:
            for path, _ in self._objects("records"):
                name = path.rpartition("/")[2]
                entries += name.endswith(".json") and is_key(name[:-5])
            for path, length in self._objects("blobs"):
                if is_blob_name(path.rpartition("/")[2]):
                    blobs += 1
                    size += length
        except Exception as exc:
            raise RemoteUnavailable(
                f"the shared cache {self.url} cannot be listed ({reason(exc)})"
            ) from None
        return CacheStats(entries=entries, blobs=blobs, bytes=size)

    # -- listing ----------------------------------------------------------------------------

    def _list_top(self) -> None:
        """List the top of this store's prefix: one page, of one name at most."""
        signer = _Signer.of(self.bucket, self._bucket.config)
        if signer is None:
            obstore.list_with_delimiter(self._bucket)
            return
        query = {"list-type": "2", "delimiter": "/", "prefix": f"{self.root}/", "max-keys": "1"}
        _list_page(signer, query)

    def _objects(self, folder: str) -> Iterator[tuple[str, int]]:
        """Every object (name, size) in ``folder`` of this store's prefix, page by page;
        ListingFailed past LIST_PAGES pages (a server that pages forever)."""
        signer = _Signer.of(self.bucket, self._bucket.config)
        if signer is None:
            pages = _obstore_pages(self._bucket, folder)
        else:
            pages = _signed_pages(signer, f"{self.root}/{folder}/")
        for count, page in enumerate(pages, 1):
            if count > LIST_PAGES:
                raise ListingFailed(
                    f"a listing is over {LIST_PAGES} pages; it was not read further"
                )
            yield from page


# -- listing, read by assetpipe itself --------------------------------------------------------
#
# obstore reads a whole listing answer into memory before it parses it, with no size limit:
# an answer that never ends grows until the request's timeout (gigabytes), and past the
# address space the process aborts. Where this store signs with keys of its own settings
# (an endpoint and AWS_ACCESS_KEY_ID: MinIO, SeaweedFS, R2, anything that is not AWS
# itself), assetpipe asks for the pages and reads them, capped; elsewhere (AWS, or a role's
# credentials, which only obstore finds) obstore lists as before.

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
class _Signer:
    """What a listing request is signed with (AWS Signature Version 4): the endpoint,
    region and keys the obstore client of the store was set up with."""

    endpoint: urllib.parse.SplitResult
    bucket: str
    region: str
    key_id: str
    secret: str
    token: str | None

    @classmethod
    def of(cls, bucket: str, config: S3Config) -> _Signer | None:
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
class _Page:
    objects: list[tuple[str, int]]
    next_token: str | None
    """Where the next page starts; None on the last one."""


def _signed_pages(signer: _Signer, prefix: str) -> Iterator[list[tuple[str, int]]]:
    """The objects (name, size) under ``prefix``, a page of at most 1000 at a time."""
    token: str | None = None
    while True:
        query = {"list-type": "2", "prefix": prefix, "max-keys": str(LIST_PAGE_KEYS)}
        if token is not None:
            query["continuation-token"] = token
        page = _list_page(signer, query)
        yield page.objects
        if page.next_token is None:
            return
        token = page.next_token


def _obstore_pages(bucket: _Bucket, folder: str) -> Iterator[list[tuple[str, int]]]:
    """The objects (name, size) in ``folder``, as obstore lists them."""
    for chunk in obstore.list(bucket, folder, chunk_size=1000):
        yield [(item["path"], int(item["size"])) for item in chunk]


def _list_page(signer: _Signer, query: Mapping[str, str]) -> _Page:
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


def _fetch_page(signer: _Signer, query: Mapping[str, str]) -> bytes:
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


def _parse_page(body: bytes) -> _Page:
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


def _page_of(root: ElementTree.Element) -> _Page:
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
    return _Page(objects, token if truncated and token else None)


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
