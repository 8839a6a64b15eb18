"""Writing a delivered file and inspecting it: quality checks, provenance, atlases.

Runs in a worker thread after the paid bytes are already in the cache: nothing here can
lose a result, and everything here can be recomputed from the cache on the next build.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline import checks, postprocess
from pipeline.gallery import write_thumbnail
from pipeline.hashing import sha256_bytes
from pipeline.jobs import ApiJob, Job, SheetJob
from pipeline.output import Companion, OutputTree
from pipeline.runner.inputs import InputReader
from pipeline.runner.outcome import Outcome, Status
from pipeline.sheets import SheetOptions, render_sheet
from pipeline.sizes import parse_size


@dataclass(frozen=True, slots=True)
class Stored:
    """A delivered file on disk and what inspecting it found."""

    mtime_ns: int
    sha256: str
    bytes: int
    checks: list[Mapping[str, Any]]
    phash: str | None
    provenance: dict[str, Any]
    companions: tuple[Companion, ...] | None = None
    width: int | None = None
    height: int | None = None

    def outcome(
        self, job: Job, status: Status, key: str, inputs: list[str], **fields: Any
    ) -> Outcome:
        """The outcome of a job whose file this is; ``fields`` describe the call (if any)."""
        return Outcome(
            job,
            status,
            cache_key=key,
            sha256=self.sha256,
            bytes=self.bytes,
            inputs=inputs,
            mtime_ns=self.mtime_ns,
            checks=self.checks,
            phash=self.phash,
            provenance=self.provenance,
            companions=self.companions,
            width=self.width,
            height=self.height,
            **fields,
        )


class Delivery:
    """Writes delivered files into the output tree and inspects them."""

    def __init__(
        self,
        output: OutputTree,
        jobs: Mapping[str, Job],
        embed_metadata: bool,
        placeholders: bool = False,
    ):
        self.output = output
        self.jobs = jobs
        self.embed_metadata = embed_metadata
        self.placeholders = placeholders
        """Images of a free provider (``preview``) are drawn placeholders: checking their
        colors against the brand would only report noise."""

    def store(
        self,
        job: Job,
        key: str,
        data: bytes,
        original: bytes | None,
        atlas: bytes | None,
        inherited: Sequence[Mapping[str, Any]] = (),
    ) -> Stored:
        """Write a delivered file, then inspect it: quality checks and provenance.

        ``original`` is what the API returned (None for local files such as renditions).
        A rendition takes its source's ``palette`` verdict from ``inherited`` (the
        source's checks): the colors are the source's, only smaller.
        """
        written = data
        if self.embed_metadata and job.format == "png":
            stamp = json.dumps({"job": job.id, "cache_key": key}, sort_keys=True)
            written = postprocess.with_png_text(data, "assetpipe", stamp)
        path = self.output.write(job.output_path, written)
        mtime, sha, size = path.stat().st_mtime_ns, sha256_bytes(written), len(written)
        image = postprocess.decode(written)  # once, for the checks, the hash and the thumbnail
        companions = None
        if atlas is not None and job.kind == "sheet":
            self.output.write(job.atlas_path, atlas)
            companions = (Companion(job.atlas_path, sha256_bytes(atlas)),)
        if job.kind == "sheet":
            info = postprocess.describe(image)
            write_thumbnail(self.output, sha, image, in_place=True)
            return Stored(
                mtime,
                sha,
                size,
                [],
                None,
                {"reencoded": True, "c2pa": False},
                companions,
                info.width,
                info.height,
            )
        source = self.jobs.get(job.parent) if job.kind == "rendition" else job
        transparent = source is not None and source.params.get("background") == "transparent"
        own_palette = not self.placeholders and job.kind != "rendition"
        found: list[Mapping[str, Any]] = [
            c.as_dict()
            for c in checks.run_checks(
                image,
                width=job.size[0],
                height=job.size[1],
                expect_alpha=transparent and job.format != "jpeg",
                palette=job.palette if own_palette else (),
            )
        ]
        if job.kind == "rendition":
            found += [dict(c) for c in inherited if c.get("name") == "palette"]
        reencoded = original is None or original != data
        provenance: dict[str, Any] = {
            "reencoded": reencoded,
            "c2pa": postprocess.has_c2pa(data),
            "c2pa_in_original": postprocess.has_c2pa(original) if original else None,
            "original_path": None,
        }
        if original is not None and reencoded and isinstance(job, ApiJob) and job.keep_original:
            fmt = postprocess.probe(original).format
            stem = job.output_path.rsplit(".", 1)[0]
            kept = f"{stem}.original.{'jpg' if fmt == 'jpeg' else fmt}"
            self.output.write(kept, original)
            provenance["original_path"] = kept
        phash = f"{checks.perceptual_hash(image):016x}"
        write_thumbnail(self.output, sha, image, in_place=True)  # last: it shrinks `image`
        return Stored(
            mtime_ns=mtime,
            sha256=sha,
            bytes=size,
            checks=found,
            phash=phash,
            provenance=provenance,
        )


def make_sheet(
    reader: InputReader, job: SheetJob, finished: Mapping[str, Outcome]
) -> tuple[bytes, bytes]:
    """Pack a sheet job's frames: the sheet image and its TexturePacker JSON."""
    frames = [
        (name, reader.delivered(finished[dep].job, finished[dep].sha256))
        for name, dep in zip(job.frames, job.depends_on, strict=True)
    ]
    size = job.params.get("frame_size")
    options = SheetOptions(
        padding=int(job.params["padding"]),
        power_of_two=bool(job.params["power_of_two"]),
        max_size=int(job.params["max_size"]),
        format=str(job.params["format"]),
        frame_size=parse_size(str(size)) if size else None,
    )
    return render_sheet(frames, options, job.output_path.rsplit("/", 1)[-1])
