"""The next manifest: this build's entries merged with the last one's, and ``--prune``.

A build may run a selection (``--only``), so entries of jobs it did not run are carried
over; entries of files no job makes any more are kept and marked ``stale``, or with
``--prune`` their files are deleted, but only files the manifest says assetpipe wrote and
that are still exactly those files. The manifest can be edited by hand, so every path is
contained in the tree and only regular files are deleted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Set
from typing import Any

from pipeline.fsutil import UnsafePathError
from pipeline.output.entry import ManifestEntry
from pipeline.output.manifest import MANIFEST, Manifest
from pipeline.output.tree import OUTPUT_LOCK, OutputTree

log = logging.getLogger("assetpipe.build")


def next_entries(
    produced: Set[str],
    built: Iterable[ManifestEntry],
    previous: Manifest,
    tree: OutputTree,
    prune: bool,
    keep: Collection[str] = (),
) -> tuple[list[ManifestEntry], list[str]]:
    """The entries of the next manifest and the files pruned.

    ``produced`` is every output path of the full plan, ``built`` the entries of the jobs
    this build ran (they win over earlier ones). ``keep`` are the paths the exporters
    reserve (files, or folders): pruning never deletes there.
    """
    entries: dict[str, ManifestEntry] = {
        path: entry for path, entry in previous.entries.items() if path in produced
    }
    for entry in built:
        entries[entry.path] = entry
    pruned: list[str] = []
    for path, entry in previous.entries.items():
        if path in produced:
            continue
        if prune and entry.sha256:
            if _removable(tree, path, keep) and tree.matches(entry):
                pruned.extend(prune_entry(tree, entry, keep))
                continue
            log.warning("not pruning %s: it changed since assetpipe wrote it", path)
        if not prune:
            entries[path] = dataclasses.replace(entry, stale=True)
    return list(entries.values()), pruned


def prune_entry(tree: OutputTree, entry: ManifestEntry, keep: Collection[str] = ()) -> list[str]:
    """Delete the file of an entry that matches the tree, with its companions and kept
    original; returns what was deleted.

    A kept original must sit beside the file, as ``<stem>.original.<ext>``; anything else
    the manifest names is skipped with a warning.
    """
    path = entry.path
    targets = [c.path for c in entry.companions or ()]
    provenance = entry.provenance or {}
    kept = provenance.get("original_path")
    if kept is not None:
        if isinstance(kept, str) and kept.startswith(path.rsplit(".", 1)[0] + ".original."):
            targets.append(kept)
        else:
            log.warning("not pruning %r: it is not the kept original of %s", kept, path)
    targets.append(path)
    return [rel for rel in targets if _removable(tree, rel, keep) and tree.unlink(rel)]


def _removable(tree: OutputTree, rel: str, keep: Collection[str]) -> bool:
    """Whether ``--prune`` may delete ``rel``: inside the tree, through no link, and not
    one of assetpipe's own files there (the manifest, the lock, or a path an exporter
    reserves, such as the gallery's page and thumbnails)."""
    try:
        tree.path(rel)
    except (UnsafePathError, ValueError):
        log.warning("not pruning %r: it is not a path inside %s", rel, tree.root)
        return False
    folded = rel.casefold()
    kept = (k.casefold() for k in keep)
    if rel in (MANIFEST, OUTPUT_LOCK) or any(
        folded == k or folded.startswith(k + "/") for k in kept
    ):
        log.warning("not pruning %s: assetpipe keeps it", rel)
        return False
    return True


def totals(entries: Iterable[ManifestEntry], spent_usd: float | None) -> dict[str, Any]:
    """The manifest's ``totals``; ``spent_usd`` is this build's spend (None while it runs:
    a checkpoint leaves it out, and so does an unchanged build's rewrite)."""
    by_status: dict[str, int] = {}
    files = 0
    cost = 0.0
    for e in entries:
        by_status[e.status] = by_status.get(e.status, 0) + 1
        files += 1 if e.sha256 else 0
        cost += e.cost_usd
    out: dict[str, Any] = {"files": files, "by_status": by_status, "cost_usd": round(cost, 6)}
    if spent_usd is not None:  # (no elapsed time: an unchanged build leaves the file as it is)
        out["spent_this_build_usd"] = round(spent_usd, 6)
    return out


class CheckpointPace:
    """How often a running build rewrites the manifest: as often as the runner asks (every
    two seconds), unless writing it takes longer than a tenth of the time since the last
    write. A manifest of 100,000 entries is ~100 MB and takes seconds to write; rewritten
    every two seconds it would take the build's interpreter most of the time, and the
    build would grow with the square of its jobs. A killed build then loses at most a
    tenth of its time's worth of manifest (its images are in the cache either way)."""

    SHARE = 0.1

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._ended = float("-inf")
        self._took = 0.0

    def due(self) -> bool:
        """Whether a checkpoint now keeps the writes within their share of the time."""
        return self._clock() - self._ended >= self._took * (1 / self.SHARE - 1)

    @contextlib.contextmanager
    def timed(self) -> Iterator[None]:
        """Time one checkpoint's write."""
        started = self._clock()
        try:
            yield
        finally:
            self._ended = self._clock()
            self._took = self._ended - started
