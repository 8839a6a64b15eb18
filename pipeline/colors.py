"""Color helpers for prompts: human names for hex colors and RGB triples.

Image models read "coffee brown" better than "#6F4E37", so ``color_name`` finds the
nearest name in ``pipeline/data/color_names.toml`` (the CSS colors plus the browns,
navies and other design names CSS lacks). Nearest is measured with CIEDE2000 in CIELAB,
which weighs hue the way eyes do: by plain distance in RGB, or even in CIELAB, a muted
brown is nearer a gray than any brown. When even the nearest name is a visibly
different color, the hex goes with it (``"wine red (#4C2518)"``), so the prompt still
says the exact color.
"""

from __future__ import annotations

import math
import tomllib
from functools import cache
from importlib import resources

Lab = tuple[float, float, float]

FAR = 10.0
"""CIEDE2000 distance past which a name no longer describes a color, and ``color_name``
adds the hex. About 2 is the smallest difference people notice side by side; at 10 the
nearest name is a neighbour of the color rather than the color (#2B2D42, a gray navy, is
9.3 from "oxford blue" and keeps the name alone)."""


def hex_to_rgb(value: str) -> tuple[int, int, int]:
    """``#E4572E`` (or ``#e52``) to ``(228, 87, 46)``."""
    digits = value.lstrip("#")
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    if len(digits) != 6:
        raise ValueError(f"{value!r} is not a hex color like #RRGGBB")
    try:
        return (int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16))
    except ValueError:
        raise ValueError(f"{value!r} is not a hex color like #RRGGBB") from None


def rgb_to_lab(rgb: tuple[int, int, int]) -> Lab:
    """sRGB (D65) to CIELAB."""

    def linear(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in rgb)
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116

    fx, fy, fz = f(x), f(y), f(z)
    return (116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz))


def delta_e_2000(lab1: Lab, lab2: Lab) -> float:
    """The CIEDE2000 color difference (Sharma, Wu and Dalal's formulation).

    CIE76 (straight distance in CIELAB) overweights chroma and lightness against hue:
    it puts coffee brown #6F4E37 nearer dim gray than saddle brown. CIEDE2000 corrects
    for that, and for blues, which CIELAB bends."""
    l1, a1, b1 = lab1
    l2, a2, b2 = lab2
    c_mean = (math.hypot(a1, b1) + math.hypot(a2, b2)) / 2
    g = 0.5 * (1 - _chroma_weight(c_mean))
    c1, h1 = _chroma_hue(a1 * (1 + g), b1)
    c2, h2 = _chroma_hue(a2 * (1 + g), b2)
    dh = _hue_difference(c1, h1, c2, h2)
    l_mean, c_mean2, h_mean = (l1 + l2) / 2, (c1 + c2) / 2, _mean_hue(c1, h1, c2, h2)
    t = (
        1
        - 0.17 * _cos(h_mean - 30)
        + 0.24 * _cos(2 * h_mean)
        + 0.32 * _cos(3 * h_mean + 6)
        - 0.20 * _cos(4 * h_mean - 63)
    )
    s_l = 1 + 0.015 * (l_mean - 50) ** 2 / math.sqrt(20 + (l_mean - 50) ** 2)
    s_c = 1 + 0.045 * c_mean2
    s_h = 1 + 0.015 * c_mean2 * t
    rotation = -math.sin(math.radians(60 * math.exp(-(((h_mean - 275) / 25) ** 2))))
    r_t = rotation * 2 * _chroma_weight(c_mean2)
    big_dh = 2 * math.sqrt(c1 * c2) * math.sin(math.radians(dh / 2))
    dl, dc, dhh = (l2 - l1) / s_l, (c2 - c1) / s_c, big_dh / s_h
    return math.sqrt(dl**2 + dc**2 + dhh**2 + r_t * dc * dhh)


def _chroma_weight(chroma: float) -> float:
    """sqrt(C^7 / (C^7 + 25^7)): how far a chroma is from gray, 0 to 1."""
    c7 = chroma**7
    return math.sqrt(c7 / (c7 + 25.0**7))


def _chroma_hue(a: float, b: float) -> tuple[float, float]:
    """Chroma and hue angle in degrees (0 to 360) of a CIELAB a, b."""
    return math.hypot(a, b), math.degrees(math.atan2(b, a)) % 360


def _hue_difference(c1: float, h1: float, c2: float, h2: float) -> float:
    """h2 - h1 the short way round the circle (0 when either color is gray)."""
    if c1 * c2 == 0:
        return 0.0
    dh = h2 - h1
    if dh > 180:
        return dh - 360
    if dh < -180:
        return dh + 360
    return dh


def _mean_hue(c1: float, h1: float, c2: float, h2: float) -> float:
    """The mean of two hue angles, the short way round (the sum when either is gray)."""
    if c1 * c2 == 0:
        return h1 + h2
    if abs(h1 - h2) <= 180:
        return (h1 + h2) / 2
    return (h1 + h2 + 360) / 2 if h1 + h2 < 360 else (h1 + h2 - 360) / 2


def _cos(degrees: float) -> float:
    return math.cos(math.radians(degrees))


@cache
def _named_labs() -> tuple[tuple[str, Lab], ...]:
    """The names of ``color_names.toml`` with their CIELAB values, in the file's order."""
    text = resources.files("pipeline").joinpath("data/color_names.toml").read_text("utf-8")
    table: dict[str, str] = tomllib.loads(text)["colors"]
    return tuple((name, rgb_to_lab(hex_to_rgb(hx))) for name, hx in table.items())


@cache
def nearest_color(value: str) -> tuple[str, float]:
    """The nearest named color to a hex color, and its CIEDE2000 distance (the first
    name of the table wins a tie)."""
    lab = rgb_to_lab(hex_to_rgb(value))
    return min(
        ((name, delta_e_2000(lab, named)) for name, named in _named_labs()),
        key=lambda item: item[1],
    )


def color_name(value: str) -> str:
    """A hex color in words for a prompt: ``"coffee brown"``; when no name is close
    (farther than :data:`FAR`), the nearest with the exact color: ``"wine red
    (#4C2518)"``."""
    name, distance = nearest_color(value)
    if distance <= FAR:
        return name
    return f"{name} (#{''.join(f'{c:02X}' for c in hex_to_rgb(value))})"


def rgb_text(value: str) -> str:
    """``#E4572E`` to ``"228, 87, 46"``."""
    return ", ".join(str(c) for c in hex_to_rgb(value))
