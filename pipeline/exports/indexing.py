"""What every asset index lists, and the exporter class the four languages share.

An index lists every delivered file of the manifest (asset, variant, rendition, pick,
sheet) and every frame of every sheet, each under its id, with its path, size, format,
tags and sha256. Tags are not in the manifest: they come from the plan's job of the same
id. A frame's rectangle comes from the sheet's JSON atlas (whichever JSON format the sheet
writes), read through the output tree and checked against the sha256 the manifest
recorded for it, since both the atlas and the manifest are untrusted.

Each language module says only how its file is spelt (:meth:`IndexExporter.text`); the
items, their order and their names are decided here, once, so the four files list the
same things and the build checks the same names before anything is paid for.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import ClassVar

from pydantic import field_validator

from pipeline.exports.base import PROJECT, ExportError, ExportOptions, ExportPlan, path_problem
from pipeline.exports.identifiers import Case, frame_id, identifier
from pipeline.fsutil import UnsafePathError
from pipeline.hashing import sha256_bytes
from pipeline.jobs import Job, SheetJob
from pipeline.jobs.atlases import DEFAULT_ATLAS, AtlasLayoutError, layout_of
from pipeline.output import ManifestEntry

log = logging.getLogger("assetpipe.exports")


@dataclass(frozen=True, slots=True)
class Item:
    """One line of an index: a delivered file, or a frame of a sheet (``sheet`` set)."""

    id: str
    kind: str
    """The manifest's kind (``generate``, ``edit``, ``rendition``, ``sheet``, ``pick``),
    or ``frame``."""
    path: str
    """Output-relative, as in the manifest (a frame: its sheet's image)."""
    width: int
    height: int
    format: str
    tags: tuple[str, ...]
    sha256: str
    sheet: str | None = None
    """A frame's sheet id."""
    x: int = 0
    y: int = 0


@dataclass(frozen=True, slots=True)
class Named:
    """An item and its name in one language."""

    name: str
    item: Item


def plan_ids(jobs: Iterable[Job]) -> Iterator[tuple[str, str, Job]]:
    """Every id an index may list, from the plan alone (before anything is built): each
    job's, and each sheet frame's; with what to call it in a message, and the job that
    says where in the specs it comes from (a frame: its sheet)."""
    for job in jobs:
        yield job.id, job.id, job
        if isinstance(job, SheetJob):
            for frame in job.frames:
                yield frame_id(job.id, frame), f"frame '{frame}' of sheet {job.id}", job


def items(entries: Sequence[ManifestEntry], plan: ExportPlan) -> list[Item]:
    """Every delivered file of ``entries`` and every frame of their sheets, sorted by id."""
    jobs = {job.id: job for job in plan.plan.jobs}
    out: list[Item] = []
    for entry in entries:
        if entry.sha256 is None or entry.stale:
            continue
        job = jobs.get(entry.job)
        item = Item(
            id=entry.job,
            kind=entry.kind,
            path=entry.path,
            width=entry.width or 0,
            height=entry.height or 0,
            format=entry.format,
            tags=tuple(job.tags) if job is not None else (),
            sha256=entry.sha256,
        )
        out.append(item)
        if entry.kind == "sheet":
            out.extend(_frames(item, entry, job, jobs, plan))
    return sorted(out, key=lambda i: i.id)


def _frames(
    sheet: Item, entry: ManifestEntry, job: Job | None, jobs: Mapping[str, Job], plan: ExportPlan
) -> Iterator[Item]:
    """The frames of a delivered sheet, from its JSON atlas."""
    atlas = _atlas_path(entry, job)
    if atlas is None:
        log.warning(
            "sheet %s writes no JSON atlas (%s): its frames are not in the index",
            entry.job,
            ", ".join(JSON_ATLASES),
        )
        return
    recorded = {c.path: c.sha256 for c in entry.companions or ()}
    try:
        data = plan.tree.read(atlas)
        if atlas in recorded and sha256_bytes(data) != recorded[atlas]:
            raise AtlasLayoutError("it is not the file the build wrote")
        layout = layout_of(data)
    except (OSError, ValueError, UnsafePathError) as exc:
        raise ExportError(
            f"cannot read the frames of sheet {entry.job} from '{atlas}': {exc}; run "
            "assetpipe build to write the sheet and its atlas again"
        ) from None
    sources = {}
    if isinstance(job, SheetJob):
        sources = dict(zip(job.frames, job.depends_on, strict=False))
    for frame in layout.frames:
        source = jobs.get(sources.get(frame.name, ""))
        yield Item(
            id=frame_id(entry.job, frame.name),
            kind="frame",
            path=sheet.path,
            width=frame.w,
            height=frame.h,
            format=sheet.format,
            tags=tuple(source.tags) if source is not None else (),
            sha256=sheet.sha256,
            sheet=entry.job,
            x=frame.x,
            y=frame.y,
        )


JSON_ATLASES = (DEFAULT_ATLAS, "pixi", "texturepacker-array", "phaser")
"""The atlas formats a frame's rectangle can be read from, in the order they are tried
(a Godot ``.tres`` is not JSON: a sheet that writes only that is indexed without frames)."""


def _atlas_path(entry: ManifestEntry, job: Job | None) -> str | None:
    """The sheet's first JSON atlas: the plan says which companions it writes; without the
    job, the companion beside the sheet with its name and ``.json``."""
    if isinstance(job, SheetJob):
        written = dict(job.atlases)
        return next((written[name] for name in JSON_ATLASES if name in written), None)
    expected = str(PurePosixPath(entry.path).with_suffix(".json"))
    return next((c.path for c in entry.companions or () if c.path == expected), None)


class IndexOptions(ExportOptions):
    """Where the index goes: a path relative to the project folder, ending in the
    language's extension."""

    suffix: ClassVar[str] = ""
    path: str

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        problem = path_problem(value)
        if problem is None and not value.endswith(cls.suffix):
            problem = f"the file's name ends in {cls.suffix}"
        if problem is not None:
            raise ValueError(problem)
        return value


class IndexExporter:
    """An asset index in one language: the file at ``path`` in the project folder."""

    name: ClassVar[str] = ""
    Options: ClassVar[type[ExportOptions]] = IndexOptions
    root: ClassVar[str] = PROJECT
    """Game code reads the index from its own source tree, beside the code."""
    case: ClassVar[Case] = "camel"
    keywords: ClassVar[frozenset[str]] = frozenset()
    """Names the language (or the generated file) keeps: they get a trailing ``_``."""

    def __init__(self, options: IndexOptions) -> None:
        self.options = options

    def reserved(self) -> Sequence[str]:
        """The index file, relative to the project folder."""
        return (self.options.path,)

    def identifier(self, asset_id: str) -> str:
        """The name of ``asset_id`` in this file (:mod:`pipeline.exports.identifiers`)."""
        return identifier(asset_id, self.case, self.keywords)

    def render(self, entries: Sequence[ManifestEntry], plan: ExportPlan) -> Mapping[str, bytes]:
        """The index of ``entries``: sorted by id, nothing that changes between runs."""
        named: dict[str, Named] = {}
        for item in items(entries, plan):
            name = self.identifier(item.id)
            if name in named:
                raise ExportError(
                    f"the {self.name} export would name both {named[name].item.id} and "
                    f"{item.id} '{name}'; rename one of them in its spec"
                )
            named[name] = Named(name, item)
        return {self.options.path: self.text(list(named.values())).encode("utf-8")}

    def text(self, named: Sequence[Named]) -> str:
        """The file, for ``named`` (sorted by id)."""
        raise NotImplementedError
