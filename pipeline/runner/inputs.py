"""The image bytes a job consumes: edit inputs, masks, and a rendition's source.

An edit must send exactly the bytes its parent delivered (the cache key is built from
their sha256), so bytes come from the cache by hash and fall back to the output file
only after checking that file still hashes the same. Project files are re-hashed at
send time: a file edited after planning must not be sent under the old key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import assert_never

from pipeline import postprocess
from pipeline.errors import printable
from pipeline.fsutil import read_open
from pipeline.hashing import sha256_bytes
from pipeline.jobs import (
    ApiJob,
    ImageInput,
    ImageRequest,
    InputRef,
    Job,
    PinnedJob,
    ProviderFailure,
    RenditionJob,
    SheetJob,
)
from pipeline.output import OutputTree
from pipeline.runner.outcome import Outcome
from pipeline.store import ResultStore

MIME = {"png": "image/png", "webp": "image/webp", "jpeg": "image/jpeg"}
MAX_INPUT_BYTES = 50 * 1000 * 1000
"""The largest image the API takes as an edit input."""


class ApprovedImageMissing(Exception):
    """A picked asset's approved bytes are gone (cache and file): never regenerated
    silently, the job fails with what to do."""


def input_shas(job: Job, shas: Mapping[str, str | None]) -> list[str]:
    """The sha256 of each input image (and the mask), as recorded in the manifest."""
    match job:
        case RenditionJob():
            return [s for s in (shas.get(job.parent),) if s]
        case SheetJob():
            return []  # its frames are named in the atlas, and hashed into its key
        case PinnedJob():
            return [job.approved]
        case ApiJob():
            refs = [*job.inputs, *((job.mask,) if job.mask is not None else ())]
            return [(r.sha256 if r.job is None else shas.get(r.job)) or "" for r in refs]
        case _:  # pragma: no cover - mypy proves every kind is handled
            assert_never(job)


@dataclass(frozen=True, slots=True)
class InputReader:
    """Reads input bytes from the cache, the output tree and the project."""

    cache: ResultStore
    output: OutputTree
    project_root: Path

    def delivered(self, job: Job, sha: str | None) -> bytes:
        """The delivered bytes of a finished job: from the cache, else its output file."""
        if sha:
            data = self.cache.read_blob(sha)
            if data is not None:
                return data
        data = self.output.read(job.output_path)
        if sha and sha256_bytes(data) != sha:
            raise RuntimeError(f"{job.output_path} changed during the build")
        return data

    def approved(self, job: PinnedJob) -> bytes:
        """The approved image of a picked asset, by its sha256: from the cache, else from
        the picked variant's file when that still holds those exact bytes."""
        data = self.cache.read_blob(job.approved)
        if data is not None:
            return data
        if job.picked_path is not None and self.output.exists(job.picked_path):
            data = self.output.read(job.picked_path)
            if sha256_bytes(data) == job.approved:
                return data
        raise ApprovedImageMissing(
            f"the approved image of {job.id} (variant {job.picked}, sha256 "
            f"{job.approved[:12]}) is in neither the cache nor the output folder; restore "
            f"the cache (or output/), or pick again: assetpipe pick {job.id}#K"
        )

    def request(self, job: ApiJob, finished: Mapping[str, Outcome]) -> ImageRequest:
        """The provider request of an API job whose inputs have all finished."""
        images = tuple(self._image(ref, i, finished) for i, ref in enumerate(job.inputs))
        mask = self._image(job.mask, len(images), finished) if job.mask is not None else None
        markup = (
            self._image(job.markup, len(images) + 1, finished) if job.markup is not None else None
        )
        return ImageRequest(
            endpoint="edit" if job.kind == "edit" else "generate",
            model=job.model,
            prompt=job.prompt,
            params=job.params,
            images=images,
            mask=mask,
            markup=markup,
            label=job.asset + (f" #{job.variant}" if job.variant > 1 else ""),
            palette=job.palette,
        )

    def _image(self, ref: InputRef, index: int, finished: Mapping[str, Outcome]) -> ImageInput:
        if ref.job is not None:
            parent = finished[ref.job]
            data = self.delivered(parent.job, parent.sha256)
            fmt = parent.job.format
            name = f"input{index}.{'jpg' if fmt == 'jpeg' else fmt}"
        else:
            data = read_project_image(self.project_root, str(ref.path))
            if sha256_bytes(data) != ref.sha256:
                raise ProviderFailure(
                    "invalid_request", f"{ref.path} changed since the plan was made; build again"
                )
            fmt = postprocess.probe(data).format
            name = Path(str(ref.path)).name
        return ImageInput(filename=name, data=data, mime=MIME.get(fmt, "image/png"))


def read_project_image(root: Path, relative: str) -> bytes:
    """The bytes of the project file ``relative``, read only as a planner would have read
    it: a relative path without ``..`` that stays inside ``root`` once links are resolved,
    a regular file (never a FIFO or a device, whose read never ends), at most the API's
    50 MB. Whatever named the file (a spec, or a stored plan someone planted), nothing
    outside the project is ever sent to the provider. Anything else fails the job before
    a request is made."""
    parts = Path(relative).parts
    path = root / relative
    try:
        if not parts or Path(relative).is_absolute() or ".." in parts:
            raise OSError("not a path inside the project")
        real_root = root.resolve()
        if not path.resolve().is_relative_to(real_root):
            raise OSError("it leads outside the project")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            return read_open(fd, MAX_INPUT_BYTES, relative)
        finally:
            os.close(fd)
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise ProviderFailure(
            "invalid_request", f"the edit input {printable(relative)!r} cannot be read: {why}"
        ) from None
