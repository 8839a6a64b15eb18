"""The validated shapes of specs, brand kits and assets (frozen pydantic models).

Assets are validated *after* their strings are rendered (every string value may be a
template over the matrix values), so these models see final values. Unknown keys are
rejected everywhere; the loader turns pydantic's errors into ``file:line:col`` messages
with a did-you-mean. The geometry of a sprite sheet (where its frames go) is here too,
below both the planner, which checks that a sheet's frames fit, and the sheet builder.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from pipeline.packing import SheetBin

# fullmatch, not ``$``: ``$`` also matches before a final newline, so "hero\n" passed.
HEX_COLOR = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
ASSET_ID = re.compile(r"[a-z0-9][a-z0-9._-]*")
MAX_ID_LENGTH = 128
MAX_VARIANTS = 16

QUALITY = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


def _quality_word(value: str) -> str:
    """A quality is a word; which words a model takes is its provider's table's to say
    (checked when the asset is planned), so a plugin's model may have qualities of its own."""
    if not QUALITY.fullmatch(value):
        raise spec_error(
            f"quality {value!r} is not a quality name",
            hint="write a word such as low, medium or high (the model's table lists its own)",
        )
    return value


Quality = Annotated[str, AfterValidator(_quality_word)]
Background = Literal["transparent", "opaque", "auto"]
Transparency = Literal["auto", "native", "chroma"]
"""How ``background: transparent`` is made: by the API (``native``), by asking for a
flat key color and keying it out locally (``chroma``), or natively where the model can
and by chroma key where it cannot or the API refuses (``auto``, the default)."""


def _jpg_alias(value: object) -> object:
    """``jpg`` is what people write; ``jpeg`` is what the API takes."""
    return "jpeg" if value == "jpg" else value


OutputFormat = Annotated[Literal["png", "webp", "jpeg", "svg", "gif"], BeforeValidator(_jpg_alias)]
"""``svg`` is a vector drawing (sanitized, drawn locally for checks and renditions);
``gif`` an animation of ``frames`` images, each also delivered as a PNG."""
MAX_GIF_FRAMES = 16
Moderation = Literal["low", "auto"]
Fidelity = Literal["high", "low"]
Complexity = Literal["low", "medium", "high"]
"""How much the model plans the image, apart from how finely it renders it (``quality``)."""


class Strict(BaseModel):
    """Frozen, and every unknown key is an error."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)


SPEC_ERROR = "spec"
"""The pydantic error type of :func:`spec_error`; the loader shows its message as written."""


def spec_error(message: str, *, at: str | None = None, hint: str | None = None) -> Exception:
    """A validation error written for the user, optionally about one key of the model.

    ``at`` names the key the error is about (a model-level rule such as "not both 'size'
    and 'aspect'" is about the second key, not the whole asset), and ``hint`` says what
    would be right; the loader turns both into ``file:line:col`` and the hint line.
    """
    context: dict[str, str] = {}
    if at is not None:
        context["at"] = at
    if hint is not None:
        context["hint"] = hint
    return PydanticCustomError(SPEC_ERROR, message, context)


def normalize_hex(value: str) -> str:
    """``#abc`` and ``#aabbcc`` to ``#AABBCC``: one spelling, so prompts and keys agree."""
    digits = value[1:]
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return "#" + digits.upper()


def _hex_color(value: str) -> str:
    """Check and normalize one brand color (a per-color validator, so errors name the color)."""
    if not HEX_COLOR.fullmatch(value):
        raise spec_error(
            f"{value!r} is not a hex color",
            hint='write it as #RRGGBB or #RGB, quoted in YAML, e.g. "#E4572E"',
        )
    return normalize_hex(value)


def _not_a_comment(value: object) -> object:
    """``primary: #3366FF`` unquoted is a YAML comment and leaves no value: say so."""
    if value is None:
        raise spec_error(
            "this color has no value: in YAML an unquoted # starts a comment, so the color "
            "after it was read as one",
            hint='quote it: "#3366FF"',
        )
    return value


HexColor = Annotated[str, BeforeValidator(_not_a_comment), AfterValidator(_hex_color)]


class BrandKit(Strict):
    """A brand: name, named colors, voice and an optional logo usable as an edit input."""

    name: str
    colors: dict[str, HexColor] = Field(default_factory=dict)
    style: str | None = None
    voice: str | None = None
    logo: str | None = None


class GenerationSettings(Strict):
    """Settings that shape a request; in ``defaults:`` and on each asset."""

    model: str | None = None
    quality: Quality | None = None
    background: Background | None = None
    transparency: Transparency | None = None
    format: OutputFormat | None = None
    compression: Annotated[int, Field(ge=0, le=100)] | None = None
    moderation: Moderation | None = None
    input_fidelity: Fidelity | None = None
    complexity: Complexity | None = None
    frames: Annotated[int, Field(ge=2, le=MAX_GIF_FRAMES)] | None = None
    """How many frames a ``format: gif`` animation has (2-16)."""
    frame_ms: Annotated[int, Field(ge=10, le=655_350)] | None = None
    """How long each frame of a ``format: gif`` animation shows, in milliseconds."""
    options: dict[str, Any] | None = None
    """Settings the provider declares (its options model checks them when the asset is
    planned); an asset's own keys win over those in ``defaults:``."""


class FileInput(Strict):
    """``{file: path}``: an image in the project, relative to the spec file."""

    file: str


class BrandInput(Strict):
    """``{brand: logo}``: the brand kit's logo."""

    brand: Literal["logo"]


EditInput = str | FileInput | BrandInput


class EditSpec(Strict):
    """Images to edit (asset ids, ``id#k``, files, the brand logo), an optional mask, and
    an optional markup: a drawn-over copy of the first image (a project file) that guides
    the edit."""

    images: Annotated[list[EditInput], Field(min_length=1)]
    mask: EditInput | None = None
    markup: FileInput | None = None


MAX_OPS = 32
"""Image operations in one ``ops:`` list."""


def _op_entry(value: object) -> object:
    """One ``ops:`` item is ``{op: NAME, ...parameters}``; the operation's own model checks
    the parameters when the asset is planned (operations may come from plugins)."""
    if not isinstance(value, dict) or not isinstance(value.get("op"), str):
        raise spec_error(
            "an operation is a mapping with 'op: NAME' and its parameters",
            hint="e.g. - {op: flip, direction: horizontal}",
        )
    return value


OpEntry = Annotated[dict[str, Any], BeforeValidator(_op_entry)]
Ops = Annotated[list[OpEntry], Field(max_length=MAX_OPS)]


class RenditionSpec(Strict):
    """A file derived locally from each delivered variant."""

    size: str
    fit: Literal["cover", "contain", "stretch"] = "cover"
    format: OutputFormat | None = None
    compression: Annotated[int, Field(ge=0, le=100)] | None = None
    ops: Ops = Field(default_factory=list)
    """Image operations applied after the fit, in order."""


class Expect(Strict):
    """What a delivered image must show (``shows``: a rubric a vision model scores) and the
    exact copy it must carry (``text``: read offline by OCR), and the score to pass."""

    shows: Annotated[str, Field(min_length=1, max_length=2000)] | None = None
    text: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    min_score: Annotated[float, Field(ge=0, le=1)] = 0.7

    @model_validator(mode="after")
    def _something(self) -> Expect:
        if self.shows is None and self.text is None:
            raise spec_error(
                "expect says nothing to check",
                hint='add shows: "what the image must show" or text: "EXACT COPY"',
            )
        return self


class AssetSpec(GenerationSettings):
    """One asset after its matrix values are substituted: what to make and how."""

    id: str
    prompt: str | None = None
    template: str | None = None
    variants: Annotated[int, Field(ge=1, le=MAX_VARIANTS)] = 1
    size: str | None = None
    aspect: str | None = None
    edit: EditSpec | None = None
    brand: str | None = None
    """A brand kit file of this asset's own (relative to the spec file), over the spec's
    ``brand:``; templated like every value, so a matrix variable can pick the brand."""
    reference: str | Annotated[list[str], Field(min_length=1, max_length=16)] | None = None
    """Assets whose approved (picked, else first) image goes with the request as a
    reference, so a character stays the same across a set: an edit without writing one."""
    renditions: list[RenditionSpec] = Field(default_factory=list)
    ops: Ops = Field(default_factory=list)
    """Image operations applied to each delivered variant (after it is cut to ``size``,
    before its renditions), in order."""
    tags: list[str] = Field(default_factory=list)
    keep_original: bool = False
    expect: Expect | None = None
    """What the quality gate checks on each delivered variant (docs/quality.md)."""

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if len(value) > MAX_ID_LENGTH:
            raise spec_error(
                f"the id has {len(value)} characters; an id has at most {MAX_ID_LENGTH}",
                hint="shorten it (over a matrix, use short values or fewer variables in the id)",
            )
        if not ASSET_ID.fullmatch(value):
            raise spec_error(
                f"id {value!r} is not a valid asset id",
                hint="use lower-case letters, digits, '.', '_' or '-', starting with a letter "
                f"or digit, e.g. '{suggest_id(value)}'",
            )
        return value

    @property
    def is_edit(self) -> bool:
        """Whether the request reads input images (``edit:`` or ``reference:``)."""
        return self.edit is not None or self.reference is not None

    def input_images(self) -> list[tuple[EditInput, tuple[str | int, ...]]]:
        """Every input image, with where the spec names it: ``edit.images`` first, then
        ``reference``."""
        out: list[tuple[EditInput, tuple[str | int, ...]]] = []
        if self.edit is not None:
            out.extend((ref, ("edit", "images", i)) for i, ref in enumerate(self.edit.images))
        if isinstance(self.reference, str):
            out.append((self.reference, ("reference",)))
        elif self.reference is not None:
            out.extend((ref, ("reference", i)) for i, ref in enumerate(self.reference))
        return out

    @model_validator(mode="after")
    def _one_source(self) -> AssetSpec:
        if self.prompt is not None and self.template is not None:
            raise spec_error(
                "an asset has 'prompt' or 'template', not both",
                at="template",
                hint="keep 'prompt' for inline text, or 'template' for a file in templates/",
            )
        if self.prompt is None and self.template is None:
            raise spec_error(
                "the asset has neither 'prompt' nor 'template'",
                hint='add prompt: "..." (inline text) or template: name.j2 (a file in templates/)',
            )
        if self.size is not None and self.aspect is not None:
            raise spec_error(
                "an asset has 'size' or 'aspect', not both",
                at="aspect",
                hint='keep size: WxH for exact pixels, or aspect: "W:H" for a ratio at the '
                "model's natural scale",
            )
        return self


class AssetDefaults(GenerationSettings):
    """``defaults:`` of a spec: every asset setting but what makes an asset itself (``id``,
    ``prompt``/``template``, ``matrix``, ``edit``, ``reference``, ``vars``). An asset's own
    value wins; ``size`` and ``aspect`` count as one setting (an asset with either takes
    neither default)."""

    size: str | None = None
    aspect: str | None = None
    variants: Annotated[int, Field(ge=1, le=MAX_VARIANTS)] | None = None
    renditions: list[RenditionSpec] | None = None
    ops: Ops | None = None
    tags: list[str] | None = None
    keep_original: bool | None = None
    expect: Expect | None = None

    @model_validator(mode="after")
    def _one_size(self) -> AssetDefaults:
        if self.size is not None and self.aspect is not None:
            raise spec_error(
                "defaults have 'size' or 'aspect', not both",
                at="aspect",
                hint="keep one; an asset may still set the other for itself",
            )
        return self

    def fill(self, data: dict[str, Any]) -> dict[str, Any]:
        """``data`` (an asset's values) with the defaults it does not set itself."""
        out = dict(data)
        if "size" not in out and "aspect" not in out:
            if self.size is not None:
                out["size"] = self.size
            elif self.aspect is not None:
                out["aspect"] = self.aspect
        for name in ("variants", "tags", "keep_original", "ops"):
            value = getattr(self, name)
            if name not in out and value is not None:
                out[name] = value
        if "renditions" not in out and self.renditions is not None:
            out["renditions"] = [r.model_dump(exclude_none=True) for r in self.renditions]
        if "expect" not in out and self.expect is not None:
            out["expect"] = self.expect.model_dump(exclude_none=True)
        return out


NOT_DEFAULTS = frozenset(
    {"id", "prompt", "template", "matrix", "edit", "reference", "vars", "brand"}
)
"""Asset keys ``defaults:`` refuses: they say what an asset is, not how it is made."""


def suggest_id(value: str) -> str:
    """A valid id close to an invalid one, for the hint: ``Hero One!`` -> ``hero-one``."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", value.lower()).strip("-._")[:MAX_ID_LENGTH]
    return slug or "icon-sword-common"


ASSET_KEYS = frozenset(AssetSpec.model_fields) | {"matrix", "vars"}
"""Keys an asset may have: its settings, ``matrix`` and its own template ``vars``."""
MATRIX_KEYS = frozenset({"exclude", "include"})


ANIMATION_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
GODOT_DIR = re.compile(
    r"res://(?:[A-Za-z0-9_-][A-Za-z0-9._-]*(?:/[A-Za-z0-9_-][A-Za-z0-9._-]*)*/?)?"
)
MAX_FPS = 240


class SheetAnimation(Strict):
    """A sheet played as one animation: every frame, in the sheet's frame order, at ``fps``
    (each atlas format writes it the way its engine plays it)."""

    fps: Annotated[int, Field(ge=1, le=MAX_FPS)]
    loop: bool = True
    name: str | None = None
    """The animation's name in the atlases; the sheet's id when not given."""

    @field_validator("fps", mode="before")
    @classmethod
    def _whole_fps(cls, value: object) -> object:
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_FPS:
            raise spec_error(
                f"fps must be a whole number of frames per second, 1-{MAX_FPS}; got {value!r}",
                hint="e.g. fps: 12",
            )
        return value

    @field_validator("name")
    @classmethod
    def _name_shape(cls, value: str | None) -> str | None:
        if value is not None and not ANIMATION_NAME.fullmatch(value):
            raise spec_error(
                f"animation name {value[:80]!r} must be letters, digits, '.', '_' or '-' "
                "(at most 64)",
                hint="e.g. name: walk",
            )
        return value


class SheetSpec(Strict):
    """A sprite sheet (texture atlas) packed from a group of this collection's assets."""

    id: str
    assets: list[str] = Field(default_factory=list)
    """Globs over asset ids (``icon-*``); with ``tags``, an asset matching either is in."""
    tags: list[str] = Field(default_factory=list)
    variants: Literal["first", "all"] = "first"
    frame_size: str | None = None
    padding: Annotated[int, Field(ge=0, le=64)] = 2
    power_of_two: bool = False
    max_size: Annotated[int, Field(ge=16, le=16383)] = 4096
    format: Literal["png", "webp"] = "png"
    atlas: list[str] = Field(default_factory=lambda: ["texturepacker-hash"])
    """The atlas formats written beside the sheet (the planner checks the names)."""
    animation: SheetAnimation | None = None
    godot_dir: str | None = None
    """The ``res://`` folder of the sheet's image in a Godot project (the ``godot`` atlas);
    without it, the resource names the image beside it."""

    @field_validator("godot_dir")
    @classmethod
    def _godot_dir_shape(cls, value: str | None) -> str | None:
        if value is not None and not GODOT_DIR.fullmatch(value):
            raise spec_error(
                f"godot_dir {value[:80]!r} must be a res:// folder of plain names",
                hint="e.g. godot_dir: res://sprites/icons",
            )
        return value

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not ASSET_ID.fullmatch(value) or len(value) > MAX_ID_LENGTH:
            raise spec_error(
                f"sheet id {value!r} must be lower-case letters, digits, '.', '_' or '-'",
                at="id",
                hint="e.g. id: icons-atlas",
            )
        return value

    @model_validator(mode="after")
    def _some_selection(self) -> SheetSpec:
        if not self.assets and not self.tags:
            raise spec_error(
                "a sheet needs 'assets' (id globs) or 'tags' to choose its frames",
                hint='e.g. assets: ["icon-*"] or tags: [icons]',
            )
        return self

    @property
    def bin(self) -> SheetBin:
        """The sheet its frames must fit."""
        return SheetBin(self.padding, self.power_of_two, self.max_size)


SPEC_KEYS = frozenset({"brand", "defaults", "vars", "assets", "sheets"})
