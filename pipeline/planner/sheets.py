"""Sprite-sheet jobs: a local job that packs a group of a collection's delivered images.

A sheet depends on every frame it packs, so it is rebuilt exactly when one of them
changes; its cache key is its options plus each frame's name and content hash.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

from pipeline.errors import SpecError
from pipeline.jobs import Job, ParamValue, SheetJob, frame_name
from pipeline.sizes import parse_size
from pipeline.spec.loader import Collection
from pipeline.spec.yamlsource import locate

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
        if sheet.frame_size is not None:
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
            params["frame_size"] = sheet.frame_size
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
                atlas_path=f"{base}.json",
                frames=tuple(frame_name(j) for j in chosen),
            )
        )
    return out
