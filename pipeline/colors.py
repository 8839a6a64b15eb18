"""Color helpers for prompts: human names for hex colors and RGB triples.

Image models read "deep teal" better than "#0F6E6E", so ``color_name`` finds the nearest
CSS color name by distance in CIELAB (perceptual, unlike distance in RGB).
"""

from __future__ import annotations

from functools import cache

import webcolors

Lab = tuple[float, float, float]


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


@cache
def _named_labs() -> tuple[tuple[str, Lab], ...]:
    out = []
    for name in webcolors.names("css3"):
        rgb = webcolors.name_to_rgb(name)
        out.append((name, rgb_to_lab((rgb.red, rgb.green, rgb.blue))))
    return tuple(out)


@cache
def color_name(value: str) -> str:
    """The nearest CSS color name to a hex color, spaced for prose (``"dark slate gray"``)."""
    lab = rgb_to_lab(hex_to_rgb(value))
    name, _ = min(
        _named_labs(), key=lambda item: sum((a - b) ** 2 for a, b in zip(item[1], lab, strict=True))
    )
    return _spaced(name)


# fmt: off
_WORDS = frozenset((
    "alice", "antique", "aqua", "blue", "white", "dark", "light", "medium", "pale", "deep",
    "hot", "lawn", "lemon", "lime", "navy", "old", "olive", "orange", "rebecca", "rosy",
    "royal", "saddle", "sandy", "sea", "sky", "slate", "spring", "steel", "yellow", "green",
    "gray", "grey", "violet", "red", "pink", "purple", "cyan", "goldenrod", "khaki", "magenta",
    "orchid", "salmon", "turquoise", "brown", "chiffon", "lace", "cream", "rose", "wood",
    "smoke", "gold", "ghost", "floral", "forest", "midnight", "mint", "misty", "powder",
    "blanched", "burly", "cadet", "cornflower", "dim", "dodger", "fire", "indian", "lavender",
    "blush", "papaya", "whip", "peach", "puff", "navajo",
))
# fmt: on
_WORDS_LONGEST_FIRST = sorted(_WORDS, key=len, reverse=True)


def _spaced(name: str) -> str:
    """``darkslategray`` to ``dark slate gray``, by peeling known words off the front."""
    words = []
    rest = name
    while rest:
        if rest in _WORDS:
            words.append(rest)
            break
        for word in _WORDS_LONGEST_FIRST:
            if rest.startswith(word) and len(rest) > len(word):
                words.append(word)
                rest = rest[len(word) :]
                break
        else:
            words.append(rest)
            break
    return " ".join(words)


def rgb_text(value: str) -> str:
    """``#E4572E`` to ``"228, 87, 46"``."""
    return ", ".join(str(c) for c in hex_to_rgb(value))
