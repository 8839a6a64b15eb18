"""No job writes where an exporter writes, and no two ids share a name in an index.

The exporters' paths come from ``assetpipe.yaml``, not from the specs, so a plan reused
from the plan cache is checked again against them on every run (a set lookup per file:
10,000 jobs take milliseconds, and the planner is not loaded for it). So are the names
the asset indexes give ids (:mod:`pipeline.exports.identifiers`): the rule is lossy, and
two ids with one name would be one entry in game code, found only once paid for.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

from pipeline.errors import Location, SpecError, shortened
from pipeline.exports.base import Names
from pipeline.exports.config import ConfiguredExport, fold
from pipeline.exports.indexing import plan_ids
from pipeline.jobs import Job

KEPT_ORIGINAL_EXTENSIONS = ("png", "jpg", "webp")


def job_files(job: Job) -> Iterator[str]:
    """Every file ``job`` may write: the same list as the planner's own check of jobs
    against each other (``pipeline.planner.paths.written_paths``, held equal by a test)."""
    yield job.output_path
    if job.kind == "sheet":
        yield from (path for _, path in job.atlases)
    if job.kind in ("generate", "edit") and job.keep_original:
        stem = job.output_path.rsplit(".", 1)[0]
        yield from (f"{stem}.original.{ext}" for ext in KEPT_ORIGINAL_EXTENSIONS)


def reserved_path_errors(jobs: Sequence[Job], reserved: Mapping[str, str]) -> list[SpecError]:
    """A SpecError for each job that would write where an exporter writes: on one of its
    files, inside one of its folders, or a file named like a folder it writes into.
    ``reserved`` maps each output-relative path to what keeps it ("the gallery export")."""
    exact = {fold(path): what for path, what in reserved.items()}
    parents = {folder: what for path, what in reserved.items() for folder in _folders(path)}
    errors: list[SpecError] = []
    # What an exporter holds among a file's folders depends only on the folder it is in,
    # which most files share (a collection's): looked up once per folder.
    inside: dict[str, str | None] = {}
    for job in jobs:
        for path in job_files(job):
            key = fold(path)
            clash = exact.get(key) or parents.get(key)
            if not clash:
                parent = key.rpartition("/")[0]
                if parent in inside:
                    clash = inside[parent]
                else:
                    clash = inside[parent] = next(
                        (exact[f] for f in _folders(path) if f in exact), None
                    )
            if clash is not None:
                errors.append(
                    SpecError(
                        f"{job.id} (from {job.source}) would write '{path}', where {clash} writes",
                        _where(job),
                        "rename the spec file or the asset, or give the export another path "
                        "in assetpipe.yaml",
                    )
                )
                break
    return errors


def identifier_errors(jobs: Sequence[Job], exports: Sequence[ConfiguredExport]) -> list[SpecError]:
    """A SpecError for each pair of ids an index exporter would give one name, naming
    both at their spec lines and the name in each export where they meet."""
    namers = [(e.format, e.make()) for e in exports]
    if not any(isinstance(exporter, Names) for _, exporter in namers):
        return []  # no index names anything: nothing to compare (and no ids to list)
    ids = sorted(plan_ids(jobs), key=lambda found: found[0])
    clashes: dict[tuple[str, str], list[str]] = {}
    where: dict[str, tuple[str, Job]] = {}
    for fmt, exporter in namers:
        if not isinstance(exporter, Names):
            continue
        seen: dict[str, str] = {}
        for asset_id, label, job in ids:
            where.setdefault(label, (asset_id, job))
            name = exporter.identifier(asset_id)
            first = seen.setdefault(name, label)
            if first != label:
                said = f"'{shortened(name)}' ({fmt})"
                clashes.setdefault((first, label), []).append(said)
    return [
        SpecError(
            f"{first} (from {where[first][1].source}) and {second} (from "
            f"{where[second][1].source}) would have one name in the asset index: "
            + ", ".join(names),
            _where(where[second][1]),
            "rename one of them: names keep only the letters and digits of an id "
            "(docs/exports.md, the naming rule)",
        )
        for (first, second), names in clashes.items()
    ]


def _folders(path: str) -> Iterable[str]:
    """The folders of a path, case-folded: ``a/b/c.png`` -> ``a``, ``a/b``."""
    parts = fold(path).split("/")
    return ("/".join(parts[:i]) for i in range(1, len(parts)))


def _where(job: Job) -> Location:
    """Where a job comes from (its spec's ``file:line``)."""
    file, _, line = job.source.rpartition(":")
    return Location(file, int(line)) if line.isdigit() else Location(job.source)
