"""``assetpipe.lock``: the approved variant of each asset, pinned like a dependency.

Image models are not deterministic, so a person picks one variant of an asset, and that
choice must survive the next regeneration. The lock file records, per asset, the chosen
variant's cache key and the sha256 of its delivered image (with who chose it and when);
a build then delivers exactly those bytes at the asset's own path, even after the spec
changes, until someone picks again. It is a small TOML file meant to be committed and
reviewed in diffs: one table per asset, sorted, written atomically.

Like every file in a project, it is untrusted: it is read only as a regular file of
bounded size, every value is checked, and an entry that does not check out is an error at
its line (a pin silently dropped would let approved art be regenerated).

Several processes may change it at once (two ``pick``s, the review page beside the command
line): :func:`update_lock` makes each change one read, change and write under a lock.
"""

from __future__ import annotations

import json
import os
import re
import stat
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from pipeline.errors import Location, SpecError
from pipeline.fsutil import waited_lock, write_atomic
from pipeline.reads import note_read

LOCK_FILE = "assetpipe.lock"
LOCK_GUARD = ".assetpipe.lock.lock"
"""The side file :func:`update_lock` holds a ``flock`` on, next to the lock file."""
LOCK_VERSION = 1
MAX_LOCK_BYTES = 16 * 1024 * 1024
_ASSET = re.compile(r"[^\s/#@]+(?:/[^\s/#@]+)*/[a-z0-9][a-z0-9._-]*")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_FORMATS = ("png", "webp", "jpeg")
MAX_TEXT = 200
MAX_LINE_DOTS = 2 * MAX_TEXT
"""More dots than a line assetpipe writes can hold (one name or text of at most
:data:`MAX_TEXT` characters). ``tomllib``'s time grows with the square of a dotted key's
parts: a header ``[a.a.a...]`` 100,000 parts deep takes a minute to parse."""
_DOTTY_LINE = re.compile(rb"^(?:[^\n.]*\.){%d}" % (MAX_LINE_DOTS + 1), re.MULTILINE)
MAX_REROLLS = 16
HEADER = (
    "# assetpipe.lock: the approved variant of each asset (assetpipe pick / unpick).\n"
    "# Commit it: a build delivers these images at each asset's own path until someone\n"
    "# picks again, whatever the specs say meanwhile.\n"
)


@dataclass(frozen=True, slots=True)
class Pick:
    """One asset's approved variant: which one, what request made it, and its bytes."""

    variant: int
    cache_key: str
    sha256: str
    format: str
    by: str = ""
    at: str = ""


@dataclass(frozen=True, slots=True)
class LockEntry:
    """What the lock says of one asset (``collection/asset``)."""

    pick: Pick | None = None
    rerolls: int = 0
    """Variants asked for beyond the spec's ``variants`` (the review page's reroll)."""
    rejected: tuple[int, ...] = ()
    """Variants a reviewer set aside (hidden on the page; never picked by default)."""


@dataclass(frozen=True, slots=True)
class Lock:
    """Every entry of ``assetpipe.lock``, by ``collection/asset``."""

    entries: Mapping[str, LockEntry] = field(default_factory=dict)

    @property
    def picks(self) -> dict[str, Pick]:
        """The picked assets, by ``collection/asset``."""
        return {name: e.pick for name, e in self.entries.items() if e.pick is not None}

    def with_entry(self, asset: str, entry: LockEntry | None) -> Lock:
        """This lock with ``asset``'s entry replaced (None or an empty entry: removed)."""
        entries = dict(self.entries)
        if entry is None or entry == LockEntry():
            entries.pop(asset, None)
        else:
            entries[asset] = entry
        return Lock(entries)

    def without_picks(self) -> Lock:
        """This lock with every pick dropped (rerolls and rejections kept)."""
        entries = {n: replace(e, pick=None) for n, e in self.entries.items()}
        return Lock({n: e for n, e in entries.items() if e != LockEntry()})

    def entry(self, asset: str) -> LockEntry:
        """``asset``'s entry, or an empty one."""
        return self.entries.get(asset, LockEntry())


def read_lock(root: Path) -> Lock:
    """The project's lock; an empty one when there is no ``assetpipe.lock``."""
    path = root / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        note_read(path, None)
        return Lock()
    except OSError as exc:
        raise SpecError(
            f"{LOCK_FILE} cannot be read ({exc.strerror}); is it a symbolic link?",
            Location(LOCK_FILE),
            "assetpipe.lock is a regular file in the project folder",
        ) from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_LOCK_BYTES:
            raise SpecError(
                f"{LOCK_FILE} is not a regular file under {MAX_LOCK_BYTES:,} bytes",
                Location(LOCK_FILE),
                "remove it and pick again",
            )
        data = handle.read(MAX_LOCK_BYTES + 1)
    note_read(path, data)
    return parse_lock(_toml(data))


def _toml(data: bytes) -> dict[str, object]:
    """The TOML document in ``data``, or a SpecError at the file.

    ``tomllib`` parses nested arrays and tables by recursion, so ``a = [[[[...]]]]`` a
    hundred thousand deep ends in a RecursionError, and a dotted key of as many parts
    takes a minute. The lock assetpipe writes is three levels deep, so such a file is
    refused as what it is, a file no assetpipe wrote.
    """
    dotty = _DOTTY_LINE.search(data)
    if dotty is not None:
        raise SpecError(
            f"more than {MAX_LINE_DOTS} dots in one line: keys nested too deeply to be "
            "a lock assetpipe wrote",
            Location(LOCK_FILE, data.count(b"\n", 0, dotty.start()) + 1),
            "restore it from version control, or remove it and pick again",
        )
    try:
        return tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SpecError(
            f"{LOCK_FILE} is not valid TOML: {exc}",
            Location(LOCK_FILE),
            "restore it from version control, or remove it and pick again",
        ) from None
    except RecursionError:
        raise SpecError(
            "arrays or tables nested too deeply to be a lock assetpipe wrote",
            Location(LOCK_FILE),
            "restore it from version control, or remove it and pick again",
        ) from None


def parse_lock(raw: Mapping[str, object]) -> Lock:
    """The lock in a parsed TOML document (SpecError naming the asset when one is bad)."""
    version = raw.get("version")
    if version != LOCK_VERSION:
        raise SpecError(
            f"{LOCK_FILE} has version {version!r}; this assetpipe reads version {LOCK_VERSION}",
            Location(LOCK_FILE),
            "upgrade assetpipe, or remove the file and pick again",
        )
    assets = raw.get("assets", {})
    if not isinstance(assets, dict):
        raise SpecError("'assets' is not a table", Location(LOCK_FILE))
    entries: dict[str, LockEntry] = {}
    for name, value in assets.items():
        try:
            entries[_asset_name(name)] = _entry(value)
        except (TypeError, ValueError) as exc:
            raise SpecError(
                f"the entry of {json.dumps(name)[:MAX_TEXT]} is malformed ({exc})",
                Location(LOCK_FILE),
                "restore it from version control, or `assetpipe unpick` it and pick again",
            ) from None
    return Lock(entries)


def write_lock(root: Path, lock: Lock) -> Path:
    """Write ``assetpipe.lock`` atomically (removed when it holds nothing)."""
    path = root / LOCK_FILE
    if not lock.entries:
        path.unlink(missing_ok=True)
        return path
    lines = [HEADER, f"version = {LOCK_VERSION}\n"]
    for name in sorted(lock.entries):
        entry = lock.entries[name]
        lines.append(f"\n[assets.{_quote(name)}]\n")
        if entry.pick is not None:
            p = entry.pick
            lines.append(f"variant = {p.variant}\n")
            lines.append(f"cache_key = {_quote(p.cache_key)}\n")
            lines.append(f"sha256 = {_quote(p.sha256)}\n")
            lines.append(f"format = {_quote(p.format)}\n")
            if p.by:
                lines.append(f"by = {_quote(p.by)}\n")
            if p.at:
                lines.append(f"at = {_quote(p.at)}\n")
        if entry.rerolls:
            lines.append(f"rerolls = {entry.rerolls}\n")
        if entry.rejected:
            lines.append(f"rejected = [{', '.join(str(k) for k in entry.rejected)}]\n")
    write_atomic(path, "".join(lines).encode("utf-8"))
    return path


def update_lock(root: Path, change: Callable[[Lock], Lock]) -> Lock:
    """Apply ``change`` to the lock as it is now and write the result, as one step.

    Every change is a read, a change and a write; two picks at once would each write back
    what they read plus their own asset, and the later write would drop the earlier pick,
    both having said it was recorded. So the three happen under an exclusive ``flock``
    that waits its turn, and the lock is read inside it: ``change`` sees every change
    made before, and what it checks (is there a pick to remove?) still holds when its
    result is written.

    The ``flock`` is on :data:`LOCK_GUARD`, a side file, because the lock file itself is
    replaced by each write (a rename, so readers never see half of it) and a lock on a
    replaced file excludes no one. The side file sits next to the lock file, in the
    project folder, because every process that writes the lock agrees on that folder,
    while the cache folder may differ per run (``--cache-dir``). It is opened without
    following a link, so a planted link cannot make assetpipe truncate another file, and
    it is removed on release: a project holds it only while a change is written.
    Returns the lock as written.
    """
    with waited_lock(
        root / LOCK_GUARD,
        f"the guard of {LOCK_FILE}",
        lambda holder: (
            f"another assetpipe (pid {holder}) has been changing {LOCK_FILE} for a minute; "
            f"if no assetpipe is running, remove {root / LOCK_GUARD}"
        ),
    ):
        before = read_lock(root)
        after = change(before)
        if after != before:
            write_lock(root, after)
        return after


def picked(lock: Lock, asset: str, pick: Pick) -> Lock:
    """``lock`` with ``pick`` as ``asset``'s approved variant (rejections of it lifted)."""
    entry = lock.entry(asset)
    rejected = tuple(k for k in entry.rejected if k != pick.variant)
    return lock.with_entry(asset, replace(entry, pick=pick, rejected=rejected))


def _quote(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's, with non-ASCII escaped)."""
    return json.dumps(text, ensure_ascii=True)


def _asset_name(name: object) -> str:
    """``name`` when it is a ``collection/asset`` name; a control character (an ESC that
    would recolour or clear a terminal line where the name is printed) never is."""
    if not isinstance(name, str) or len(name) > MAX_TEXT:
        raise ValueError("not a collection/asset name")
    if not name.isprintable():
        raise ValueError("a collection/asset name holds no control characters")
    if not _ASSET.fullmatch(name):
        raise ValueError("not a collection/asset name")
    return name


def _entry(value: object) -> LockEntry:
    if not isinstance(value, dict):
        raise TypeError("not a table")
    unknown = set(value) - {"variant", "cache_key", "sha256", "format", "by", "at"}
    unknown -= {"rerolls", "rejected"}
    if unknown:
        raise ValueError(f"unknown key {sorted(unknown)[0]!r}")
    pick = None
    if "variant" in value or "sha256" in value:
        pick = Pick(
            variant=_count(value.get("variant"), 1, 64, "variant"),
            cache_key=_hex(value.get("cache_key"), "cache_key"),
            sha256=_hex(value.get("sha256"), "sha256"),
            format=_format(value.get("format")),
            by=_text(value.get("by", ""), "by"),
            at=_text(value.get("at", ""), "at"),
        )
    rejected = value.get("rejected", [])
    if not isinstance(rejected, list) or len(rejected) > 64:
        raise TypeError("rejected is not a list of variant numbers")
    return LockEntry(
        pick=pick,
        rerolls=_count(value.get("rerolls", 0), 0, MAX_REROLLS, "rerolls"),
        rejected=tuple(sorted({_count(k, 1, 64, "rejected") for k in rejected})),
    )


def _count(value: object, low: int, high: int, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{name} is not a whole number from {low} to {high}")
    return value


def _hex(value: object, name: str) -> str:
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise ValueError(f"{name} is not 64 hex digits")
    return value


def _format(value: object) -> str:
    if value not in _FORMATS:
        raise ValueError(f"format is not one of {', '.join(_FORMATS)}")
    return str(value)


def _text(value: object, name: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT or not value.isprintable():
        raise ValueError(f"{name} is not a short line of text")
    return value
