"""The memo of local work: what inspecting an image found, and its thumbnail, by sha256.

Checking a delivered image, hashing it for near-duplicates and drawing its thumbnail are
pure functions of its bytes (and, for the checks, of what they are asked: the size, the
alpha requirement, the palette). A build that delivers the same bytes again (``output/``
deleted, a file restored from the cache) reads them back here instead of decoding the
image again. The memo sits in the result cache's folder, so ``cache clear`` empties it:

```
.assetpipe/cache/memo/<sha[:2]>/<sha256>.json   {"format": 1, "sha256": ..., "width": ...,
                                                 "height": ..., "phash": ..., "method": ...,
                                                 "c2pa": ..., "c2pa_verdict": {...},
                                                 "checks": {<config digest>: [...]}}
.assetpipe/cache/memo/<sha[:2]>/<sha256>.webp   the gallery thumbnail of those bytes
.assetpipe/cache/memo/<dg[:2]>/<digest>.op.png  an expensive image operation's result, by
                                                the digest of its input pixels and call
.assetpipe/cache/memo/<px[:2]>/<px>.px.json     what inspecting a PNG's pixels found, by
.assetpipe/cache/memo/<px[:2]>/<px>.px.webp     their name (``pixel_digest``), and its thumbnail
```

Files that differ only in their text (each API answer's own identifier, the job's stamp)
have the same pixels: :meth:`LocalMemo.pixels` is the memo of those, where what depends
on the pixels alone (size, checks, hash, thumbnail) is kept once for all of them.

It is untrusted input like the rest of ``.assetpipe/``: JSON only (nothing unpickled),
size-capped, read without following a link, every field checked for its type and range,
and a thumbnail must be a whole WebP file (RIFF header, its own length) whose sha256 is
the one its record names. Anything else is a miss: the work is done again and the record
rewritten. A memo that cannot be written costs the next build some work, never this one
its result.

A thumbnail may be shared with the output tree by a hard link (creating a file costs far
more than linking one): the record's sha256 of the thumbnail is what makes that safe, since
a thumbnail changed in place in ``output/.gallery/`` no longer matches it and is drawn
again (written anew here, which ends the sharing). Delivered files are never linked.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import stat
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

from pipeline.fsutil import UnsafePathError, read_open, read_regular, refuse_link, write_atomic
from pipeline.hashing import sha256_bytes
from pipeline.store.base import SaidOnce, is_blob_name

log = logging.getLogger("assetpipe.cache")

MEMO_FORMAT: Final = 1
MAX_RECORD_BYTES: Final = 256 * 1024
MAX_THUMBNAIL_BYTES: Final = 4 * 1024 * 1024
MAX_OP_RESULT_BYTES: Final = 128 * 1024 * 1024
"""The largest operation result kept (an 8192x8192 RGBA PNG, barely compressed)."""
MAX_CONFIGS: Final = 16
"""Check configurations kept per image (the newest win): one per place the bytes are used."""
MAX_CHECKS: Final = 16
MAX_TEXT: Final = 4096
MAX_EDGE: Final = 1 << 16
_DIGEST: Final = re.compile(r"[0-9a-f]{16,64}")
_PHASH: Final = re.compile(r"[0-9a-f]{16}")
_CHECK_KEYS: Final = frozenset({"name", "ok", "detail", "value"})
_MERGE_LOCKS: Final = 64
RECENT_RECORDS: Final = 4096
"""Records a memo keeps in memory once written (a few hundred bytes each)."""

CheckRecord = Mapping[str, Any]
"""One check as the manifest records it: ``{"name", "ok", "detail", "value"}``."""


@dataclass(frozen=True, slots=True)
class Inspection:
    """What the memo keeps about one image; every field is optional (None: not known)."""

    width: int | None = None
    height: int | None = None
    phash: str | None = None
    """16 lowercase hex digits."""
    method: str | None = None
    """Names the algorithm behind ``phash``: a reader that computes it another way ignores
    it (the checks name theirs in their configuration's digest)."""
    c2pa: bool | None = None
    """Whether the bytes carry a C2PA manifest store."""
    c2pa_verdict: Mapping[str, Any] | None = None
    """What validating that manifest with the C2PA library found (``valid``, ``signer``,
    ...: see :mod:`pipeline.postprocess.c2pa_read`); absent when nothing was said."""
    thumbnail: str | None = None
    """The sha256 of the kept thumbnail (what makes sharing it by a hard link safe)."""
    checks: Mapping[str, tuple[CheckRecord, ...]] = field(default_factory=dict)
    """The checks found, by the digest of the configuration they ran with."""

    def merged(self, newer: Inspection) -> Inspection:
        """This record with ``newer``'s known fields over it, check configs joined (at most
        :data:`MAX_CONFIGS`, the newest kept)."""
        checks = {k: v for k, v in self.checks.items() if k not in newer.checks}
        checks.update(newer.checks)
        kept = dict(list(checks.items())[-MAX_CONFIGS:])
        return Inspection(
            width=newer.width if newer.width is not None else self.width,
            height=newer.height if newer.height is not None else self.height,
            phash=newer.phash if newer.phash is not None else self.phash,
            method=newer.method if newer.phash is not None else self.method,
            c2pa=newer.c2pa if newer.c2pa is not None else self.c2pa,
            c2pa_verdict=(
                newer.c2pa_verdict if newer.c2pa_verdict is not None else self.c2pa_verdict
            ),
            thumbnail=newer.thumbnail if newer.thumbnail is not None else self.thumbnail,
            checks=kept,
        )


class InspectionMemo(Protocol):
    """Where inspections and thumbnails are remembered (thread-safe; never raises on a
    damaged entry: that is a miss)."""

    def inspection(self, sha: str) -> Inspection | None:
        """What is known about the bytes with this sha256, or None."""
        ...

    def remember(self, sha: str, inspection: Inspection) -> None:
        """Add to what is known about the bytes with this sha256."""
        ...

    def thumbnail_file(
        self, sha: str, digest: str
    ) -> contextlib.AbstractContextManager[KeptFile | None]:
        """The kept thumbnail of the bytes with this sha256, open, when it is a whole WebP
        file whose own sha256 is ``digest``; else None."""
        ...

    def keep_thumbnail(self, sha: str, data: bytes) -> None:
        """Keep the WebP thumbnail of the bytes with this sha256."""
        ...

    def op_result(self, digest: str) -> bytes | None:
        """The PNG an expensive image operation made, kept under ``digest`` (a sha256 of
        its input pixels and the call: see :mod:`pipeline.ops.chain`), or None."""
        ...

    def keep_op_result(self, digest: str, data: bytes) -> None:
        """Keep an expensive operation's result (a PNG) under ``digest``."""
        ...

    def pixels(self) -> InspectionMemo:
        """The memo of inspections by the name of a PNG's pixels
        (:func:`pipeline.postprocess.pixels.pixel_digest`) instead of its bytes' sha256:
        only what depends on the pixels alone may be kept there (no C2PA verdict)."""
        ...

    def shares(self) -> bool:
        """Whether :meth:`share` sends anything (the team's secret is set and the shared
        cache may be written)."""
        ...

    def share(
        self, blob: str, pixels: str | None, inspection: Inspection, thumbnail: bytes
    ) -> None:
        """Offer other machines what inspecting the cached image ``blob`` (its sha256)
        found of its pixels (named ``pixels``; None when they have no name: a file
        delivered as it is), with their ``thumbnail``."""
        ...


Sharer = Callable[[str, str | None, Inspection, bytes], None]
"""Where a memo sends what it offers (see :meth:`InspectionMemo.share`)."""


class NoMemo:
    """A memo that remembers nothing (a build without a local cache folder)."""

    def inspection(self, sha: str) -> Inspection | None:
        """Always a miss."""
        return None

    def remember(self, sha: str, inspection: Inspection) -> None:
        """Forgets at once."""

    @contextlib.contextmanager
    def thumbnail_file(self, sha: str, digest: str) -> Iterator[KeptFile | None]:
        """Always a miss."""
        yield None

    def keep_thumbnail(self, sha: str, data: bytes) -> None:
        """Forgets at once."""

    def op_result(self, digest: str) -> bytes | None:
        """Always a miss."""
        return None

    def keep_op_result(self, digest: str, data: bytes) -> None:
        """Forgets at once."""

    def pixels(self) -> InspectionMemo:
        """Itself: nothing is remembered there either."""
        return self

    def shares(self) -> bool:
        """Never: nothing is shared from a build without a cache."""
        return False

    def share(
        self, blob: str, pixels: str | None, inspection: Inspection, thumbnail: bytes
    ) -> None:
        """Nothing."""


class LocalMemo:
    """The memo in a folder (``.assetpipe/cache/memo``), created on first write."""

    def __init__(self, folder: Path, *, kind: str = ""):
        self.folder = folder
        self.kind = kind
        """Inserted before each inspection's and thumbnail's suffix: ``.px`` in the memo
        of pixels (:meth:`pixels`), so its entries never pass for a file's."""
        self._lock = threading.Lock()
        self._merging = tuple(threading.Lock() for _ in range(_MERGE_LOCKS))
        """A record is read, merged and written under the lock of its name's stripe, so
        two threads never merge into one record at once, while records of other images
        are written beside it."""
        self._said = SaidOnce(log)
        self._recent: dict[str, Inspection] = {}
        """The records this process wrote, the newest :data:`RECENT_RECORDS`: read back
        from here, not from the disk (a restore reads the record just learnt of its
        pixels; a file changed on the disk meanwhile is no news to this process)."""
        self._real: set[Path] = set()
        """Folders already found to be real folders (not links): checked once a build."""
        self._pixels: LocalMemo | None = None
        self._shards: dict[str, Path] = {}
        """Shard folders whose whole way was found real (checked once a build)."""
        self._sharer: Sharer | None = None

    def __repr__(self) -> str:
        return f"LocalMemo({str(self.folder)!r})"

    def _path(self, sha: str, suffix: str) -> Path | None:
        """Where the entry of ``sha`` lives, once its folders are known not to be links;
        None for anything but a sha256 or a linked folder (never followed)."""
        if not is_blob_name(sha):
            return None
        shard = self._shards.get(sha[:2])
        if shard is not None:  # its folders were all found real: not asked again
            return shard / f"{sha}{suffix}"
        shard = self.folder / sha[:2]
        try:
            for folder in (self.folder.parent, self.folder, shard):
                if folder not in self._real:
                    info = refuse_link(folder, "the memo of inspected images")
                    if info is not None and stat.S_ISDIR(info.st_mode):
                        self._real.add(folder)
        except UnsafePathError as exc:
            self._warn(f"{exc}; the memo is not used")
            return None
        if shard in self._real and self.folder in self._real and self.folder.parent in self._real:
            self._shards[sha[:2]] = shard
        return shard / f"{sha}{suffix}"

    def _read(self, sha: str, suffix: str, limit: int) -> bytes | None:
        path = self._path(sha, suffix)
        if path is None:
            return None
        try:
            return read_regular(path, limit)
        except (OSError, ValueError) as exc:
            self._warn(f"memo entry {sha[:12]}{suffix} is unreadable ({exc}); redoing its work")
            return None

    def _write(self, sha: str, suffix: str, data: bytes) -> bool:
        """Whether ``data`` was written as the entry of ``sha``."""
        path = self._path(sha, suffix)
        if path is None:
            return False
        try:
            write_atomic(path, data, fsync=False)  # it makes the shard folder when missing
        except OSError as exc:
            self._warn(f"cannot write to the memo {self.folder} ({exc}); nothing is lost")
            return False
        return True

    def _warn(self, message: str) -> None:
        self._said.warn(message)

    def inspection(self, sha: str) -> Inspection | None:
        """What is known about the bytes with this sha256; None when nothing (or nothing
        readable) is."""
        recent = self._recent.get(sha)
        if recent is not None:
            return recent
        data = self._read(sha, f"{self.kind}.json", MAX_RECORD_BYTES)
        if data is None:
            return None
        record = parse_inspection(sha, data)
        if record is None:
            self._warn(f"memo entry {sha[:12]} is malformed; redoing its work")
        return record

    def remember(self, sha: str, inspection: Inspection) -> None:
        """Merge ``inspection`` into the record of ``sha`` (atomically replaced; no fsync:
        a record lost to a crash is work done again)."""
        with self._merging[hash(sha) % _MERGE_LOCKS]:
            known = self.inspection(sha)
            merged = known.merged(inspection) if known is not None else inspection
            if not self._write(sha, f"{self.kind}.json", encode_inspection(sha, merged)):
                return
            with self._lock:
                self._recent.pop(sha, None)
                self._recent[sha] = merged
                if len(self._recent) > RECENT_RECORDS:
                    del self._recent[next(iter(self._recent))]

    @contextlib.contextmanager
    def thumbnail_file(self, sha: str, digest: str) -> Iterator[KeptFile | None]:
        """The kept thumbnail of ``sha``, open (never through a link), when it is a whole
        WebP file whose sha256 is ``digest``; else None (a warning when it is not)."""
        path = self._path(sha, f"{self.kind}.webp")
        if path is None:
            yield None
            return
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(path, flags)
        except OSError:
            yield None
            return
        try:
            try:
                data: bytes | None = read_open(fd, MAX_THUMBNAIL_BYTES, str(path))
            except OSError:
                data = None
            if data is None or not is_webp(data):
                self._warn(f"memo thumbnail {sha[:12]} is not a WebP file; drawing it again")
                yield None
            elif sha256_bytes(data) != digest:
                self._warn(f"memo thumbnail {sha[:12]} was changed; drawing it again")
                yield None
            else:
                yield KeptFile(fd, data)
        finally:
            os.close(fd)

    def keep_thumbnail(self, sha: str, data: bytes) -> None:
        """Keep a thumbnail (only a whole WebP file under the size cap)."""
        if is_webp(data) and len(data) <= MAX_THUMBNAIL_BYTES:
            self._write(sha, f"{self.kind}.webp", data)

    def pixels(self) -> LocalMemo:
        """The memo of pixels, in the same folder (see :class:`InspectionMemo`)."""
        pixels = self._pixels
        if pixels is not None:
            return pixels
        with self._lock:
            if self._pixels is None:
                self._pixels = self if self.kind else LocalMemo(self.folder, kind=".px")
            return self._pixels

    def share_with(self, sharer: Sharer) -> None:
        """Send what :meth:`share` is offered to ``sharer`` (the team's shared cache)."""
        self._sharer = sharer

    def shares(self) -> bool:
        """Whether a sharer was given (:meth:`share_with`)."""
        return self._sharer is not None

    def share(
        self, blob: str, pixels: str | None, inspection: Inspection, thumbnail: bytes
    ) -> None:
        """Hand the inspection to the sharer, when there is one."""
        if self._sharer is not None:
            self._sharer(blob, pixels, inspection, thumbnail)

    def op_result(self, digest: str) -> bytes | None:
        """The kept result under ``digest`` when it is a PNG under the size cap (its
        reader decodes it as untrusted, and a damaged one is made again)."""
        data = self._read(digest, ".op.png", MAX_OP_RESULT_BYTES)
        return data if data is not None and data.startswith(PNG_SIGNATURE) else None

    def keep_op_result(self, digest: str, data: bytes) -> None:
        """Keep a result (only a PNG under the size cap)."""
        if data.startswith(PNG_SIGNATURE) and len(data) <= MAX_OP_RESULT_BYTES:
            self._write(digest, ".op.png", data)

    def qa_record(self, digest: str) -> dict[str, Any] | None:
        """A quality-gate result kept under ``digest`` (a JSON object under the record
        cap; its reader checks every field, as it came from disk), or None."""
        data = self._read(digest, ".qa.json", MAX_RECORD_BYTES)
        if data is None:
            return None
        try:
            record = json.loads(data)
        except ValueError:
            self._warn(f"memo entry {digest[:12]}.qa.json is malformed; judging again")
            return None
        return record if isinstance(record, dict) else None

    def keep_qa_record(self, digest: str, record: Mapping[str, Any]) -> None:
        """Keep a quality-gate result (a paid verdict: a rebuild must not pay for it again)."""
        data = json.dumps(record, sort_keys=True, ensure_ascii=False).encode()
        if len(data) <= MAX_RECORD_BYTES:
            self._write(digest, ".qa.json", data)


@dataclass(frozen=True, slots=True)
class KeptFile:
    """A kept file, open and checked: its descriptor (valid inside the ``with``) and bytes."""

    fd: int
    data: bytes


PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"


def is_webp(data: bytes) -> bool:
    """Whether ``data`` is a whole WebP file: ``RIFF``, its length, ``WEBP``."""
    return (
        len(data) >= 12
        and data[:4] == b"RIFF"
        and data[8:12] == b"WEBP"
        and int.from_bytes(data[4:8], "little") + 8 == len(data)
    )


def encode_inspection(sha: str, inspection: Inspection) -> bytes:
    """The JSON of a record (what :func:`parse_inspection` reads back)."""
    body: dict[str, Any] = {"format": MEMO_FORMAT, "sha256": sha}
    for name in ("width", "height", "phash", "method", "c2pa", "thumbnail"):
        value = getattr(inspection, name)
        if value is not None:
            body[name] = value
    if inspection.c2pa_verdict is not None:
        body["c2pa_verdict"] = dict(inspection.c2pa_verdict)
    body["checks"] = {k: [dict(c) for c in v] for k, v in inspection.checks.items()}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def parse_inspection(sha: str, data: bytes) -> Inspection | None:
    """The record stored for ``sha``; None when it is not exactly what the memo writes."""
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if not isinstance(body, dict) or body.get("format") != MEMO_FORMAT:
        return None
    if body.get("sha256") != sha or not set(body) <= _RECORD_KEYS:
        return None
    width, height = body.get("width"), body.get("height")
    phash, method, c2pa = body.get("phash"), body.get("method"), body.get("c2pa")
    thumbnail = body.get("thumbnail")
    if not (_edge(width) and _edge(height)):
        return None
    if phash is not None and not (isinstance(phash, str) and _PHASH.fullmatch(phash)):
        return None
    if method is not None and not (isinstance(method, str) and len(method) <= 64):
        return None
    if c2pa is not None and not isinstance(c2pa, bool):
        return None
    if thumbnail is not None and not is_blob_name(thumbnail):
        return None
    checks = _checks_by_config(body.get("checks", {}))
    if checks is None:
        return None
    verdict = body.get("c2pa_verdict")
    if verdict is not None and not _verdict_ok(verdict):
        return None
    return Inspection(
        width=width,
        height=height,
        phash=phash,
        method=method,
        c2pa=c2pa,
        c2pa_verdict=verdict,
        thumbnail=thumbnail,
        checks=checks,
    )


_RECORD_KEYS: Final = frozenset(
    {
        "format",
        "sha256",
        "width",
        "height",
        "phash",
        "method",
        "c2pa",
        "c2pa_verdict",
        "thumbnail",
        "checks",
    }
)
_VERDICT_TEXT: Final = frozenset({"signer", "issuer", "generator", "error", "detail"})
_VERDICT_FLAGS: Final = frozenset({"valid", "trusted", "ai_generated"})


def _verdict_ok(verdict: object) -> bool:
    """Whether ``verdict`` is a C2PA verdict as the memo writes it: known keys, each of
    its type (text short), and at most a few failure codes."""
    if not isinstance(verdict, dict) or not isinstance(verdict.get("valid", False), bool | None):
        return False
    for name, value in verdict.items():
        if name in _VERDICT_FLAGS:
            ok = value is None or isinstance(value, bool)
        elif name in _VERDICT_TEXT:
            ok = value is None or (isinstance(value, str) and len(value) <= MAX_TEXT)
        elif name == "failures":
            ok = isinstance(value, list) and len(value) <= MAX_CHECKS
            ok = ok and all(isinstance(v, str) and len(v) <= MAX_TEXT for v in value)
        else:
            ok = False
        if not ok:
            return False
    return True


def _edge(value: object) -> bool:
    return value is None or (
        isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_EDGE
    )


def _checks_by_config(value: object) -> dict[str, tuple[CheckRecord, ...]] | None:
    if not isinstance(value, dict) or len(value) > MAX_CONFIGS:
        return None
    out: dict[str, tuple[CheckRecord, ...]] = {}
    for digest, checks in value.items():
        if not (isinstance(digest, str) and _DIGEST.fullmatch(digest)):
            return None
        if not isinstance(checks, list) or len(checks) > MAX_CHECKS:
            return None
        if not all(_check_ok(c) for c in checks):
            return None
        out[digest] = tuple(checks)
    return out


def _check_ok(check: object) -> bool:
    """Whether ``check`` is one check exactly as the manifest records it."""
    if not isinstance(check, dict) or set(check) != _CHECK_KEYS:
        return False
    name, ok, detail, value = check["name"], check["ok"], check["detail"], check["value"]
    if not (isinstance(name, str) and 0 < len(name) <= 64 and isinstance(ok, bool)):
        return False
    if not (isinstance(detail, str) and len(detail) <= MAX_TEXT):
        return False
    if value is None:
        return True
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
