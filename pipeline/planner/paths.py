"""One file, one job: the plan refuses two jobs that would write the same output file.

Job ids differ where paths need not: asset ``x`` with ``variants: 2`` writes ``x.v2.png``,
and so does an asset whose id is ``x.v2``; ``keep_original`` writes
``y.original.<ext>`` beside ``y.png``, as an asset ``y.original`` would; a sheet writes
``<id>.png`` and ``<id>.json``. On the case-insensitive file systems of macOS and
Windows ``Icons/a.png`` and ``icons/a.png`` are one file, so paths are compared
case-folded (and in one Unicode normal form). A file may not be a folder that another
job writes into either, nor one of the files assetpipe itself keeps in ``output/``, nor
lie where an exporter writes (the gallery's ``index.html`` and ``.gallery/``: those come
from the project's ``exports:`` and are checked by :mod:`pipeline.exports.collisions`).
The second build would overwrite the first job's file and both manifest entries would
claim it, so this is a spec error at plan time, naming both jobs and where each comes
from.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable, Sequence

from pipeline.errors import Location, SpecError
from pipeline.jobs import Job

KEPT_ORIGINAL_EXTENSIONS = ("png", "jpg", "webp")
"""A kept original is saved in the format the API answered with, known only after the
call: each of these is reserved."""
RESERVED = {
    "manifest.json": "the manifest",
}
"""Names in the output root that assetpipe writes itself whatever the project's exporters
(a collection is a folder there)."""


def written_paths(job: Job) -> list[str]:
    """Every file ``job`` may write, relative to the output root."""
    paths = [job.output_path]
    if job.kind == "sheet":
        paths.extend(path for _, path in job.atlases)
    if job.kind in ("generate", "edit") and job.keep_original:
        stem = job.output_path.rsplit(".", 1)[0]
        paths.extend(f"{stem}.original.{ext}" for ext in KEPT_ORIGINAL_EXTENSIONS)
    return paths


def fold(path: str) -> str:
    """The form in which two paths name one file on any file system we write to."""
    return unicodedata.normalize("NFC", path).casefold()


def output_path_errors(jobs: Sequence[Job], where: Callable[[Job], Location]) -> list[SpecError]:
    """A SpecError for each file two jobs would write, each folder that is also a file,
    and each collection named after a file assetpipe keeps; ``where`` locates a job's
    spec."""
    owners: dict[str, tuple[str, Job]] = {}
    errors: list[SpecError] = []
    pairs: set[tuple[str, ...]] = set()  # one error per pair of assets, not per file
    for job in jobs:
        for path in written_paths(job):
            key = fold(path)
            first = owners.get(key)
            if first is None:
                owners[key] = (path, job)
                continue
            pair = (first[1].collection, first[1].asset, job.collection, job.asset)
            if first[1] is not job and pair not in pairs:
                pairs.add(pair)
                errors.append(_collision(first, (path, job), where))
    reported: set[str] = set()
    seen_parents: set[str] = set()
    for key, (path, job) in owners.items():
        # Every file of one folder has the same folders: the first of them says it all.
        parent = key.rpartition("/")[0]
        if parent in seen_parents:
            continue
        seen_parents.add(parent)
        for folder in _folders(path):
            if folder in reported:
                continue
            if folder in owners:
                reported.add(folder)
                errors.append(_file_is_folder(owners[folder], (path, job), where))
            elif folder in RESERVED:
                reported.add(folder)
                errors.append(
                    SpecError(
                        f"the collection '{job.collection}' would write into "
                        f"'{path.split('/')[0]}', where assetpipe keeps {RESERVED[folder]}",
                        where(job),
                        "rename the spec file (its path names the collection)",
                    )
                )
    return errors


def _folders(path: str) -> Iterable[str]:
    """The folders of a path, case-folded: ``a/b/c.png`` -> ``a``, ``a/b``."""
    parts = fold(path).split("/")
    return ("/".join(parts[:i]) for i in range(1, len(parts)))


def _collision(
    first: tuple[str, Job], second: tuple[str, Job], where: Callable[[Job], Location]
) -> SpecError:
    (path_a, a), (path_b, b) = first, second
    if path_a != path_b:
        what = f"'{path_a}' and '{path_b}', one file where case does not count"
        hint = (
            "macOS and Windows do not tell these names apart; rename one of the spec "
            "files or assets so that they differ in more than case"
        )
    else:
        what = f"'{path_a}'"
        hint = (
            "give one of the assets (or sheets) another id: variant k of an asset writes "
            "<id>.v<k>, keep_original writes <id>.original.<ext>, and a sheet writes "
            "<id>.png and <id>.json"
        )
    return SpecError(
        f"two jobs write {what}: {a.id} (from {a.source}) and {b.id} (from {b.source})",
        where(b),
        hint,
    )


def _file_is_folder(
    file: tuple[str, Job], inner: tuple[str, Job], where: Callable[[Job], Location]
) -> SpecError:
    (path_a, a), (path_b, b) = file, inner
    return SpecError(
        f"{a.id} (from {a.source}) writes the file '{path_a}', but {b.id} (from {b.source}) "
        f"writes '{path_b}' into a folder of that name",
        where(a),
        "rename the spec file or the asset so that no file is named like a collection's folder",
    )
