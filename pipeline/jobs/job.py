"""The nodes of a plan: one record type per kind of job, joined in the :data:`Job` union.

A plan mixes three different things: paid calls (``generate``/``edit``,
:class:`ApiJob`), local derivations of one delivered image (:class:`RenditionJob`) and
packs of several (:class:`SheetJob`). Each kind carries only what it has, so nothing has
to invent a value (a sheet has no model) and a reader narrows by ``kind`` or
``isinstance`` before touching a kind's own fields; mypy holds every module to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from pipeline.jobs.provider import ParamValue

JobKind = Literal["generate", "edit", "rendition", "sheet", "pick"]
Fit = Literal["cover", "contain", "stretch"]


@dataclass(frozen=True, slots=True)
class InputRef:
    """An input image of an edit: another job's delivered file, or a file in the project."""

    job: str | None = None
    path: str | None = None
    sha256: str | None = None
    width: int = 0
    height: int = 0
    format: str = ""
    bytes: int | None = None
    """Known for project files; None for another job's output (made during the build)."""


@dataclass(frozen=True, slots=True)
class OpCall:
    """One image operation as a plan carries it (``ops:`` of an asset or a rendition):
    the registered name, the parameters as its model validated them (every default
    filled in, plain JSON values) and the operation's version.

    All three enter the cache key of what the operation touches, so new parameters, or
    a new version of the operation's code, make that file again (never a paid image)."""

    name: str
    params: Mapping[str, Any]
    version: int

    def as_dict(self) -> dict[str, Any]:
        """The call as hashed into a key and recorded in the manifest."""
        return {"op": self.name, "params": dict(self.params), "version": self.version}


@dataclass(frozen=True, slots=True)
class ChromaRoute:
    """A transparent background made here instead of by the API: the request asks for
    the subject on the flat ``key`` color (``prompt`` says so, ``params`` ask for an
    opaque background) and ``ops`` key it out (``chroma_key`` first, then the asset's)."""

    key: str
    """The key color, ``#RRGGBB``."""
    prompt: str
    params: Mapping[str, ParamValue]
    ops: tuple[OpCall, ...]


@dataclass(frozen=True, slots=True)
class RenditionOp:
    """How a rendition derives from its source image: fitted to its size, then ``ops``."""

    width: int
    height: int
    fit: Fit
    format: str
    compression: int | None
    ops: tuple[OpCall, ...] = ()
    frame: int | None = None
    """The frame (1-based) of an animated source this file is; None: the whole image."""

    def as_dict(self) -> dict[str, ParamValue]:
        """The operation as hashed into the rendition's cache key (``frame`` only when
        set, so the keys of other renditions stay what they were)."""
        out: dict[str, ParamValue] = {
            "width": self.width,
            "height": self.height,
            "fit": self.fit,
            "format": self.format,
        }
        if self.compression is not None:
            out["compression"] = self.compression
        if self.frame is not None:
            out["frame"] = self.frame
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class JobBase:
    """What every job has: a stable id, a place in the spec, one delivered file, and the
    jobs it waits for.

    ``cache_key`` is None while it depends on bytes not produced yet (an edit of another
    asset, a rendition, a sheet); the runner computes it once those inputs exist.
    """

    id: str
    collection: str
    asset: str
    variant: int
    output_path: str
    source: str
    """``file:line`` of the spec entry the job comes from."""
    size: tuple[int, int]
    """The delivered size in pixels; (0, 0) where only packing decides it (a sheet)."""
    depends_on: tuple[str, ...] = ()
    cache_key: str | None = None
    tags: tuple[str, ...] = ()
    estimated_cost_usd: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiJob(JobBase):
    """A paid call: an image generated from a prompt, or an edit of input images."""

    kind: Literal["generate", "edit"]
    model: str
    provider: str
    prompt: str
    endpoint: str
    """The provider's name for the call (``images/generations``), as its request format
    words it; hashed into the cache key with the parameters."""
    params: Mapping[str, ParamValue]
    """The request parameters exactly as they go on the wire (and into the cache key)."""
    requested_size: tuple[int, int]
    inputs: tuple[InputRef, ...] = ()
    mask: InputRef | None = None
    markup: InputRef | None = None
    """A drawn-over copy of the first image that guides an edit (always a project file,
    so its sha256 is known when the plan is made)."""
    palette: tuple[str, ...] = ()
    """The brand's colors, for the palette check and the preview provider's drawing."""
    keep_original: bool = False
    ops: tuple[OpCall, ...] = ()
    """Operations applied to the delivered image after it is fitted to ``size`` (and
    before renditions); the API's image and its key do not depend on them."""
    chroma_key: str | None = None
    """The key color when this request is the chroma route to a transparent background
    (the manifest records it); None when the API makes the background itself."""
    fallback: ChromaRoute | None = None
    """The chroma route to take once if the API refuses ``background: transparent``
    (``transparency: auto`` on a model that claims it); None: no fallback."""

    @property
    def is_api(self) -> bool:
        """Whether running this job is a paid provider call (always, for this kind)."""
        return True

    @property
    def transparent(self) -> bool:
        """Whether the delivered file should have a transparent background."""
        return self.chroma_key is not None or self.params.get("background") == "transparent"

    def on_chroma(self) -> ApiJob:
        """This job asking for its :attr:`fallback` request instead: a request of its
        own, so its key is computed afresh from it (never borrowed from this one)."""
        route = self.fallback
        if route is None:
            return self
        return replace(
            self,
            prompt=route.prompt,
            params=route.params,
            ops=route.ops,
            chroma_key=route.key,
            fallback=None,
            cache_key=None,
        )

    @property
    def format(self) -> str:
        """The delivered file format."""
        return str(self.params.get("output_format", "png"))


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalJob(JobBase):
    """A job made here from files already delivered: no provider is asked for anything."""

    @property
    def requested_size(self) -> tuple[int, int]:
        """Nothing is requested from a provider: the delivered size."""
        return self.size

    @property
    def is_api(self) -> bool:
        """Never a paid call."""
        return False


@dataclass(frozen=True, slots=True, kw_only=True)
class RenditionJob(LocalJob):
    """A resized (and maybe re-encoded) copy of one API job's delivered image.

    It keeps its source's model, provider, prompt and palette so the manifest and the
    gallery describe it without looking the source up, and the checks know the brand.
    """

    kind: Literal["rendition"] = "rendition"
    op: RenditionOp
    model: str
    provider: str
    prompt: str
    palette: tuple[str, ...] = ()

    @property
    def parent(self) -> str:
        """The id of the job whose image this one resizes."""
        return self.depends_on[0]

    @property
    def params(self) -> Mapping[str, ParamValue]:
        """The operation, as the manifest records it."""
        return self.op.as_dict()

    @property
    def format(self) -> str:
        """The delivered file format."""
        return self.op.format


@dataclass(frozen=True, slots=True, kw_only=True)
class SheetJob(LocalJob):
    """A sprite sheet: the delivered images of ``depends_on`` packed into one image plus
    its atlases beside it (TexturePacker "hash" JSON unless the spec names others)."""

    kind: Literal["sheet"] = "sheet"
    provider: str
    """The provider of the frames: a sheet of preview images is a preview sheet."""
    params: Mapping[str, ParamValue]
    """The packing options (padding, power_of_two, max_size, format, frame_size), and the
    atlas options that change an atlas's bytes (formats, animation, Godot folder) when
    they are not the default (:mod:`pipeline.jobs.atlases.options`)."""
    atlases: tuple[tuple[str, str], ...]
    """Each file the sheet's atlas formats write: ``(format, path)``; a format may write
    two (Phaser's atlas and its animation)."""
    frames: tuple[str, ...]
    """The atlas name of each frame, in the order of ``depends_on``."""

    @property
    def format(self) -> str:
        """The delivered file format."""
        return str(self.params["format"])


@dataclass(frozen=True, slots=True, kw_only=True)
class PinnedJob(LocalJob):
    """An asset's approved image (``assetpipe.lock``) at the asset's own path.

    It delivers the exact bytes that were picked, by their sha256, from the cache (or the
    picked variant's file), whatever the spec asks for now: approved art is never
    regenerated by accident. Renditions, sheets and edits that use the asset read it.
    """

    kind: Literal["pick"] = "pick"
    approved: str
    """The sha256 of the picked image."""
    approved_key: str
    """The cache key of the request that made it (compared with the variant's key today)."""
    picked: int
    """The variant that was picked."""
    picked_job: str
    """That variant's job id now (it may no longer exist: then only the pin is left)."""
    picked_path: str | None = None
    """That variant's output file, another place the approved bytes may still be."""
    format: str
    model: str
    provider: str
    prompt: str
    params: Mapping[str, ParamValue]
    palette: tuple[str, ...] = ()


Job = ApiJob | RenditionJob | SheetJob | PinnedJob
"""One node of the plan; narrow by ``kind`` (or ``isinstance``) to reach a kind's fields."""
