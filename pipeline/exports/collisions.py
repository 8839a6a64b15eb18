"""No job writes where an exporter writes.

The exporters' paths come from ``assetpipe.yaml``, not from the specs, so a plan reused
from the plan cache is checked again against them on every run (a set lookup per file:
10,000 jobs take milliseconds, and the planner is not loaded for it).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

from pipeline.errors import Location, SpecError
from pipeline.exports.config import fold
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
    for job in jobs:
        for path in job_files(job):
            key = fold(path)
            clash = exact.get(key) or parents.get(key)
            clash = clash or next((exact[f] for f in _folders(path) if f in exact), None)
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


def _folders(path: str) -> Iterable[str]:
    """The folders of a path, case-folded: ``a/b/c.png`` -> ``a``, ``a/b``."""
    parts = fold(path).split("/")
    return ("/".join(parts[:i]) for i in range(1, len(parts)))


def _where(job: Job) -> Location:
    """Where a job comes from (its spec's ``file:line``)."""
    file, _, line = job.source.rpartition(":")
    return Location(file, int(line)) if line.isdigit() else Location(job.source)
