"""What each job of a plan needs: nothing, a copy from the cache, or a new call.

A job is *up to date* when its file exists unchanged and the manifest records the same
cache key; *cached* when the key is in the cache; otherwise it must be made. Keys of
edits and renditions depend on the bytes of their inputs, which are known when those
inputs are up to date (the manifest's sha256) or cached (the record's blob) — so a plan
can tell, before any call, exactly which jobs a build will pay for.
"""

from __future__ import annotations

import difflib
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, assert_never

from pipeline.collecting import no_collections
from pipeline.errors import printable, shortened
from pipeline.hashing import CacheRequest
from pipeline.jobs import (
    ApiJob,
    Job,
    PinnedJob,
    Plan,
    RenditionJob,
    SheetJob,
    api_request,
    delivery_request,
    pick_request,
    rendition_request,
    sheet_request,
)
from pipeline.jobs.api_keys import api_cache_key
from pipeline.jobs.keys import (
    operated_key,
    signed_key,
)
from pipeline.jobs.mold import Mold
from pipeline.output import Manifest, ManifestEntry, OutputTree
from pipeline.runner.paid import delivery_compression
from pipeline.store import CacheRecord, ResultStore
from pipeline.store.base import Prefetching

Status = Literal["up-to-date", "cached", "generate", "render", "pending"]
Approval = Literal["current", "changed"]


@dataclass(frozen=True, slots=True)
class JobState:
    """A job's status before a build, with its key and delivered sha256 when known."""

    status: Status
    cache_key: str | None
    sha256: str | None
    reason: str
    checks: tuple[Mapping[str, Any], ...] | None = None
    """The quality checks the manifest recorded for an up-to-date file."""
    approval: Approval | None = None
    """For a picked asset's own image: whether the picked variant's request is still the
    one the spec asks for (``current``) or the spec changed since (``changed``)."""


_new_state: Callable[..., JobState] = Mold(
    JobState, ("status", "cache_key", "sha256", "reason", "checks"), {}
).make
"""``JobState(status, cache_key, sha256, reason, checks)`` without the frozen
constructor's ``object.__setattr__`` per field: the state of each of 100,000 jobs."""


def job_request(job: Job, shas: Mapping[str, str | None]) -> CacheRequest | None:
    """What ``job``'s result is made from, given its inputs' delivered sha256 (None while
    one is unknown). Always computed from the job's own fields, never taken from a key a
    stored plan carries: the key a result is filed under is the hash of what is sent."""
    match job:
        case PinnedJob():
            return pick_request(job.approved)
        case RenditionJob():
            src = shas.get(job.parent)
            return rendition_request(src, job.op) if src else None
        case SheetJob():
            frames = [shas.get(d) for d in job.depends_on]
            if not all(frames):
                return None
            return sheet_request(job.params, list(zip(job.frames, map(str, frames), strict=True)))
        case ApiJob():
            return _api_request(job, shas)
        case _:  # pragma: no cover - mypy proves every kind is handled
            assert_never(job)


def recorded_key(job: Job, request: CacheRequest, signing: str | None = None) -> str:
    """The key the manifest records for ``job``'s file, given its request: the request's
    own, except for an API job with ``ops:``, whose file also depends on them (its paid
    image stays filed under the request's key: see :func:`operated_delivery`), and for
    any file when re-encoded files are signed (``signing``: the credentials' fingerprint),
    so a new certificate delivers again."""
    return _recorded(job, request.key, signing)


def _recorded(job: Job, request_key: str, signing: str | None) -> str:
    """:func:`recorded_key` from the request's key alone (one computed from the job)."""
    key = request_key
    if isinstance(job, ApiJob) and job.ops:
        key = operated_key(key, job)
    if signing is not None and job.kind != "pick":
        return signed_key(key, signing)
    return key


def _request_key(job: Job, shas: Mapping[str, str | None]) -> str | None:
    """The key of :func:`job_request`, computed from the job's own fields as there; for
    an API job that reads no image, without making the request's payload, which only a
    store asks for (the keys this process hashed while planning are looked up)."""
    if isinstance(job, ApiJob) and not job.inputs and job.mask is None:
        return api_cache_key(job, (), None)
    request = job_request(job, shas)
    return request.key if request is not None else None


def operated_delivery(job: ApiJob, source_sha: str) -> CacheRequest:
    """Where the file of an API job with ``ops:`` is kept: under the sha256 of the API's
    image plus the delivery and the operations, so it is made once per image, and a
    change to an operation makes it again from the same (cached) image."""
    return delivery_request(source_sha, job.size, job.format, delivery_compression(job), job.ops)


def _api_request(job: ApiJob, shas: Mapping[str, str | None]) -> CacheRequest | None:
    """An API job's request once every input image (and the mask) is known."""
    inputs: list[str] = []
    for ref in job.inputs:
        sha = ref.sha256 if ref.job is None else shas.get(ref.job)
        if not sha:
            return None
        inputs.append(sha)
    mask_sha = None
    if job.mask is not None:
        mask_sha = job.mask.sha256 if job.mask.job is None else shas.get(job.mask.job)
        if not mask_sha:
            return None
    return api_request(job, inputs, mask_sha)


def what_changed(job: Job, entry: ManifestEntry, shas: Mapping[str, str | None]) -> str:
    """Why a job whose file the manifest records must be made again, in the words a user
    thinks in and short enough for a column of ``plan``: the words of the prompt that
    changed, each parameter (and the model or provider) with its old and new value, or an
    input image."""
    if job.kind in ("generate", "edit"):
        changes = []
        if entry.prompt != job.prompt:
            changes.append(_prompt_change(str(entry.prompt), job.prompt))
        changes.extend(
            _value_change(name, entry.params.get(name), job.params.get(name))
            for name in sorted(
                name
                for name in {*entry.params, *job.params}
                if entry.params.get(name) != job.params.get(name)
            )
        )
        for name, old, new in (
            ("model", entry.model, job.model),
            ("provider", entry.provider, job.provider),
        ):
            if old != new:
                changes.append(_value_change(name, old, new))
        now = [
            (ref.sha256 if ref.job is None else shas.get(ref.job)) or ""
            for ref in (*job.inputs, *((job.mask,) if job.mask is not None else ()))
        ]
        if job.kind == "edit" and list(entry.inputs) != now:
            changes.append("input image changed")
        if [c.as_dict() for c in job.ops] != list(entry.ops or ()):
            changes.append("ops changed")
        if changes:
            return "; ".join(changes)
        return "the request changed (variant or endpoint)"
    if job.kind == "rendition":
        if [c.as_dict() for c in job.op.ops] != list(entry.ops or ()):
            return "its ops changed"
        return "its source image or settings changed"
    if job.kind == "sheet":
        return "a frame or its settings changed"
    return "the approved image changed"


PROMPT_CHANGE_CHARS = 80
"""The longest ``prompt changed: ...`` reason: it is one cell of the plan's table."""
CONTEXT_WORDS = 2
"""Unchanged words shown on each side of a change, so a reader can tell where it is."""
RUN_CHARS = 28
"""The longest run of removed or added words shown whole; a longer one ends in '…'."""
VALUE_CHARS = 24
"""The longest parameter value shown whole; a longer one ends in '…'."""


def _prompt_change(old: str, new: str) -> str:
    """``prompt changed:`` and a word diff of the two prompts (``a -"red" +"blue" ball``):
    with a few unchanged words around each change, or none when that is too long, cut at
    :data:`PROMPT_CHANGE_CHARS`. Control characters are escaped: the old prompt comes
    from the manifest, a file anyone could have edited."""
    before, after = old.split(), new.split()
    if before == after:
        return "prompt changed: spaces or line breaks only"
    text = ""
    for context in (CONTEXT_WORDS, 0):
        text = "prompt changed: " + _word_diff(before, after, context)
        if len(text) <= PROMPT_CHANGE_CHARS:
            return text
    return shortened(text, PROMPT_CHANGE_CHARS)


def _word_diff(old: list[str], new: list[str], context: int) -> str:
    """Removed words as ``-"..."``, added ones as ``+"..."``, with ``context`` unchanged
    words on each side of a change and '…' for the unchanged words left out."""
    ops = difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes()
    parts: list[str] = []
    for i, (tag, i1, i2, j1, j2) in enumerate(ops):
        if tag == "equal":
            parts.extend(_context(old[i1:i2], context, first=i == 0, last=i == len(ops) - 1))
            continue
        if i2 > i1:
            parts.append("-" + _quoted(old[i1:i2]))
        if j2 > j1:
            parts.append("+" + _quoted(new[j1:j2]))
    return " ".join(parts)


def _context(words: list[str], context: int, *, first: bool, last: bool) -> list[str]:
    """The unchanged ``words`` between two changes (or before the first, or after the
    last) as shown: ``context`` next to each change, '…' for the rest (with no context,
    only between two changes)."""
    shown = [printable(w) for w in words]
    lead = [] if first else shown[:context]  # just after the change before them
    tail = [] if last or not context else shown[-context:]  # just before the next change
    if len(shown) <= len(lead) + len(tail):
        return shown
    gap = ["…"] if context or not (first or last) else []
    return [*lead, *gap, *tail]


def _quoted(words: list[str]) -> str:
    return '"' + shortened(printable(" ".join(words)), RUN_CHARS) + '"'


def _value_change(name: str, old: object, new: object) -> str:
    """``name: old -> new`` (``unset`` for a value that is not there)."""
    return f"{printable(name)}: {_value(old)} -> {_value(new)}"


def _value(value: object) -> str:
    return "unset" if value is None else shortened(printable(str(value)), VALUE_CHARS)


def _cached_sha(job: Job, record: CacheRecord, cache: ResultStore | None) -> str | None:
    """The sha256 a cached job's file will have: its record's, or for an API job with
    ``ops:`` the operated file's when that is cached too (None: made during the build)."""
    if not (isinstance(job, ApiJob) and job.ops):
        return record.blob
    if cache is None:  # pragma: no cover - a record comes from a cache
        return None
    made = cache.lookup(operated_delivery(job, record.original or record.blob))
    return made.blob if made is not None else None


def _maybe_stale(
    jobs: Iterable[Job], manifest: Manifest, signing: str | None, shas: Mapping[str, str | None]
) -> Iterator[CacheRequest]:
    """The requests of ``jobs`` (whose inputs are assessed: ``shas``) whose file the
    manifest does not record with their key: the ones :func:`assess` will look up."""
    for job in jobs:
        request = job_request(job, shas)
        if request is None:
            continue
        entry = manifest.entries.get(job.output_path)
        if entry is None or entry.cache_key != recorded_key(job, request, signing):
            yield request


class _Unchanged:
    """:meth:`OutputTree.matches` for every file of a plan, at one ``lstat`` a file.

    ``matches`` walks each path part by part through ``pathlib`` and stats the file twice
    (~40 us a file, seconds for 100,000 up-to-date jobs). Here a plain path (no empty,
    ``.`` or ``..`` part, not absolute) has each of its folders checked once to be a real
    folder, not a link, and its file ``lstat``-ed once: the same guarantee, as nothing on
    the way can be a link. Anything else (an odd path, a moved mtime that needs the hash,
    companions) goes to ``matches`` itself, so the answer is always the one it gives."""

    def __init__(self, tree: OutputTree):
        self._tree = tree
        self._root = str(tree.root)
        self._real: set[str] = set()

    def __call__(self, entry: ManifestEntry) -> bool:
        rel, sha = entry.path, entry.sha256
        if entry.companions or not _plain(rel):
            return self._tree.matches(entry)
        if sha is None or len(sha) != _SHA_HEX or not _SHA256.fullmatch(sha):
            return False
        folder = rel.rpartition("/")[0]
        if folder and folder not in self._real and not self._folders_real(folder):
            return self._tree.matches(entry)  # a link or a gap on the way: ask it
        try:
            info = os.lstat(f"{self._root}/{rel}")
        except (OSError, ValueError):
            return False
        if not stat.S_ISREG(info.st_mode) or info.st_size != entry.bytes:
            return False
        return info.st_mtime_ns == entry.mtime_ns or self._tree.matches(entry)

    def _folders_real(self, folder: str) -> bool:
        """Whether every folder on the way to ``folder`` is a real folder (each one is
        remembered, as :func:`~pipeline.fsutil.contained` remembers them)."""
        parts = folder.split("/")
        for depth in range(1, len(parts) + 1):
            here = "/".join(parts[:depth])
            if here in self._real:
                continue
            try:
                mode = os.lstat(f"{self._root}/{here}").st_mode
            except (OSError, ValueError):
                return False
            if not stat.S_ISDIR(mode):
                return False
            self._real.add(here)
        return True


_NOT_PLAIN = ("//", "/./", "/../")
_SHA_HEX = 64
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _plain(rel: str) -> bool:
    """A relative path of plain parts (what assetpipe writes), so that joining it to the
    root with a slash names the file :func:`~pipeline.fsutil.contained` would."""
    wrapped = f"/{rel}/"  # an empty, absolute or dotted part shows as one of these
    return "\x00" not in rel and not any(bad in wrapped for bad in _NOT_PLAIN)


def assess(
    plan: Plan,
    manifest: Manifest,
    cache: ResultStore | None,
    tree: OutputTree,
    pending: Mapping[str, str] | None = None,
    signing: str | None = None,
    *,
    fetch: bool = False,
) -> dict[str, JobState]:
    """The state of every job, in plan order (inputs are assessed before dependents).

    ``pending`` maps the cache keys of requests in open batches to their batch: such a
    job is ``pending`` (paid or about to be; the next ``build --batch`` collects it).
    ``signing`` is the fingerprint of the C2PA credentials re-encoded files are signed
    with (see :func:`recorded_key`). A store that can be asked about many requests at
    once (a far shared cache) is asked about every job that may not be up to date first,
    so that the lookups below cost no round trip each; ``fetch`` (a build that will
    restore what is cached) downloads those results at the same time."""
    if isinstance(cache, Prefetching):  # network clients make cycles: let them be collected
        return _assess(plan, manifest, cache, tree, pending or {}, signing, fetch=fetch)
    with no_collections():
        return _assess(plan, manifest, cache, tree, pending or {}, signing, fetch=fetch)


def _assess(
    plan: Plan,
    manifest: Manifest,
    cache: ResultStore | None,
    tree: OutputTree,
    pending: Mapping[str, str],
    signing: str | None,
    *,
    fetch: bool,
) -> dict[str, JobState]:
    """:func:`assess`, with collection paused."""
    prefetching = cache if isinstance(cache, Prefetching) else None
    states: dict[str, JobState] = {}
    shas: dict[str, str | None] = {}
    order: Sequence[Job] = plan.jobs
    starts: dict[int, list[Job]] = {}
    if prefetching is not None:
        order, starts = _waves(plan.jobs)
    entries = manifest.entries
    unchanged = _Unchanged(tree)
    request: CacheRequest | None = None
    for index, job in enumerate(order):
        if prefetching is not None and index in starts:  # a wave whose inputs are assessed
            prefetching.prefetch(_maybe_stale(starts[index], manifest, signing, shas), fetch=fetch)
        if cache is None:  # nothing to look up: the request's key is all a state needs
            asked = _request_key(job, shas)
            key = _recorded(job, asked, signing) if asked is not None else None
        else:
            request = job_request(job, shas)
            asked = request.key if request is not None else None
            key = recorded_key(job, request, signing) if request is not None else None
        entry: ManifestEntry | None = entries.get(job.output_path)
        make: Status = "generate" if job.is_api else "render"
        if key is None:
            state = JobState(make, None, None, "its inputs will change")
        elif entry and entry.cache_key == key and unchanged(entry):
            state = _new_state("up-to-date", key, entry.sha256, "unchanged", entry.checks)
        else:
            record = cache.lookup(request) if cache is not None and request else None
            if record is not None:
                state = JobState("cached", key, _cached_sha(job, record, cache), "in the cache")
            elif asked is not None and asked in pending and job.is_api:
                state = JobState("pending", key, None, f"in the open batch {pending[asked]}")
            elif entry and entry.cache_key == key:
                state = JobState(make, key, None, "file changed or missing; not cached")
            elif entry:
                state = JobState(make, key, None, what_changed(job, entry, shas))
            else:
                state = _new_state(make, key, None, "new", None)
        if job.kind == "pick":  # its bytes are known before it runs: the approved ones
            variant = states.get(job.picked_job)
            current = variant is not None and variant.cache_key == job.approved_key
            state = replace(
                state, sha256=job.approved, approval="current" if current else "changed"
            )
        states[job.id] = state
        shas[job.id] = state.sha256
    return states if not starts else {job.id: states[job.id] for job in plan.jobs}


def _waves(jobs: Sequence[Job]) -> tuple[list[Job], dict[int, list[Job]]]:
    """``jobs`` by waves: those that need no other job's image first, then those whose
    inputs are all in the waves before, and so on (plan order within a wave); and each
    wave by the index of its first job. A store that can be asked about many requests at
    once is asked about each wave's before it is assessed, as a dependent's request is
    known only once its inputs are (a pick goes after the variant it picked)."""
    depth: dict[str, int] = {}
    waves: list[list[Job]] = []
    for job in jobs:
        inputs = [*job.depends_on, *([job.picked_job] if isinstance(job, PinnedJob) else [])]
        wave = 1 + max((depth[i] for i in inputs if i in depth), default=-1)
        depth[job.id] = wave
        while len(waves) <= wave:
            waves.append([])
        waves[wave].append(job)
    order: list[Job] = []
    starts: dict[int, list[Job]] = {}
    for wave_jobs in waves:
        starts[len(order)] = wave_jobs
        order.extend(wave_jobs)
    return order, starts
