"""The shared tier of the result cache: an object store (an S3, GCS or Azure bucket, or a
shared folder), through ``obstore``; one :class:`ObjectStore` for every kind, built on a
:class:`~pipeline.store.backends.Backend`.

What is stored there, and why it is trusted no further than plain data, is in
:mod:`pipeline.store.shared_format`; this module writes and reads it (see the threat model
in docs/reliability.md):

- Records are created with a conditional create (``If-None-Match: *``): the first result
  committed under a key stays, and a writer that lost the race gets the winner's record
  back, so every machine delivers the same pixels. A damaged record is replaced only
  conditionally on its ETag (``If-Match``), so two writers repairing it still agree; a
  store that cannot write conditionally on an ETag (a folder) leaves it, with a warning.
- Blobs are content-addressed: they are overwritten rather than created-if-absent (the
  same bytes again, which repairs a damaged copy), size-capped while they download, and
  must hash to their name.
- The shared cache never fails or stalls a build: a failed read is a miss with a warning
  (said once), a failed write raises :class:`~pipeline.store.base.RemoteUnavailable` (the
  layered store keeps the local result). Timeouts are short and retries few; what each
  failure takes out (the store, its writes, its inspections, one object) is decided by
  :class:`~pipeline.store.remote_failures.Failures`.

Importing this module without ``obstore`` raises
:class:`~pipeline.store.base.S3SupportMissing`, which names the extra to install.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from pipeline.hashing import CacheRequest, sha256_bytes
from pipeline.store import s3_listing
from pipeline.store.backends import Backend
from pipeline.store.base import (
    CacheRecord,
    CacheStats,
    RemoteUnavailable,
    S3SupportMissing,
    is_blob_name,
    with_request,
)
from pipeline.store.inflight import AsyncReserve
from pipeline.store.remote_failures import Failures
from pipeline.store.s3_listing import ListingFailed
from pipeline.store.sealed_facts import MAX_FACTS_BYTES
from pipeline.store.shared_format import (
    MAX_BLOB_BYTES,
    MAX_RECORD_BYTES,
    bad_credentials,
    blob_path,
    decode_record,
    encode_record,
    facts_path,
    http_failure,
    is_key,
    reason,
    record_path,
    refused,
    server_trouble,
)

try:
    import obstore
    from obstore.exceptions import AlreadyExistsError, PreconditionError
except ImportError as exc:  # tested by hiding obstore (test_store_remote)
    raise S3SupportMissing(
        "a shared cache (remote_cache) needs the obstore package: pip install 'assetpipe[s3]'"
    ) from exc

if TYPE_CHECKING:
    from obstore import PutMode, UpdateVersion

_CHUNK = 1024 * 1024
_WRITE_ATTEMPTS = 4

Reserve = Callable[[int], None]
"""Called with an object's size once its download is answered, before its body is read:
blocks until that much memory may be taken (see ``LayeredStore.prefetch``)."""


class _Body:
    """An object's body as it downloads: its answer's metadata, and its chunks until
    they pass ``cap`` (then it no longer ``fits``)."""

    def __init__(self, meta: Mapping[str, Any], cap: int) -> None:
        self.meta = meta
        self.cap = cap
        self.size = int(meta["size"])
        """What the answer's headers say."""
        self.fits = self.size <= cap
        self.chunks: list[bytes] = []
        self._read = 0

    def add(self, chunk: bytes) -> bool:
        """Keep a chunk read; whether to read on: not once the bytes pass the cap, nor
        once they are all the answer said (its end is not waited for: on an event loop,
        one more wake-up an object)."""
        self._read += len(chunk)
        if self._read > self.cap:
            self.fits = False
            return False
        self.chunks.append(chunk)
        return self._read < self.size


class ObjectStore:
    """The shared cache in one bucket, container or folder and prefix; a
    :class:`ResultStore` whose reads never raise and whose writes raise only
    :class:`RemoteUnavailable` (or ValueError for metadata no store may hold).

    ``writable=False`` (read-only mode) refuses every write. ``anonymous`` is what to say
    when the remote cannot be read and no credentials were found in the environment (the
    variables that would give some). Safe to share between threads.
    """

    def __init__(
        self, backend: Backend, *, writable: bool = True, anonymous: str | None = None
    ) -> None:
        self.backend = backend
        self.url = str(backend.url)
        self.root = backend.root
        """Where this store's objects live in the bucket."""
        self.writable = writable
        self._anonymous = anonymous
        self._client = backend.client
        self._probe_lock = threading.Lock()
        self._probed = False
        self.failures = Failures(self.url, backend.absent)
        """What its failures have shown so far (see :mod:`pipeline.store.remote_failures`)."""

    def __str__(self) -> str:
        return self.url

    def close(self) -> None:
        """Nothing to release: obstore's connections are pooled and end with the store."""

    # -- failures ---------------------------------------------------------------------------

    def _usable(self) -> bool:
        """Whether to ask the remote at all. The first call lists the prefix once (other
        threads wait for it), so a wrong bucket or a dead endpoint is one clear warning."""
        if not self._probed:
            with self._probe_lock:
                if not self._probed:
                    self._probe()
                    self._probed = True
        return self.failures.down is None

    def _probe(self) -> None:
        try:
            self._list_top()
        except Exception as exc:
            if self._anonymous:
                self.failures.fail(f"{self._anonymous}, and the store said: {reason(exc)}")
            elif refused(exc) and not bad_credentials(exc):
                self.failures.listing_refused(exc)
            else:
                absent = http_failure(exc)[0] == 404
                self.failures.fail(self.backend.absent if absent else reason(exc))

    def health(self) -> str | None:
        """Why this shared cache cannot be relied on to be read, None when it can: asked
        at the start of a command (the probe a first read would make anyway), so that a
        cache that cannot be read is said before anything is planned or paid for."""
        if not self._usable():
            return self.failures.down
        if self.failures.unlisted is not None:
            return (
                f"the shared cache {self.url} refused to list its prefix "
                f"({self.failures.unlisted}), so a missing image cannot be told from a "
                "forbidden one"
            )
        return None

    @property
    def down(self) -> bool:
        """Whether this store proved unusable (then it is asked no more, and what it
        would have answered goes unsaid: it was said once)."""
        return self.failures.down is not None

    def when_lost(self, call: Callable[[str], None]) -> None:
        """See :meth:`pipeline.store.remote_failures.Failures.when_lost`: a build that
        requires the shared cache stops paying when told."""
        self.failures.when_lost(call)

    # -- reads ------------------------------------------------------------------------------

    def _path(self, name: str) -> str:
        """The full object path of ``name`` (a record's or a blob's, below the layout)."""
        return f"{self.root}/{name}"

    def _forbidden(self, path: str, what: str) -> bool:
        """Whether ``path`` must not be opened (a link planted in a shared folder): said
        once, and then it is a miss."""
        check = self.backend.check
        why = check(path) if check is not None else None
        if why is not None:
            self.failures.warn_once(f"{what} in the shared cache is {why}; ignoring it")
        return why is not None

    def _fetch(
        self,
        name: str,
        cap: int,
        what: str,
        reserve: Reserve | None = None,
        *,
        failed: Callable[[str], object] | None = None,
    ) -> tuple[bytes, UpdateVersion] | None:
        """The bytes and version (ETag, generation) of an object; None when absent,
        larger than ``cap`` (with a warning) or when the remote fails (what that takes
        out is :meth:`Failures.read_failed`'s to say; ``failed`` is told why where the
        store would be taken out). ``reserve`` is told the size (capped) before the body
        is read."""
        path = self._path(name)
        if not self._usable() or self._forbidden(path, what):
            return None
        try:
            result = obstore.get(self._client, path)
            body = _Body(result.meta, cap)
            if body.fits:
                if reserve is not None:
                    reserve(body.size)
                for chunk in result.stream(min_chunk_size=_CHUNK):
                    if not body.add(chunk):
                        break
        except Exception as exc:
            self._read_failed(path, exc, failed)
            return None
        return self._fetched(body, what)

    async def _fetch_async(
        self,
        name: str,
        cap: int,
        what: str,
        reserve: AsyncReserve | None = None,
        *,
        failed: Callable[[str], object] | None = None,
    ) -> tuple[bytes, UpdateVersion] | None:
        """:meth:`_fetch` as a coroutine: the request and its body are obstore's futures,
        awaited on the caller's event loop (``reserve`` awaited likewise)."""
        path = self._path(name)
        if not self._usable() or self._forbidden(path, what):
            return None
        try:
            result = await obstore.get_async(self._client, path)
            body = _Body(result.meta, cap)
            if body.fits:
                if reserve is not None:
                    await reserve(body.size)
                async for chunk in result.stream(min_chunk_size=_CHUNK):
                    if not body.add(chunk):
                        break
        except Exception as exc:
            self._read_failed(path, exc, failed)
            return None
        return self._fetched(body, what)

    def _read_failed(
        self, path: str, exc: Exception, failed: Callable[[str], object] | None
    ) -> None:
        """A read that raised: an absent object is an answer, anything else a failure."""
        if isinstance(exc, FileNotFoundError):
            self.failures.answered()
        else:
            self.failures.read_failed(path, exc, failed)

    def _fetched(self, body: _Body, what: str) -> tuple[bytes, UpdateVersion] | None:
        """What a read that was answered gives: the bytes and version, or None (with a
        warning) when they are over their cap."""
        self.failures.answered()
        if not body.fits:
            self.failures.warn_once(
                f"{what} in the shared cache is over {body.cap} bytes; ignoring it"
            )
            return None
        version: UpdateVersion = {}
        for field in ("e_tag", "version"):
            if body.meta.get(field) is not None:
                version[field] = body.meta[field]
        return b"".join(body.chunks), version

    def _record(self, key: str) -> tuple[CacheRecord | None, UpdateVersion] | None:
        """The stored record for ``key`` (None when damaged, with a warning) and its
        version; None when there is none or the remote failed."""
        fetched = self._fetch(record_path(key), MAX_RECORD_BYTES, f"cache entry {key[:12]}")
        if fetched is None:
            return None
        data, version = fetched
        record = decode_record(key, data)
        if record is None:
            self.failures.warn_once(
                f"shared cache entry {key[:12]} is unreadable or was not made from its "
                "request; ignoring it"
            )
        return record, version

    def _blob_size(self, sha: str) -> int | None:
        """The stored size of a blob; None when it is missing or the remote failed."""
        path = self._path(blob_path(sha))
        if not self._usable() or self._forbidden(path, f"image {sha[:12]}"):
            return None
        try:
            size = int(obstore.head(self._client, path)["size"])
        except FileNotFoundError:
            self.failures.answered()
            return None
        except Exception as exc:
            self.failures.read_failed(path, exc)
            return None
        self.failures.answered()
        return size

    def _complete(
        self, key: str, record: CacheRecord, listed: Mapping[str, int] | None = None
    ) -> bool:
        """Whether ``record``'s delivered bytes are there and not oversized (by their size
        in ``listed`` when it holds them, else asked)."""
        size = listed.get(record.blob) if listed is not None else None
        if size is None:
            size = self._blob_size(record.blob)
        if size is None or size > MAX_BLOB_BYTES:
            if self.failures.down is None:
                self.failures.warn_once(
                    f"shared cache entry {key[:12]} has no usable image; ignoring it"
                )
            return False
        return True

    def lookup(
        self, request: CacheRequest, *, listed: Callable[[], Mapping[str, int] | None] | None = None
    ) -> CacheRecord | None:
        """The record for ``request`` when it is well-formed, made from that request, and
        its blob is there (checked by its size, not downloaded); else a miss. ``listed``
        gives, once the record is read, the blobs' sizes as a listing found them
        (:meth:`blob_sizes`): a blob listed there is not asked about again."""
        key = request.key
        found = self._record(key)
        if found is None or found[0] is None:
            return None
        sizes = listed() if listed is not None else None
        return found[0] if self._complete(key, found[0], sizes) else None

    def blob_sizes(self, max_pages: int) -> dict[str, int] | None:
        """Every blob's size by name, from a listing of at most ``max_pages`` pages (one
        request each, one after the other); None when there are more, or the store
        cannot be listed. A plan asking about many results reads this instead of asking
        about each image apart; a blob that is not listed is still asked about."""
        if not self._usable() or self.failures.unlisted is not None:
            return None
        sizes: dict[str, int] = {}
        try:
            pages = self.backend.pages(f"{self.root}/blobs/")
            for count, page in enumerate(pages, 1):
                if count > max_pages:
                    return None
                for path, size in page:
                    name = path.rpartition("/")[2]
                    if is_blob_name(name):
                        sizes[name] = size
        except Exception:  # a listing is a shortcut: without it, each image is asked about
            return None
        return sizes

    def record(self, request: CacheRequest) -> CacheRecord | None:
        """The record stored for ``request`` when it is well-formed and made from that
        request; its images are neither checked nor downloaded (one request, not two:
        what downloads them next verifies them)."""
        found = self._record(request.key)
        return found[0] if found is not None else None

    def get(
        self, request: CacheRequest, *, reserve: Reserve | None = None
    ) -> tuple[CacheRecord, bytes] | None:
        """The record and delivered bytes for ``request``, verified; None on a miss.
        ``reserve`` is told the image's size before it is downloaded."""
        key = request.key
        found = self._record(key)
        record = found[0] if found is not None else None
        data = self.read_blob(record.blob, reserve=reserve) if record is not None else None
        if record is None or data is None:
            if record is not None and self.failures.down is None:
                self.failures.warn_once(
                    f"shared cache entry {key[:12]} has no usable image; ignoring it"
                )
            return None
        return record, data

    def read_blob(self, sha: str, *, reserve: Reserve | None = None) -> bytes | None:
        """The bytes named ``sha``; None when missing, oversized, corrupt (with a
        warning) or when ``sha`` is not a blob name. ``reserve`` is told their size
        before they are downloaded."""
        if not is_blob_name(sha):
            return None
        return self._verified(
            sha, self._fetch(blob_path(sha), MAX_BLOB_BYTES, f"image {sha[:12]}", reserve)
        )

    async def read_blob_async(
        self, sha: str, *, reserve: AsyncReserve | None = None
    ) -> bytes | None:
        """:meth:`read_blob` as a coroutine (see :meth:`_fetch_async`)."""
        if not is_blob_name(sha):
            return None
        return self._verified(
            sha,
            await self._fetch_async(blob_path(sha), MAX_BLOB_BYTES, f"image {sha[:12]}", reserve),
        )

    def _verified(self, sha: str, fetched: tuple[bytes, UpdateVersion] | None) -> bytes | None:
        """A blob's downloaded bytes when they hash to its name; else None (a warning when
        they do not)."""
        if fetched is None:
            return None
        data = fetched[0]
        if sha256_bytes(data) != sha:
            self.failures.warn_once(
                f"shared cache image {sha[:12]} is corrupt; treating it as missing"
            )
            return None
        return data

    def read_facts(self, sha: str) -> bytes | None:
        """The sealed object of what inspecting the blob ``sha`` found (unverified: see
        :mod:`pipeline.store.sealed_facts`); None when there is none, it is oversized
        (with a warning) or ``sha`` is not a blob name.

        An inspection saves work, never money: one that cannot be read (a bucket policy
        written for the records and images alone answers 403, an object that keeps
        failing) stops the reading of inspections for this store's life, with one
        warning, and never the shared cache itself, whose images the build would
        otherwise pay for again."""
        if not is_blob_name(sha) or self.failures.no_facts is not None:
            return None
        fetched = self._fetch(
            facts_path(sha),
            MAX_FACTS_BYTES,
            f"inspection {sha[:12]}",
            failed=self.failures.facts_failed,
        )
        return fetched[0] if fetched is not None else None

    async def read_facts_async(self, sha: str) -> bytes | None:
        """:meth:`read_facts` as a coroutine (see :meth:`_fetch_async`)."""
        if not is_blob_name(sha) or self.failures.no_facts is not None:
            return None
        fetched = await self._fetch_async(
            facts_path(sha),
            MAX_FACTS_BYTES,
            f"inspection {sha[:12]}",
            failed=self.failures.facts_failed,
        )
        return fetched[0] if fetched is not None else None

    # -- writes -----------------------------------------------------------------------------

    def share_facts(self, sha: str, body: bytes) -> None:
        """Write the sealed object of what inspecting the blob ``sha`` found (the newest
        one wins: each holds all its writer knew). RemoteUnavailable when it may not be
        written here. A write that fails stops the sharing of inspections, with one
        warning, and never that of results: a bucket policy that refuses ``facts/`` must
        not keep the images this machine paid for from the team."""
        if not self.writable:
            raise RemoteUnavailable(f"the shared cache {self.url} is read-only here")
        for stopped in (self.failures.refused, self.failures.no_shares):
            if stopped is not None:
                raise RemoteUnavailable(stopped, logged=True)
        if not is_blob_name(sha) or len(body) > MAX_FACTS_BYTES:
            raise RemoteUnavailable(f"the inspection of {sha[:12]} cannot be shared")
        if not self._usable():
            raise RemoteUnavailable(str(self.failures.down), logged=True)
        try:
            self._put(facts_path(sha), body, "overwrite", failed=self.failures.share_failed)
        except (AlreadyExistsError, PreconditionError):  # pragma: no cover - not conditional
            return

    def _put(
        self,
        name: str,
        data: bytes,
        mode: PutMode,
        *,
        failed: Callable[[Exception], RemoteUnavailable] | None = None,
    ) -> None:
        """Write one object; conflicts propagate, every other failure is RemoteUnavailable
        (what ``failed`` makes of it, else what the store's failures make of it)."""
        path = self._path(name)
        check = self.backend.check
        why = check(path) if check is not None else None
        if why is not None:
            message = f"{self.url}: {name} is {why}; nothing is written through it"
            self.failures.warn_once(message)
            raise RemoteUnavailable(message, logged=True)
        try:
            obstore.put(self._client, path, data, mode=mode, use_multipart=False)
        except (AlreadyExistsError, PreconditionError):
            self.failures.answered()
            raise
        except Exception as exc:
            if server_trouble(exc):
                raise self.failures.object_failed(path, exc, writing=True) from None
            raise (failed or self.failures.write_failed)(exc) from None
        self.failures.answered()

    def _writable(self, key: str, blobs: tuple[bytes, ...], body: bytes) -> None:
        """RemoteUnavailable unless this result may be written now."""
        if not self.writable:
            raise RemoteUnavailable(f"the shared cache {self.url} is read-only here")
        if self.failures.refused is not None:
            raise RemoteUnavailable(self.failures.refused, logged=True)
        if not is_key(key):
            raise RemoteUnavailable(f"cache key {key[:12]!r} cannot name a shared record")
        if max(map(len, blobs)) > MAX_BLOB_BYTES or len(body) > MAX_RECORD_BYTES:
            raise RemoteUnavailable(f"cache entry {key[:12]} is too large to share")
        if not self._usable():
            raise RemoteUnavailable(str(self.failures.down), logged=True)

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
            if self.failures.down is not None:
                raise RemoteUnavailable(self.failures.down, logged=True)
            exists = found is not None
            version: UpdateVersion = found[1] if found is not None else {}
            if exists and not self._replaceable(key, version):
                break  # a damaged record may be replaced only conditionally, on its ETag
            if not uploaded:
                self._put(blob_path(blob), delivered, "overwrite")
                if original is not None and record.original is not None:
                    self._put(blob_path(record.original), original, "overwrite")
                uploaded = True
            if exists:
                self.failures.warn_once(f"replacing the damaged shared cache entry {key[:12]}")
            try:
                self._put(record_path(key), body, version if exists else "create")
            except (AlreadyExistsError, PreconditionError):
                continue  # another writer got there first: read what it stored
            return record
        raise RemoteUnavailable(
            f"shared cache entry {key[:12]} could not be settled; it is kept in the local cache"
        )

    def _replaceable(self, key: str, version: UpdateVersion) -> bool:
        """Whether the damaged record of ``key`` can be replaced conditionally on
        ``version``; a store that cannot (a folder) says once what to remove instead."""
        if not self.backend.updates:
            self.failures.warn_once(
                f"shared cache entry {key[:12]} is damaged and cannot be replaced safely "
                f"here; remove {self._path(record_path(key))} from {self.url}"
            )
            return False
        return bool(version)

    # -- maintenance ------------------------------------------------------------------------

    def stats(self) -> CacheStats:
        """Records, blobs and blob bytes under this store's prefix, by listing them;
        RemoteUnavailable when the remote cannot be listed."""
        if not self._usable():
            raise RemoteUnavailable(str(self.failures.down), logged=True)
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
        """List the top of this store's prefix: one small request."""
        self.backend.top()

    def _objects(self, folder: str) -> Iterator[tuple[str, int]]:
        """Every object (name, size) in ``folder`` of this store's prefix, page by page;
        ListingFailed past s3_listing.LIST_PAGES pages (a server that pages forever)."""
        pages = self.backend.pages(f"{self.root}/{folder}/")
        for count, page in enumerate(pages, 1):
            if count > s3_listing.LIST_PAGES:
                raise ListingFailed(
                    f"a listing is over {s3_listing.LIST_PAGES} pages; it was not read further"
                )
            yield from page
