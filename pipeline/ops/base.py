"""What an image operation is: a name, a typed parameters model, a version, and a pure
function from one Pillow image to another.

An operation is found by its ``op:`` name in a spec, the way a kedro dataset is found by
its ``type:``: the parameters model checks everything else in the entry (unknown keys are
errors, every value is bounded), so a mistake is reported at its line before anything
is generated. The version enters the cache key of every file the operation touches: a
change to what an operation does is released with a new version, and exactly those
files are made again (from the cached API image, never a new paid call).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Final, Generic, Literal, TypeVar

from PIL import Image
from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer

from pipeline.errors import PipelineError

MAX_SIDE: Final = 8192
"""The largest side an operation may produce (the largest delivered side a spec may ask
for): a spec is untrusted, and ``pad: {size: 100000x100000}`` must be a spec error, not
a 40 GB allocation."""

SizeTuple = tuple[int, int]


class OpError(PipelineError):
    """An operation that cannot run on this image, or one a plan names that is not
    installed (or not at the version the plan was made with)."""


class OpParams(BaseModel):
    """The base of every operation's parameters: frozen, and every unknown key is an
    error (reported at its line, with the keys the operation takes)."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


P = TypeVar("P", bound=OpParams)


@dataclass(frozen=True, slots=True)
class OpContext:
    """What the plan knows about the image an operation will run on, offered to
    :meth:`Operation.planned` so a parameter may name it (``palette: brand``) and the
    plan still carries plain values: the colors, not a reference to them, enter the key,
    so a new brand color makes the file again and the runner needs no context."""

    palette: tuple[str, ...] = ()
    """The brand's colors (``#RRGGBB``), in the brand kit's order; empty without a brand."""


class Operation(ABC, Generic[P]):
    """One named, pure operation on an image.

    Subclasses set ``name``, ``Params`` (their :class:`OpParams` model), ``version`` and
    optionally ``expensive``, and implement :meth:`apply`. An operation that changes the
    image's size says how in :meth:`output_size`, so a plan knows the delivered size (and
    refuses one past :data:`MAX_SIDE`) before any pixel is made.
    """

    name: ClassVar[str]
    """The ``op:`` name in a spec: lower-case letters, digits and ``_``."""
    Params: ClassVar[type[OpParams]]
    """The parameters model; a spec entry's keys other than ``op`` are validated by it."""
    version: ClassVar[int] = 1
    """Bumped when what the operation makes changes: the files it touched are made again."""
    expensive: ClassVar[bool] = False
    """Whether its result is worth memoising by (input pixels, name, parameters, version),
    so it runs once per input however often the file around it is made."""
    sized_by_content: ClassVar[bool] = False
    """Whether the result's size depends on the pixels (``trim``): :meth:`output_size`
    then gives the largest it can be, and the result may be smaller on either side."""

    def planned(self, params: P, context: OpContext) -> P:
        """``params`` with what the plan knows filled in (``palette: brand`` becomes the
        brand's colors), so the plan carries every value the operation uses; raises
        ``ValueError`` when ``context`` lacks what they name. Unchanged unless overridden."""
        return params

    @abstractmethod
    def apply(self, image: Image.Image, params: P) -> Image.Image:
        """The operated image. Pure: ``image`` is not changed, and the same pixels and
        parameters always give the same pixels."""

    def output_size(self, size: SizeTuple, params: P) -> SizeTuple:
        """The size of the result for an input of ``size`` (unchanged unless overridden);
        raises :class:`OpError` when the operation cannot run on an image that size."""
        return size


def check_side(what: str, size: SizeTuple) -> SizeTuple:
    """``size`` when both sides are 1..:data:`MAX_SIDE`; an :class:`OpError` otherwise."""
    width, height = size
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise OpError(
            f"{what} would be {width}x{height}; an operation makes images from 1x1 to "
            f"{MAX_SIDE}x{MAX_SIDE}"
        )
    return size


def _parse_size(value: object) -> object:
    """``"64x32"`` (as everywhere in a spec) or ``[64, 32]`` to ``(64, 32)``, within
    :data:`MAX_SIDE`; anything else is left for pydantic to refuse."""
    if isinstance(value, str):
        width, sep, height = value.strip().lower().partition("x")
        if not sep or not width.strip().isdigit() or not height.strip().isdigit():
            raise ValueError(f"{value!r} is not a pixel size: write WxH, e.g. 256x256")
        value = (int(width), int(height))
    if isinstance(value, list | tuple) and len(value) == 2:
        width, height = value
        whole = all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        if whole and not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
            raise ValueError(f"each side is 1 to {MAX_SIDE} pixels, got {width}x{height}")
    return value


Size = Annotated[
    tuple[int, int],
    BeforeValidator(_parse_size),
    PlainSerializer(lambda v: f"{v[0]}x{v[1]}", return_type=str),
]
"""A pixel size, written ``WxH`` (kept that way in keys and the manifest)."""


def _parse_color(value: object) -> object:
    """``transparent``, ``#RGB``, ``#RRGGBB`` or ``#RRGGBBAA`` to ``#RRGGBBAA``."""
    if not isinstance(value, str):
        return value
    text = value.strip().lower()
    if text == "transparent":
        return "#00000000"
    digits = text.removeprefix("#")
    if not text.startswith("#") or len(digits) not in (3, 6, 8):
        raise ValueError(
            f"{value!r} is not a color: write transparent, #RGB, #RRGGBB or #RRGGBBAA "
            '(quoted in YAML, e.g. "#FFFFFF")'
        )
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    try:
        int(digits, 16)
    except ValueError:
        raise ValueError(f"{value!r} is not a hex color") from None
    return "#" + (digits + "ff" if len(digits) == 6 else digits).upper()


Color = Annotated[str, BeforeValidator(_parse_color)]
"""A fill color, kept as ``#RRGGBBAA`` (``transparent`` is ``#00000000``)."""


def rgba(color: str) -> tuple[int, int, int, int]:
    """A :data:`Color` as an RGBA tuple."""
    digits = color.removeprefix("#")
    r, g, b, a = (int(digits[i : i + 2], 16) for i in range(0, 8, 2))
    return r, g, b, a


def canvas(size: SizeTuple, color: str, like: Image.Image) -> Image.Image:
    """A new image of ``size`` filled with ``color``: RGB when the color is opaque and
    ``like`` has no alpha, RGBA otherwise (so opaque pixels stay opaque)."""
    fill = rgba(color)
    if fill[3] == 255 and like.mode == "RGB":
        return Image.new("RGB", size, fill[:3])
    return Image.new("RGBA", size, fill)


Anchor = Literal[
    "center",
    "top-left",
    "top",
    "top-right",
    "left",
    "right",
    "bottom-left",
    "bottom",
    "bottom-right",
]


def anchored(anchor: str, outer: SizeTuple, inner: SizeTuple) -> tuple[int, int]:
    """Where an ``inner``-sized box goes inside ``outer`` at ``anchor`` (its top left)."""
    free_w, free_h = outer[0] - inner[0], outer[1] - inner[1]
    x = 0 if "left" in anchor else free_w if "right" in anchor else free_w // 2
    y = 0 if "top" in anchor else free_h if "bottom" in anchor else free_h // 2
    return x, y


def dumped(params: OpParams) -> dict[str, Any]:
    """Parameters as a plan carries them: plain JSON values, every default filled in."""
    return params.model_dump(mode="json")
