"""SVG from the API: untrusted markup reduced to drawing, and drawn with resvg.

An SVG is a program as much as a picture: it can carry scripts, event handlers, links
that a browser follows, ``foreignObject`` HTML, external images and style sheets, and
entity definitions that expand a few kilobytes into gigabytes. A delivered icon is
opened in browsers, design tools and game editors, so what the API returned is never
delivered as it is. :func:`sanitize` bounds the bytes before parsing, parses with
``defusedxml`` (no DTD, no entities, no external references: a billion-laughs body is
refused, not expanded), bounds the element count and depth, and keeps only an allowlist
of drawing elements and attributes whose references stay inside the document
(``#fragment``). What it took out is returned, so the build says it once.

:func:`rasterize` draws the sanitized markup with resvg, which never fetches anything
(no ``resources_dir`` is given, and no href outside the document survives sanitizing)
and uses no system fonts, so the same SVG gives the same pixels on every machine.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from dataclasses import dataclass
from typing import Final
from xml.etree import ElementTree as StdET

import defusedxml.ElementTree as SafeET  # type: ignore[import-untyped]
import resvg_py
from defusedxml import DefusedXmlException
from PIL import Image

from pipeline.errors import PipelineError

SVG_NS: Final = "http://www.w3.org/2000/svg"
XLINK_NS: Final = "http://www.w3.org/1999/xlink"
XML_NS: Final = "http://www.w3.org/XML/1998/namespace"

MAX_SVG_BYTES: Final = 4 * 1024 * 1024
"""Largest SVG parsed (4 MiB): an icon or logo is tens of kilobytes."""
MAX_ELEMENTS: Final = 20_000
"""Most elements an SVG may have."""
MAX_DEPTH: Final = 48
"""Deepest nesting an SVG may have."""
MAX_RASTER_PIXELS: Final = 4096 * 4096
"""Largest raster an SVG is drawn at (the same bound as an API image)."""

ELEMENTS: Final = frozenset(
    {
        "svg", "g", "defs", "symbol", "use", "title", "desc", "metadata", "switch",
        "path", "rect", "circle", "ellipse", "line", "polyline", "polygon",
        "text", "tspan", "textPath",
        "linearGradient", "radialGradient", "stop", "pattern", "clipPath", "mask", "marker",
        "filter", "feBlend", "feColorMatrix", "feComponentTransfer", "feComposite",
        "feFlood", "feGaussianBlur", "feMerge", "feMergeNode", "feMorphology", "feOffset",
        "feDropShadow", "feFuncR", "feFuncG", "feFuncB", "feFuncA", "feTurbulence",
        "style",
    }
)  # fmt: skip
"""The drawing elements kept; everything else (``script``, ``foreignObject``, ``image``,
``a``, animation elements, other namespaces) is removed with its content."""

ATTRIBUTES: Final = frozenset(
    {
        "id", "class", "style", "transform", "viewBox", "preserveAspectRatio", "width",
        "height", "x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "rx", "ry", "fx", "fy",
        "fr", "d", "points", "pathLength", "fill", "fill-opacity", "fill-rule", "stroke",
        "stroke-width", "stroke-opacity", "stroke-linecap", "stroke-linejoin",
        "stroke-miterlimit", "stroke-dasharray", "stroke-dashoffset", "opacity", "color",
        "display", "visibility", "overflow", "clip-path", "clip-rule", "clipPathUnits",
        "mask", "maskUnits", "maskContentUnits", "filter", "filterUnits", "primitiveUnits",
        "gradientUnits", "gradientTransform", "spreadMethod", "offset", "stop-color",
        "stop-opacity", "patternUnits", "patternContentUnits", "patternTransform",
        "marker-start", "marker-mid", "marker-end", "markerWidth", "markerHeight",
        "markerUnits", "refX", "refY", "orient", "font-family", "font-size", "font-weight",
        "font-style", "text-anchor", "dominant-baseline", "letter-spacing", "dx", "dy",
        "rotate", "textLength", "lengthAdjust", "startOffset", "in", "in2", "result",
        "stdDeviation", "mode", "operator", "k1", "k2", "k3", "k4", "type", "values",
        "tableValues", "slope", "intercept", "amplitude", "exponent", "flood-color",
        "flood-opacity", "radius", "baseFrequency", "numOctaves", "seed", "stitchTiles",
        "href", "mix-blend-mode", "isolation", "shape-rendering", "vector-effect",
        "color-interpolation-filters", "paint-order", "version",
    }
)  # fmt: skip
"""The attributes kept (no ``on*`` handler is among them)."""

_URL = re.compile(r"url\(\s*(['\"]?)(.*?)\1\s*\)", re.IGNORECASE | re.DOTALL)
_DANGEROUS = re.compile(r"javascript:|vbscript:|data:|@import|expression\s*\(", re.IGNORECASE)
_LENGTH = re.compile(r"\s*([0-9]*\.?[0-9]+)\s*(px)?\s*")


class SvgError(PipelineError):
    """An SVG that is refused whole: too large, not XML, entity definitions, too deep."""


@dataclass(frozen=True, slots=True)
class Sanitized:
    """A sanitized SVG and what was taken out of it (``"script x1"``, one per kind)."""

    data: bytes
    removed: tuple[str, ...]

    @property
    def note(self) -> str | None:
        """The one sentence the build says about what was removed (None: nothing was)."""
        if not self.removed:
            return None
        return "the SVG was sanitized; removed: " + ", ".join(self.removed)


def is_svg(data: bytes) -> bool:
    """Whether ``data`` looks like SVG markup (it starts as XML and names an ``<svg``);
    a sniff that decides which decoder to use, never whether it is safe."""
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"<") and b"<svg" in head.lower()


def sanitize(data: bytes, size: tuple[int, int] | None = None) -> Sanitized:
    """``data`` reduced to the allowlist, its root sized ``size`` (with a ``viewBox``, so
    it scales) when given; :class:`SvgError` when it must be refused whole."""
    if len(data) > MAX_SVG_BYTES:
        raise SvgError(
            f"the SVG is {len(data):,} bytes; assetpipe parses at most {MAX_SVG_BYTES:,}"
        )
    try:
        root = SafeET.fromstring(data, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise SvgError(
            f"the SVG declares a DTD or entities ({type(exc).__name__}); refused unparsed"
        ) from None
    except (StdET.ParseError, ValueError) as exc:
        raise SvgError(f"the SVG is not well-formed XML: {exc}") from None
    if root.tag != f"{{{SVG_NS}}}svg":
        raise SvgError(f"the document's root is {_local(root.tag)!r}, not an SVG <svg>")
    _check_shape(root)
    removed: Counter[str] = Counter()
    _clean(root, removed)
    if size is not None:
        _size_root(root, size)
    StdET.register_namespace("", SVG_NS)
    StdET.register_namespace("xlink", XLINK_NS)
    out = StdET.tostring(root, encoding="utf-8", xml_declaration=False)
    return Sanitized(out, tuple(f"{what} x{n}" for what, n in sorted(removed.items())))


def deliver_svg(data: bytes, size: tuple[int, int], notes: list[str]) -> tuple[bytes, Image.Image]:
    """The delivered file of an API SVG: sanitized and sized ``size``, with its pixels as
    resvg draws them (which also proves it draws); what was removed is added to ``notes``."""
    clean = sanitize(data, size)
    pixels = rasterize(clean.data)
    if clean.note is not None:
        notes.append(clean.note)
    return clean.data, pixels


def intrinsic_size(data: bytes) -> tuple[int, int]:
    """The pixel size a sanitized SVG declares (its root's ``width``/``height``, else its
    ``viewBox``); :class:`SvgError` when it declares none."""
    root = _parse_bounded(data)
    width, height = _length(root.get("width")), _length(root.get("height"))
    if width is None or height is None:
        box = _view_box(root.get("viewBox"))
        if box is None:
            raise SvgError("the SVG declares no width, height or viewBox")
        width, height = box
    w, h = max(1, round(width)), max(1, round(height))
    if w * h > MAX_RASTER_PIXELS:
        raise SvgError(f"the SVG declares {w}x{h} pixels, more than assetpipe draws")
    return w, h


def rasterize(data: bytes, width: int | None = None) -> Image.Image:
    """The SVG drawn by resvg as RGBA pixels, at its own size or ``width`` pixels wide
    (the height follows its ratio). ``data`` must be sanitized already."""
    w, h = intrinsic_size(data)
    if width is not None and width != w:
        h, w = max(1, round(h * width / w)), width
    if w * h > MAX_RASTER_PIXELS:
        raise SvgError(f"drawing the SVG at {w}x{h} pixels is more than assetpipe draws")
    try:
        png = resvg_py.svg_to_bytes(
            svg_string=data.decode("utf-8"), width=w, skip_system_fonts=True
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise SvgError(f"resvg cannot draw the SVG: {exc}") from None
    image = Image.open(io.BytesIO(bytes(png)), formats=["PNG"])
    image.load()
    rgba = image.convert("RGBA")
    rgba.format = "SVG"  # what the pixels were drawn from
    return rgba


def _parse_bounded(data: bytes) -> StdET.Element:
    if len(data) > MAX_SVG_BYTES:
        raise SvgError(
            f"the SVG is {len(data):,} bytes; assetpipe parses at most {MAX_SVG_BYTES:,}"
        )
    try:
        root: StdET.Element = SafeET.fromstring(data, forbid_dtd=True)
    except (DefusedXmlException, StdET.ParseError, ValueError) as exc:
        raise SvgError(f"the SVG cannot be read: {exc}") from None
    return root


def _check_shape(root: StdET.Element) -> None:
    """Refuse an SVG with too many elements or too deep a nesting."""
    count = 0
    stack = [(root, 1)]
    while stack:
        element, depth = stack.pop()
        count += 1
        if count > MAX_ELEMENTS:
            raise SvgError(f"the SVG has more than {MAX_ELEMENTS:,} elements")
        if depth > MAX_DEPTH:
            raise SvgError(f"the SVG nests deeper than {MAX_DEPTH} elements")
        stack.extend((child, depth + 1) for child in element)


def _clean(element: StdET.Element, removed: Counter[str]) -> None:
    """Strip ``element``'s disallowed attributes and children, in place."""
    for name in list(element.attrib):
        reason = _attribute_problem(name, element.attrib[name])
        if reason is not None:
            del element.attrib[name]
            removed[reason] += 1
    for child in list(element):
        tag = str(child.tag)  # the parser keeps no comments or processing instructions
        local = _local(tag)
        if not tag.startswith(f"{{{SVG_NS}}}") or local not in ELEMENTS:
            element.remove(child)
            removed[f"<{local}>"] += 1
            continue
        if local == "style" and not _safe_css(child.text or ""):
            element.remove(child)
            removed["<style> with @import or url()"] += 1
            continue
        _clean(child, removed)


def _attribute_problem(name: str, value: str) -> str | None:
    """Why the attribute must go (a word for the note), or None to keep it."""
    namespace, local = name[1:].split("}", 1) if name.startswith("{") else ("", name)
    if local.lower().startswith("on"):
        return "event handler attribute"
    if (namespace == XLINK_NS and local == "href") or (not namespace and local == "href"):
        return None if value.strip().startswith("#") else "external href"
    if namespace == XML_NS and local == "space":
        return None
    if namespace or local not in ATTRIBUTES:
        return f"attribute {local}"
    if not _safe_css(value):
        return "external or script reference"
    return None


def _safe_css(text: str) -> bool:
    """Whether a style or attribute value refers to nothing outside the document."""
    if _DANGEROUS.search(text):
        return False
    return all(m.group(2).strip().startswith("#") for m in _URL.finditer(text))


def _size_root(root: StdET.Element, size: tuple[int, int]) -> None:
    """Give the root the delivered size, keeping (or adding) the viewBox it draws in."""
    if _view_box(root.get("viewBox")) is None:
        width, height = _length(root.get("width")), _length(root.get("height"))
        w, h = (width, height) if width and height else size
        root.set("viewBox", f"0 0 {_number(w)} {_number(h)}")
    root.set("width", str(size[0]))
    root.set("height", str(size[1]))


def _length(value: str | None) -> float | None:
    match = _LENGTH.fullmatch(value) if value else None
    number = float(match.group(1)) if match else None
    return number if number is not None and 0 < number <= 1_000_000 else None


def _view_box(value: str | None) -> tuple[float, float] | None:
    parts = re.split(r"[\s,]+", value.strip()) if value else []
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        return None
    if len(numbers) != 4 or not 0 < numbers[2] <= 1_000_000 or not 0 < numbers[3] <= 1_000_000:
        return None
    return numbers[2], numbers[3]


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]
