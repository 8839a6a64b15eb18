"""Sprite-sheet jobs: a local job that packs a group of a collection's delivered images.

A sheet depends on every frame it packs, so it is rebuilt exactly when one of them
changes (an animated GIF asset gives its frames, in order); its cache key is its
options plus each frame's name and content hash. Its
frames are in the order the collection's jobs are: the spec's assets in the order it
lists them, each asset's variants in turn (an animation plays them in that order). Its
atlases are written in the formats its spec names (``atlas:``); a list other than the
default, an ``animation`` and a ``godot_dir`` enter its options (each changes an
atlas's bytes), so the default sheet's key is the one it always was. Whether
its frames fit its ``max_size`` is known from their sizes alone, so that is checked
here, with the build's own packer, before any frame is paid for.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

from pipeline.errors import SpecError, did_you_mean
from pipeline.jobs import Job, ParamValue, SheetJob, frame_name
from pipeline.jobs.atlases import (
    ATLAS_FORMATS,
    DEFAULT_ATLAS,
    AtlasAnimation,
    atlas_files,
    atlas_params,
)
from pipeline.packing import FrameSize, SheetCapacity, sheet_capacity
from pipeline.sizes import parse_size
from pipeline.spec.loader import Collection
from pipeline.spec.models import SheetSpec
from pipeline.spec.yamlsource import YMap, locate

EXTENSIONS = {"png": "png", "webp": "webp"}


def sheet_jobs(coll: Collection, jobs: Sequence[Job], provider: str) -> list[SheetJob]:
    """One job per ``sheets:`` entry of ``coll``, over the API jobs it selects."""
    out: list[SheetJob] = []
    asset_ids = {job.asset for job in jobs}
    for sheet, tree in coll.sheets:
        if sheet.id in asset_ids:
            raise SpecError(
                f"sheet id '{sheet.id}' is also an asset id in '{coll.name}'",
                locate(tree, ["id"]) or tree.location,
                "give the sheet its own id, e.g. icons-atlas",
            )
        picked = {job.asset for job in jobs if job.kind == "pick"}
        chosen = [
            job
            for job in jobs
            if (
                (job.is_api and sheet.variants == "all")
                or (job.is_api and job.variant == 1 and job.asset not in picked)
                or (job.kind == "pick" and sheet.variants != "all")
            )
            and (
                any(fnmatch.fnmatchcase(job.asset, glob) for glob in sheet.assets)
                or bool(set(sheet.tags) & set(job.tags))
            )
        ]
        chosen = _gif_frames(chosen, jobs)
        if not chosen:
            where = locate(tree, ["assets" if sheet.assets else "tags"]) or tree.location
            known = ", ".join(sorted(asset_ids)[:8]) or "none"
            raise SpecError(
                f"sheet '{sheet.id}' selects no asset",
                where,
                f"asset ids in '{coll.name}': {known}",
            )
        params: dict[str, ParamValue] = {
            "padding": sheet.padding,
            "power_of_two": int(sheet.power_of_two),
            "max_size": sheet.max_size,
            "format": sheet.format,
        }
        frame = _frame_size(sheet, tree)
        if sheet.frame_size is not None:
            params["frame_size"] = sheet.frame_size
        atlases = _atlas_formats(sheet, tree)
        if atlases != (DEFAULT_ATLAS,):
            params["atlas"] = ",".join(atlases)
        params |= _atlas_options(sheet, tree, atlases)
        _check_capacity(sheet, tree, chosen, frame)
        base = f"{coll.name}/{sheet.id}"
        out.append(
            SheetJob(
                id=base,
                collection=coll.name,
                asset=sheet.id,
                variant=1,
                provider=provider,
                params=params,
                size=(0, 0),
                output_path=f"{base}.{EXTENSIONS[sheet.format]}",
                source=f"{tree.location.file}:{tree.location.line}",
                depends_on=tuple(job.id for job in chosen),
                atlases=atlas_files(base, atlases, animated=sheet.animation is not None),
                frames=tuple(frame_name(j) for j in chosen),
            )
        )
    return out


def _gif_frames(chosen: Sequence[Job], jobs: Sequence[Job]) -> list[Job]:
    """``chosen`` with each animated (GIF) image replaced by its frames, in order: a sheet
    that selects an animation packs the PNG of each frame, and plays them as it."""
    frames: dict[str, list[Job]] = {}
    for job in jobs:
        if job.kind == "rendition" and job.op.frame is not None:
            frames.setdefault(job.parent, []).append(job)
    out: list[Job] = []
    for job in chosen:
        out.extend(frames.get(job.id, [job]) if job.format == "gif" else [job])
    return out


def _atlas_formats(sheet: SheetSpec, tree: YMap) -> tuple[str, ...]:
    """The sheet's atlas formats, each known and named once."""
    if not sheet.atlas:
        raise SpecError(
            f"sheet '{sheet.id}' names no atlas format",
            locate(tree, ["atlas"]) or tree.location,
            f"e.g. atlas: [{DEFAULT_ATLAS}]",
        )
    seen: list[str] = []
    for index, name in enumerate(sheet.atlas):
        where = locate(tree, ["atlas", index]) or tree.location
        if name not in ATLAS_FORMATS:
            hint = did_you_mean(name, ATLAS_FORMATS)
            known = f"known formats: {', '.join(sorted(ATLAS_FORMATS))}"
            raise SpecError(
                f"unknown atlas format {name[:60]!r}", where, f"{hint}; {known}" if hint else known
            )
        if name in seen:
            raise SpecError(f"atlas format '{name}' is named twice", where, "name it once")
        seen.append(name)
    return tuple(seen)


def _atlas_options(sheet: SheetSpec, tree: YMap, atlases: Sequence[str]) -> dict[str, ParamValue]:
    """The sheet's animation and Godot folder, as parameters (in its key: they change
    the atlases' bytes). An animation is named after the sheet unless it says otherwise."""
    if sheet.godot_dir is not None and "godot" not in atlases:
        raise SpecError(
            f"sheet '{sheet.id}' sets godot_dir but writes no godot atlas",
            locate(tree, ["godot_dir"]) or tree.location,
            "add godot to atlas:, or drop godot_dir",
        )
    anim = sheet.animation
    animation = AtlasAnimation(anim.name or sheet.id, anim.fps, anim.loop) if anim else None
    return dict(atlas_params(animation, sheet.godot_dir))


def _frame_size(sheet: SheetSpec, tree: YMap) -> tuple[int, int] | None:
    """The sheet's ``frame_size`` in pixels; None when each frame keeps its own size."""
    if sheet.frame_size is None:
        return None
    try:
        frame = parse_size(sheet.frame_size)
    except ValueError:  # "²x²" passes str.isdigit() but not int()
        frame = None
    if frame is None:
        raise SpecError(
            f"frame_size '{sheet.frame_size}' is not a pixel size",
            locate(tree, ["frame_size"]) or tree.location,
            "write WxH, e.g. 64x64",
        )
    return frame


def _check_capacity(
    sheet: SheetSpec, tree: YMap, chosen: Sequence[Job], frame: tuple[int, int] | None
) -> None:
    """Refuse a sheet whose frames cannot all fit its ``max_size``, saying how many do
    and what would make them all fit. The build packs the frames at their delivered size
    (or ``frame_size``) with this same packer, so it answers now, before the frames are
    paid for, what the build would find after."""
    sizes: list[FrameSize] = [(frame_name(job), *(frame or job.size)) for job in chosen]
    room = sheet_capacity(sizes, sheet.bin)
    if room is None:
        return
    side = sheet.bin.side
    power = ", power_of_two" if sheet.power_of_two else ""
    fitting = f"only {room.fitting} of them" if room.fitting else "none of them"
    raise SpecError(
        f"sheet '{sheet.id}' cannot hold its {len(sizes)} frames of {_frames_shape(sizes)} "
        f"(padding {sheet.padding}): a {side}x{side} sheet (max_size {sheet.max_size}{power}) "
        f"fits {fitting}",
        tree.location,
        _capacity_hint(room, len(sizes)),
    )


def _capacity_hint(room: SheetCapacity, frames: int) -> str:
    """The changes that would fit every frame: each found by packing, so each works."""
    ways = []
    if room.max_size is not None:
        ways.append(f"raise max_size ({room.max_size} holds all {frames})")
    if room.frame_size is not None:
        w, h = room.frame_size
        ways.append(f"set a smaller frame_size ({w}x{h} holds all {frames})")
    if room.fitting:
        ways.append(f"select at most {room.fitting} frame{'s' if room.fitting > 1 else ''}")
    else:
        ways.append("split the frames over several sheets")
    if len(ways) < 3:
        return " or ".join(ways)
    return ", ".join(ways[:-1]) + f", or {ways[-1]}"


def _frames_shape(sizes: Sequence[FrameSize]) -> str:
    """``512x512`` when every frame has that size, else ``up to WxH``."""
    shapes = {(w, h) for _, w, h in sizes}
    width, height = max(w for w, _ in shapes), max(h for _, h in shapes)
    return f"{width}x{height}" if len(shapes) == 1 else f"up to {width}x{height}"
