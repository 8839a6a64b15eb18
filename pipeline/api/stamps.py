"""The last build's end state, so that a build with nothing to do says so at once.

An up-to-date build of 10,000 jobs used to read the whole manifest (10 MB of JSON),
check every entry, run the scheduler over jobs that need nothing, and rebuild the
manifest only to find it unchanged. When a build finds every selected job up to date
(so the manifest it leaves already says so, status by status, and the next such build
would write it again byte for byte), it records what it left
(``.assetpipe/last-build.json``): which plan (the stored plan's sha256 and the selected
job ids, :attr:`Workspace.plan_digest`), the sha256 of the manifest, the paths of the
files the selected jobs own and one sha256 of their ``lstat`` (type, size, mtime, ctime,
inode of each). The next build of the same plan compares: the manifest hashes the same,
every file has the same status (the exporters' files, such as the gallery page,
included), and the exporters are configured as they were. Then the ordinary checks
would find every job up to date, from the same plan and the same manifest over the same
files, so the build says so without them. Any difference, or any doubt, and the build
runs as always (and a build that runs removes the stamp before it writes anything).

The stamp is under ``.assetpipe/`` and untrusted like the rest: it counts only when it
carries the MAC of this user's key (:mod:`pipeline.api.sealing`), so nobody who can
write ``.assetpipe/`` can make a build skip its checks (a planted stamp listing no files
would otherwise say "up to date" over a missing file forever). It is read without
following a link, bounded, validated; its paths are checked as output paths; a bad one
is no stamp.

A build of the whole plan also lists the plan's job ids and warnings, so that the next
whole build can be answered before the stored plan is decoded (100,000 jobs take seconds
to decode; the answer takes about as long as starting Python, reading the plan's bytes
and one ``lstat`` a file): :func:`whole_plan_unchanged`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.api.sealing import Sealer
from pipeline.errors import Location
from pipeline.exports.config import exports_digest
from pipeline.fsutil import read_regular, write_atomic
from pipeline.hashing import sha256_bytes
from pipeline.jobs import Plan, PlanWarning
from pipeline.output import MANIFEST, OutputTree
from pipeline.output.manifest import read_manifest_bytes

if TYPE_CHECKING:
    from pipeline.settings import Settings

log = logging.getLogger("assetpipe.stamps")

STAMP_FILE = "last-build.json"
MAX_STAMP_BYTES = 256 * 1000 * 1000
_VERSION = 3
_PURPOSE = "last build"


def stamp_inputs(settings: Settings) -> str:
    """What a build with nothing to do must find as it was, besides its files: the
    exporters' configuration and the C2PA credentials files are signed with (a new
    certificate signs every re-encoded file again). Kept here, not beside the runner, so
    a build answered from the stamp never imports the runner."""
    digest = exports_digest(settings.exports)
    if settings.qa is not None:  # only then: stamps of builds without the gate stay as they were
        from pipeline.api.qa import qa_digest  # noqa: PLC0415 - the gate's code, only when on

        digest = f"{digest}+{qa_digest(settings.qa)}"
    return digest if settings.signing is None else f"{digest}+{settings.signing.fingerprint}"


def forget(cache_dir: Path) -> None:
    """Remove the stamp: this build is about to change things."""
    with contextlib.suppress(OSError):
        (cache_dir / STAMP_FILE).unlink()


def record(
    cache_dir: Path,
    digest: str,
    tree: OutputTree,
    paths: Iterable[str],
    sealer: Sealer,
    *,
    exports: str = "",
    whole_plan: Plan | None = None,
) -> None:
    """Stamp the end of a build that found every job of plan ``digest`` up to date;
    ``paths`` are the output files those jobs own (their companions included) and the
    exporters' files, ``exports`` the digest of how the exporters are configured.

    ``whole_plan``: the plan built, when it was the whole stored plan (no selection);
    the stamp then lists its job ids and warnings, so that :func:`whole_plan_unchanged`
    can answer the next such build before the plan is decoded."""
    manifest = read_manifest_bytes(tree.root / MANIFEST)
    if manifest is None:
        return
    listed = list(dict.fromkeys(paths))
    if any("\n" in rel for rel in listed):
        return  # not a path assetpipe writes; the stamp lists paths one a line
    joined = "\n".join(listed)
    status = _status_digest(tree.root, joined, regular=True)
    if status is None:
        return  # a file is missing after all: no stamp, the next build looks
    doc: dict[str, Any] = {
        "version": _VERSION,
        "plan": digest,
        "manifest": sha256_bytes(manifest),
        "exports": exports,
        "paths": joined,
        "status": status,
    }
    if whole_plan is not None:
        doc["ids"] = "\n".join(job.id for job in whole_plan.jobs)
        doc["warnings"] = [_warning_fields(w) for w in whole_plan.warnings]
    sealed = sealer.seal(_PURPOSE, json.dumps(doc, separators=(",", ":")).encode())
    if sealed is None:
        return  # no per-user key: a stamp nobody could tell from a planted one
    try:
        write_atomic(cache_dir / STAMP_FILE, sealed, fsync=False)
    except OSError as exc:
        log.debug("no stamp of this build: %s", exc)


def unchanged_since(
    cache_dir: Path, digest: str, tree: OutputTree, sealer: Sealer, *, exports: str = ""
) -> int | None:
    """The number of files the last build of plan ``digest`` left, when this user's
    assetpipe stamped it, the exporters are configured as then (``exports``), and every
    one of those files (the exporters' included) and the manifest are exactly as it left
    them; else None."""
    doc = _open(cache_dir, sealer)
    if doc is None or doc["plan"] != digest or doc["exports"] != exports:
        return None
    return _files_unchanged(doc, tree)


@dataclass(frozen=True, slots=True)
class WholePlan:
    """What a build of the whole plan needs to say when nothing changed."""

    jobs: int
    warnings: tuple[PlanWarning, ...]


def whole_plan_unchanged(
    cache_dir: Path,
    stored: str,
    tree: OutputTree,
    sealer: Sealer,
    key: Callable[[str, Sequence[str]], str],
    *,
    exports: str = "",
) -> WholePlan | None:
    """The number of jobs of the stored plan whose sha256 is ``stored`` and its warnings,
    when the last build built all of them (and found them up to date), this user's
    assetpipe stamped it, and everything is as :func:`unchanged_since` requires; else
    None.

    The stamp is keyed by the plan's sha256 and the ids of the jobs built
    (``key(stored, ids)``); the ids are those the stamp lists, and it lists them only for
    a build of the whole plan, so a match proves the stamp is of this whole plan
    without the plan's 100,000 jobs being decoded first."""
    doc = _open(cache_dir, sealer)
    if doc is None or doc["exports"] != exports or not isinstance(doc.get("ids"), str):
        return None
    ids = doc["ids"].split("\n") if doc["ids"] else []
    warnings = _warnings(doc.get("warnings"))
    if warnings is None or key(stored, ids) != doc["plan"]:
        return None
    if _files_unchanged(doc, tree) is None:
        return None
    return WholePlan(len(ids), warnings)


def _warning_fields(warning: PlanWarning) -> list[object]:
    place = warning.location
    return [warning.message] + ([] if place is None else [place.file, place.line, place.column])


def _warnings(found: object) -> tuple[PlanWarning, ...] | None:
    """The plan's warnings as the stamp lists them; None when they are not a list of
    ``[message]`` or ``[message, file, line, column]``."""
    if not isinstance(found, list):
        return None
    warnings = []
    for fields in found:
        if not (isinstance(fields, list) and fields and isinstance(fields[0], str)):
            return None
        if len(fields) == 1:
            warnings.append(PlanWarning(fields[0], None))
            continue
        if not (
            len(fields) == 4
            and isinstance(fields[1], str)
            and all(n is None or (type(n) is int and n > 0) for n in fields[2:])
        ):
            return None
        warnings.append(PlanWarning(fields[0], Location(fields[1], fields[2], fields[3])))
    return tuple(warnings)


def _open(cache_dir: Path, sealer: Sealer) -> dict[str, Any] | None:
    """The stamp, when this user's assetpipe wrote it and it has the fields of this
    version; else None."""
    try:
        data = read_regular(cache_dir / STAMP_FILE, MAX_STAMP_BYTES)
        if data is None or not sealer.usable:
            return None
        opened = sealer.open(_PURPOSE, data)
        if opened is None:
            log.warning(
                "ignoring %s: it was not written by this user's assetpipe; checking every job",
                cache_dir / STAMP_FILE,
            )
        doc = json.loads(opened) if opened is not None else None
    except (OSError, ValueError, RecursionError):
        return None
    if not (
        isinstance(doc, dict)
        and doc.get("version") == _VERSION
        and isinstance(doc.get("plan"), str)
        and isinstance(doc.get("exports"), str)
        and isinstance(doc.get("manifest"), str)
        and isinstance(doc.get("paths"), str)
        and isinstance(doc.get("status"), str)
    ):
        return None
    return doc


def _files_unchanged(doc: dict[str, Any], tree: OutputTree) -> int | None:
    """The number of files the stamp lists, when the manifest and each of them are
    exactly as the stamped build left them; else None."""
    manifest = read_manifest_bytes(tree.root / MANIFEST)
    if manifest is None or sha256_bytes(manifest) != doc["manifest"]:
        return None
    paths: str = doc["paths"]
    if _status_digest(tree.root, paths) != doc["status"]:
        return None
    return paths.count("\n") + 1 if paths else 0


_STATUS = struct.Struct("<QqqqQ")
"""A file's type and permissions, size, mtime, ctime and inode: what says it is the same
file with the same bytes (any write changes its ctime; a replaced file has another inode;
a link or a folder in its place has another type)."""
_UNSAFE = ("\x00", "\n/", "/\n", "//", "\n\n", "/./", "/../", "\n./", "\n../", "/.\n", "/..\n")
"""What no line of ``\n<paths>\n`` may hold: an absolute path, an empty, ``.`` or ``..``
part, or a NUL."""


def _status_digest(root: Path, paths: str, *, regular: bool = False) -> str | None:
    """The sha256 of the status of every file of ``paths`` (one a line, relative to
    ``root``), in order; None when a path could leave the tree (an absolute path, an
    empty, ``.`` or ``..`` part), the root or a folder on the way is not a real folder, a
    file is missing, or (``regular``, when stamping) one is not a regular file.

    Every folder is checked once to be a real folder and every file is ``lstat``-ed once,
    relative to the root opened without following a link: the same guarantee as
    :meth:`OutputTree.stat` path by path (which walks each path through ``pathlib``:
    seconds for 100,000 files), while the per-file cost stays one system call and the
    stamp holds one digest instead of four numbers a file (a 10 MB stamp to parse)."""
    if any(bad in f"\n{paths}\n" for bad in _UNSAFE) or paths in (".", ".."):
        return None
    listed = paths.split("\n") if paths else []
    folders: set[str] = set()
    for rel in listed:
        folder = rel.rpartition("/")[0]
        while folder and folder not in folders:
            folders.add(folder)
            folder = folder.rpartition("/")[0]
    try:
        root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (OSError, ValueError):
        return None
    try:
        for folder in sorted(folders):  # a parent before its children
            if not stat.S_ISDIR(os.lstat(folder, dir_fd=root_fd).st_mode):
                return None
        pack, lstat, packed = _STATUS.pack, os.lstat, []
        for rel in listed:
            info = lstat(rel, dir_fd=root_fd)
            if regular and not stat.S_ISREG(info.st_mode):
                return None
            packed.append(
                pack(info.st_mode, info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino)
            )
    except (OSError, ValueError):
        return None
    finally:
        os.close(root_fd)
    return sha256_bytes(b"".join(packed))
