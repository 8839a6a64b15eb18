"""Reusing the last plan while nothing it was made from has changed.

Expanding matrices and rendering every prompt is most of what an up-to-date build
costs: 10,000 jobs are 30,000 Jinja renders. A plan is a pure function of the project
files it read (specs, brand kits, templates, input images, ``assetpipe.lock``), the
settings that reach the planner, the day (model lifecycles) and assetpipe's own code.
So each plan is stored in ``.assetpipe/plans/`` under a key of everything but the files,
with the sha256 of every file it read (:mod:`pipeline.reads`); it is reused when every
one of those files still hashes the same and the specs folder lists the same spec files.

Files are compared by content, not by modification time: a fresh CI checkout gives every
file a new time and the same bytes, and a file edited twice within a clock tick still
changes its hash. Hashing a project's text files takes milliseconds.

A stored plan is untrusted like all of ``.assetpipe/``: it is used only when it carries
the MAC of this user's key (:mod:`pipeline.api.sealing`), so the list of files it was
made from, and every job in it, are what this user's assetpipe recorded, never what
someone who could write ``.assetpipe/`` chose. It is read without following links,
bounded in size, every file it names must lie inside the project, and it is validated
field by field (:mod:`pipeline.jobs.codec`). Its cache keys are not used: the runner
computes every key from the request it sends. Anything wrong is a miss, with one
warning when the plan was not this user's, and the project is planned afresh.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pipeline
from pipeline import ops
from pipeline.api.sealing import Sealer
from pipeline.fsutil import LinkRefused, read_regular, refuse_link, write_atomic
from pipeline.hashing import canonical_json, sha256_bytes
from pipeline.jobs import Plan
from pipeline.jobs.codec import CODEC_VERSION, PlanDecodeError, decode_plan, encode_plan
from pipeline.reads import recording

log = logging.getLogger("assetpipe.plancache")

PLANS_DIR = "plans"
KEEP = 8
"""Stored plans kept per project: one per provider/model/date a project is planned for."""
MAX_PLAN_BYTES = 256 * 1000 * 1000
"""Near what 100,000 jobs take: a job is about 0.8 kB with a 200-character prompt
(measured on a 10,000-job plan: 7.8 MB), so 100,000 jobs with prompts two or three times
as long fit; a larger file is not a plan assetpipe wrote and is not read."""
_PURPOSE = "stored plan"
MAX_READ_BYTES = 50 * 1000 * 1000
"""The largest file a plan reads (an edit's input image: the API takes up to 50 MB)."""

SpecLister = Callable[[], list[Path]]


def plan_context(fields: Mapping[str, Any]) -> str:
    """The key of a plan's inputs other than files: ``fields`` (settings that reach the
    planner, the day, the folders) plus assetpipe's version and code."""
    payload = {
        "format": CODEC_VERSION,
        "version": pipeline.__version__,
        "code": _code_fingerprint(),
        "ops": ops.fingerprint(),
        **fields,
    }
    return sha256_bytes(canonical_json(payload).encode("utf-8"))


def _code_fingerprint() -> str:
    """Size and modification time of every file of the installed package: an editable
    install whose planner was edited must not reuse plans made by the old code."""
    root = Path(pipeline.__file__).parent
    found: list[tuple[str, int, int]] = []
    stack = [root]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name != "__pycache__":
                        stack.append(Path(entry.path))
                elif entry.name.endswith((".py", ".toml", ".j2", ".html", ".css", ".js")):
                    info = entry.stat(follow_symlinks=False)
                    found.append((entry.path, info.st_size, info.st_mtime_ns))
    return sha256_bytes(repr(sorted(found)).encode("utf-8"))


@dataclass(frozen=True, slots=True)
class KnownPlan:
    """A plan; for a build, the sha256 of its stored text and what :meth:`keep` writes."""

    plan: Plan
    digest: str | None = None
    """The sha256 of the plan's stored text (None: a plan that is not to be stored)."""
    path: Path | None = None
    record: bytes | None = None
    """A fresh plan's whole file; None when the plan was reused (or is not stored)."""

    def keep(self) -> None:
        """Store a fresh plan, or mark a reused one as the most recently used. Called by a
        build once it holds the project's folders (a build that stops before writes
        nothing). A cache that cannot be written only costs the next run its planning
        time; a link on the way is not written through."""
        if self.path is None:
            return
        folder = self.path.parent
        try:
            for part in (folder.parent, folder):
                refuse_link(part, "a folder of stored plans")
            if self.record is None:
                os.utime(self.path, follow_symlinks=False)
                return
            folder.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, self.record, fsync=False)
            _prune(folder)
        except (OSError, LinkRefused) as exc:
            log.warning("not storing the plan in %s: %s", folder, exc)


def reuse_or_plan(
    cache_dir: Path,
    context: str,
    folders: Sequence[Path],
    list_specs: SpecLister,
    make: Callable[[], Plan],
    *,
    store: bool,
    sealer: Sealer,
) -> KnownPlan:
    """The stored plan for ``context`` if this user's assetpipe stored it and every file
    it read (all inside ``folders``: the project's, and specs and templates where the
    command line put them elsewhere) is unchanged, else ``make()``.

    With ``store`` (a build), a fresh plan comes with the file that stores it, sealed,
    with what it read, for next time (:meth:`KnownPlan.keep`); ``plan`` and ``check``
    promise no writes, so they only reuse what a build stored."""
    path = cache_dir / PLANS_DIR / f"{context}.json"
    specs = [str(p.absolute()) for p in list_specs()]
    stored = _load(path, specs, tuple(f.absolute() for f in folders), sealer)
    if stored is not None:
        return KnownPlan(stored.plan, stored.digest, path if store else None)
    if not store:
        return KnownPlan(make())
    with recording() as reads:
        fresh = make()
    header = json.dumps({"specs": specs, "files": reads.files}, separators=(",", ":"))
    body = encode_plan(fresh)
    record = sealer.seal(_PURPOSE, header.encode("utf-8") + b"\n" + body)
    if record is None:  # no per-user key: a plan nobody could tell from a planted one
        return KnownPlan(fresh)
    return KnownPlan(fresh, sha256_bytes(body), path, record)


def stored_digest(
    cache_dir: Path,
    context: str,
    folders: Sequence[Path],
    list_specs: SpecLister,
    sealer: Sealer,
) -> tuple[str, Path] | None:
    """The sha256 of the stored plan for ``context`` and its path, checked exactly as
    :func:`reuse_or_plan` checks it (this user's MAC, the same spec files, every file it
    read unchanged) but not decoded: a build that may have nothing to do compares the
    last build's stamp with it first, and decoding 100,000 jobs would cost more than the
    whole answer. None where :func:`reuse_or_plan` would not reuse it."""
    path = cache_dir / PLANS_DIR / f"{context}.json"
    specs = [str(p.absolute()) for p in list_specs()]
    body = _verified_body(path, specs, tuple(f.absolute() for f in folders), sealer)
    return None if body is None else (sha256_bytes(body), path)


def mark_used(path: Path) -> None:
    """Mark a reused stored plan as the most recently used (it is pruned last)."""
    KnownPlan(Plan(jobs=()), path=path).keep()


def _load(
    path: Path, specs: list[str], folders: tuple[Path, ...], sealer: Sealer
) -> KnownPlan | None:
    body = _verified_body(path, specs, folders, sealer)
    if body is None:
        return None
    try:
        return KnownPlan(decode_plan(body), sha256_bytes(body))
    except (ValueError, RecursionError, PlanDecodeError) as exc:
        log.warning("ignoring the stored plan %s (%s); planning afresh", path, exc)
        return None


def _verified_body(
    path: Path, specs: list[str], folders: tuple[Path, ...], sealer: Sealer
) -> bytes | None:
    """The stored plan's encoded jobs, when this user's assetpipe stored it for these
    spec files and every file it read is unchanged; else None."""
    try:
        data = read_regular(path, MAX_PLAN_BYTES)
    except OSError as exc:
        log.warning("ignoring the stored plan %s (%s); planning afresh", path, exc.strerror)
        return None
    if data is None or not sealer.usable:
        return None
    opened = sealer.open(_PURPOSE, data)
    if opened is None:
        log.warning(
            "ignoring the stored plan %s: it was not stored by this user's assetpipe "
            "(planted, copied from another machine, or made with another key); planning afresh",
            path,
        )
        return None
    head, _, body = opened.partition(b"\n")
    try:
        header = json.loads(head)
        if not isinstance(header, dict) or header.get("specs") != specs:
            return None
        files = header.get("files")
        unchanged = isinstance(files, dict) and _unchanged(files, folders)
    except (ValueError, RecursionError) as exc:
        log.warning("ignoring the stored plan %s (%s); planning afresh", path, exc)
        return None
    return body if unchanged else None


def _unchanged(files: Mapping[str, object], folders: tuple[Path, ...]) -> bool:
    """Whether every recorded file lies in ``folders`` and still has the recorded content
    (or is still missing). A file that became a link, a folder or something unreadable
    is a change."""
    for name, want in files.items():
        if not (want is None or isinstance(want, str)) or not _within(name, folders):
            return False
        try:
            data = read_regular(Path(name), MAX_READ_BYTES)
        except OSError:
            return False
        have = None if data is None else sha256_bytes(data)
        if have != want:
            return False
    return True


def _prune(folder: Path) -> None:
    """Keep the :data:`KEEP` most recently used plans."""
    plans = sorted(_entries(folder), key=lambda e: e[1], reverse=True)
    for name, _ in plans[KEEP:]:
        with contextlib.suppress(OSError):
            (folder / name).unlink()


def _entries(folder: Path) -> Iterator[tuple[str, int]]:
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.endswith(".json") and entry.is_file(follow_symlinks=False):
                yield entry.name, entry.stat(follow_symlinks=False).st_mtime_ns


def _within(name: str, folders: tuple[Path, ...]) -> bool:
    """Whether the absolute path ``name`` lies in one of ``folders``, by its parts: a
    stored plan never makes assetpipe read a file outside the project."""
    path = Path(os.path.normpath(name))
    return path.is_absolute() and any(path.is_relative_to(folder) for folder in folders)
