"""The validated shapes of specs, brand kits and assets (frozen pydantic models).

Assets are validated *after* their strings are rendered (every string value may be a
template over the matrix values), so these models see final values. Unknown keys are
rejected everywhere; the loader turns pydantic's errors into ``file:line:col`` messages
with a did-you-mean.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

HEX_COLOR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
ASSET_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
MAX_ID_LENGTH = 128
MAX_VARIANTS = 16

Quality = Literal["low", "medium", "high", "xhigh", "max", "auto"]
Background = Literal["transparent", "opaque", "auto"]
OutputFormat = Literal["png", "webp", "jpeg"]
Moderation = Literal["low", "auto"]
Fidelity = Literal["high", "low"]


class Strict(BaseModel):
    """Frozen, and every unknown key is an error."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)


def normalize_hex(value: str) -> str:
    """``#abc`` and ``#aabbcc`` to ``#AABBCC``: one spelling, so prompts and keys agree."""
    digits = value[1:]
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return "#" + digits.upper()


class BrandKit(Strict):
    """A brand: name, named colors, voice and an optional logo usable as an edit input."""

    name: str
    colors: dict[str, str] = Field(default_factory=dict)
    style: str | None = None
    voice: str | None = None
    logo: str | None = None

    @field_validator("colors")
    @classmethod
    def _hex_colors(cls, colors: dict[str, str]) -> dict[str, str]:
        out = {}
        for name, value in colors.items():
            if not isinstance(value, str) or not HEX_COLOR.match(value):
                raise ValueError(
                    f"color '{name}' is {value!r}; write it as #RRGGBB or #RGB, e.g. \"#E4572E\""
                )
            out[name] = normalize_hex(value)
        return out


class GenerationSettings(Strict):
    """Settings that shape a request; in ``defaults:`` and on each asset."""

    model: str | None = None
    quality: Quality | None = None
    background: Background | None = None
    format: OutputFormat | None = None
    compression: Annotated[int, Field(ge=0, le=100)] | None = None
    moderation: Moderation | None = None
    input_fidelity: Fidelity | None = None

    @field_validator("format", mode="before")
    @classmethod
    def _jpg_alias(cls, value: object) -> object:
        return "jpeg" if value == "jpg" else value


class FileInput(Strict):
    """``{file: path}``: an image in the project, relative to the spec file."""

    file: str


class BrandInput(Strict):
    """``{brand: logo}``: the brand kit's logo."""

    brand: Literal["logo"]


EditInput = str | FileInput | BrandInput


class EditSpec(Strict):
    """Images to edit (asset ids, ``id#k``, files, the brand logo) and an optional mask."""

    images: Annotated[list[EditInput], Field(min_length=1)]
    mask: EditInput | None = None


class RenditionSpec(Strict):
    """A file derived locally from each delivered variant."""

    size: str
    fit: Literal["cover", "contain", "stretch"] = "cover"
    format: OutputFormat | None = None
    compression: Annotated[int, Field(ge=0, le=100)] | None = None

    @field_validator("format", mode="before")
    @classmethod
    def _jpg_alias(cls, value: object) -> object:
        return "jpeg" if value == "jpg" else value


class AssetSpec(GenerationSettings):
    """One asset after its matrix values are substituted: what to make and how."""

    id: str
    prompt: str | None = None
    template: str | None = None
    variants: Annotated[int, Field(ge=1, le=MAX_VARIANTS)] = 1
    size: str | None = None
    aspect: str | None = None
    edit: EditSpec | None = None
    renditions: list[RenditionSpec] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    keep_original: bool = False

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if len(value) > MAX_ID_LENGTH:
            raise ValueError(f"an id has at most {MAX_ID_LENGTH} characters, this has {len(value)}")
        if not ASSET_ID.match(value):
            raise ValueError(
                f"id {value!r} must be lower-case letters, digits, '.', '_' or '-', starting "
                "with a letter or digit (e.g. 'icon-sword-common')"
            )
        return value

    @model_validator(mode="after")
    def _one_source(self) -> AssetSpec:
        if (self.prompt is None) == (self.template is None):
            raise ValueError("give exactly one of 'prompt' (inline text) or 'template' (a file)")
        if self.size is not None and self.aspect is not None:
            raise ValueError("give 'size' (exact pixels) or 'aspect' (a ratio), not both")
        return self


ASSET_KEYS = frozenset(AssetSpec.model_fields) | {"matrix"}
MATRIX_KEYS = frozenset({"exclude", "include"})
SPEC_KEYS = frozenset({"brand", "defaults", "vars", "assets"})
