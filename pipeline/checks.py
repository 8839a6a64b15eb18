"""Quality checks on a delivered file: size, transparency, brand palette, near-duplicates.

A build that spends money on images should say, per file, whether what came back is what
was asked for, so a reviewer looks at the handful that fail instead of at all of them.
Each check is a pure function on the delivered bytes and returns a :class:`Check` that the
manifest can record as it is (``as_dict``) and the gallery can show.

Only Pillow is used, not numpy or scipy: the images are small once downscaled (a few
thousand pixels), Pillow's median-cut quantizer and resamplers do the heavy lifting in C,
and a second native dependency stack would cost every install (and CI) far more than the
milliseconds it could save here. CIEDE2000 is written out from the formula (Sharma, Wu and
Dalal, 2005) for the same reason, and is tested against that paper's published pairs.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any, Final

from PIL import Image

from pipeline.colors import Lab, hex_to_rgb, rgb_to_lab
from pipeline.output import ManifestEntry
from pipeline.postprocess import ImageInfo, Sample, probe, sample, sample_bytes

_PHASH: Final = re.compile(r"[0-9a-f]{16}")
"""A perceptual hash as the manifest records it (anything else there is not compared)."""

RGB = tuple[int, int, int]

PALETTE_MIN_SHARE: Final = 0.10
"""A dominant color must cover this share of the visible pixels to be held to the palette."""

PALETTE_DEFAULT_TOLERANCE: Final = 20.0
"""Mean ΔE2000 allowed by default: a clear drift, not shading within one brand color."""

_SAMPLE_EDGE: Final = 128
"""Dominant colors are found on a copy at most this big: plenty for shares to 1%."""

Inspectable = bytes | Image.Image | Sample
"""What a check reads: a file's bytes, its decoded image, or its :class:`Sample` (one
decode shared by every check, the perceptual hash and the thumbnail)."""

_HASH_BITS: Final = 64

CHECKS_VERSION: Final = 1
"""Bump when a check could find otherwise for the same image and question: memoised
results (:mod:`pipeline.store.memo`) are keyed by it, so older ones stop counting."""

PHASH_METHOD: Final = "dhash-9x8-lanczos-sample256"
"""How :func:`perceptual_hash` hashes: a memoised hash made another way is not reused."""
_WHITE: Final = (255, 255, 255)
_POW25_7: Final = 25.0**7


@dataclass(frozen=True, slots=True)
class Check:
    """The outcome of one check: ``ok`` and a one-line ``detail`` a person can act on.

    ``value`` is the number behind the verdict (transparent share, mean ΔE), when there is
    one, so a later tool can sort or chart files without parsing the detail.
    """

    name: str
    ok: bool
    detail: str
    value: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with a fixed set of keys (``value`` may be null)."""
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "value": self.value}


def check_dimensions(info_or_data: ImageInfo | bytes, width: int, height: int) -> Check:
    """``size``: whether the file is exactly ``width`` x ``height`` pixels."""
    info = info_or_data if isinstance(info_or_data, ImageInfo) else probe(info_or_data)
    if info.size == (width, height):
        return Check("size", True, f"{width}x{height} as asked")
    return Check("size", False, f"got {info.width}x{info.height}, asked {width}x{height}")


def check_alpha(data: Inspectable) -> Check:
    """``alpha``: whether some pixel is transparent (alpha < 255), as a cut-out should be.

    Presence follows :func:`pipeline.postprocess.probe` (an RGBA file that is fully opaque
    has no transparency); the detail and ``value`` give the share of such pixels.
    """
    return _alpha(sampled(data))


def dominant_colors(data: Inspectable, k: int = 5) -> list[tuple[RGB, float]]:
    """Up to ``k`` dominant colors with their share of the visible pixels, largest first.

    Median cut (Pillow's quantizer, no dithering) runs on a downscaled copy; fully
    transparent pixels are left out, since their color is never seen. Shares sum to 1;
    an image with no visible pixel has no dominant color.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    small = sampled(data).small
    sample = small.copy() if small.mode == "RGB" else small.convert("RGBA")
    sample.thumbnail((_SAMPLE_EDGE, _SAMPLE_EDGE), Image.Resampling.BOX)
    raw = sample.tobytes() if sample.mode == "RGBA" else b""
    hidden = raw[3::4].count(0)
    if hidden == sample.width * sample.height:
        return []
    if hidden == 0:
        visible = sample.convert("RGB")  # an opaque RGB sample is as it was
    else:
        rgb = bytearray()
        for offset in range(0, len(raw), 4):
            if raw[offset + 3]:
                rgb += raw[offset : offset + 3]
        visible = Image.frombytes("RGB", (len(rgb) // 3, 1), bytes(rgb))
    quantized = visible.quantize(k, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    flat = quantized.getpalette() or []
    counts: dict[RGB, int] = {}
    for count, index in quantized.getcolors() or []:
        if isinstance(index, int):  # always, for a "P" image: a palette index
            color = (flat[3 * index], flat[3 * index + 1], flat[3 * index + 2])
            counts[color] = counts.get(color, 0) + count
    total = sum(counts.values())
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [(color, count / total) for color, count in ranked]


def delta_e_2000(lab1: Lab, lab2: Lab) -> float:
    """CIEDE2000 color difference (kL = kC = kH = 1), following Sharma, Wu and Dalal (2005).

    About 1 is a just-noticeable difference; unlike Euclidean distance in Lab, it does not
    overstate differences between saturated colors or understate them between blues.
    """
    l1, a1, b1 = lab1
    l2, a2, b2 = lab2
    c_bar7 = ((math.hypot(a1, b1) + math.hypot(a2, b2)) / 2) ** 7
    g = 0.5 * (1 - math.sqrt(c_bar7 / (c_bar7 + _POW25_7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = math.hypot(a1p, b1), math.hypot(a2p, b2)
    h1p, h2p = _hue_degrees(b1, a1p), _hue_degrees(b2, a2p)

    delta_l = l2 - l1
    delta_c = c2p - c1p
    chroma_product = c1p * c2p
    if chroma_product == 0:
        delta_h_angle = 0.0
        h_bar = h1p + h2p
    else:
        delta_h_angle = h2p - h1p
        if delta_h_angle > 180:
            delta_h_angle -= 360
        elif delta_h_angle < -180:
            delta_h_angle += 360
        h_bar = (h1p + h2p) / 2
        if abs(h1p - h2p) > 180:
            h_bar += 180 if h1p + h2p < 360 else -180
    delta_h = 2 * math.sqrt(chroma_product) * math.sin(math.radians(delta_h_angle / 2))

    l_bar = (l1 + l2) / 2
    c_bar_p = (c1p + c2p) / 2
    t = 1 - 0.17 * _cos(h_bar - 30) + 0.24 * _cos(2 * h_bar)
    t += 0.32 * _cos(3 * h_bar + 6) - 0.20 * _cos(4 * h_bar - 63)
    delta_theta = 30 * math.exp(-(((h_bar - 275) / 25) ** 2))
    r_c = 2 * math.sqrt(c_bar_p**7 / (c_bar_p**7 + _POW25_7))
    s_l = 1 + 0.015 * (l_bar - 50) ** 2 / math.sqrt(20 + (l_bar - 50) ** 2)
    s_c = 1 + 0.045 * c_bar_p
    s_h = 1 + 0.015 * c_bar_p * t
    r_t = -math.sin(math.radians(2 * delta_theta)) * r_c
    dl, dc, dh = delta_l / s_l, delta_c / s_c, delta_h / s_h
    # |r_t| <= 2, so the sum is >= 0 in exact arithmetic; clamp away rounding below zero.
    return math.sqrt(max(0.0, dl * dl + dc * dc + dh * dh + r_t * dc * dh))


def check_palette(
    data: Inspectable,
    palette_hex: Sequence[str] | Mapping[str, str],
    tolerance: float = PALETTE_DEFAULT_TOLERANCE,
) -> Check | None:
    """``palette``: whether the image's dominant colors stay near the brand palette.

    Each dominant color covering at least :data:`PALETTE_MIN_SHARE` of the visible pixels
    is matched to its nearest brand color by ΔE2000; the check passes when the mean ΔE,
    weighted by pixel share, is at most ``tolerance``. A mapping of names to hex colors
    (a brand's ``colors``) lets the detail name the brand color; a plain list names it by
    its hex. With no palette there is nothing to check, and the result is None.
    """
    if isinstance(palette_hex, str):
        palette_hex = (palette_hex,)
    if isinstance(palette_hex, Mapping):
        named = [(str(name), value) for name, value in palette_hex.items()]
    else:
        named = [(value.upper(), value) for value in palette_hex]
    if not named:
        return None
    brand = [(name, rgb_to_lab(hex_to_rgb(value))) for name, value in named]
    major = [(c, s) for c, s in dominant_colors(data) if s >= PALETTE_MIN_SHARE]
    if not major:
        return Check("palette", False, "no visible pixels to compare with the brand palette")
    weight = sum(share for _, share in major)
    mean = 0.0
    worst: tuple[float, RGB, str] = (-1.0, (0, 0, 0), "")
    for color, share in major:
        lab = rgb_to_lab(color)
        distance, name = min((delta_e_2000(lab, ref), name) for name, ref in brand)
        mean += distance * share / weight
        worst = max(worst, (distance, color, name))
    distance, color, name = worst
    hex_color = "#{:02X}{:02X}{:02X}".format(*color)
    detail = (
        f"mean ΔE {mean:.1f} to the brand palette (worst: {hex_color} ΔE {distance:.1f} to {name})"
    )
    return Check("palette", mean <= tolerance, detail, mean)


def perceptual_hash(data: Inspectable) -> int:
    """A 64-bit difference hash (dHash) of the image, to spot near-duplicate outputs.

    The image is flattened on white (hidden colors under transparent pixels must not
    count), turned to grayscale and resized to 9x8 with Lanczos, from its sample (the
    image shrunk by a whole factor to about 256 px); each bit says whether a pixel is
    brighter than its right neighbour. Re-encoding, resizing and mild noise move few bits;
    a different picture moves about half of them.
    """
    image = sampled(data).small
    if image.mode == "RGBA":
        flat = Image.new("RGB", image.size, _WHITE)
        flat.paste(image, (0, 0), image)
        image = flat
    small = image.convert("L").resize((9, 8), Image.Resampling.LANCZOS).tobytes()
    bits = 0
    for row in range(8):
        for col in range(8):
            bits = (bits << 1) | (small[row * 9 + col] > small[row * 9 + col + 1])
    return bits


def hamming(a: int, b: int) -> int:
    """The number of bits in which two hashes differ."""
    return (a ^ b).bit_count()


def near_duplicates(hashes: Mapping[str, int], threshold: int = 6) -> list[tuple[str, str, int]]:
    """Pairs ``(id_a, id_b, distance)`` with ``id_a < id_b`` whose hashes differ by at most
    ``threshold`` bits, sorted.

    Comparing every pair is quadratic (50 million pairs for 10,000 assets), so candidates
    come from the pigeonhole principle: split the 64 bits into ``threshold + 1`` chunks;
    two hashes within ``threshold`` bits agree exactly on at least one chunk, so only
    hashes sharing a chunk value are compared. The result is the same as the full scan.
    """
    if threshold < 0:
        return []
    items = sorted(hashes.items())
    values = [value for _, value in items]
    pairs: set[tuple[int, int]] = set()
    chunks = threshold + 1  # past 64 chunks, empty ones put every hash in one bucket
    edges = [round(i * _HASH_BITS / chunks) for i in range(chunks + 1)]
    for low, high in itertools.pairwise(edges):
        buckets: dict[int, list[int]] = {}
        for index, value in enumerate(values):
            buckets.setdefault((value >> low) & ((1 << (high - low)) - 1), []).append(index)
        for members in buckets.values():
            pairs.update(itertools.combinations(members, 2))
    found = []
    for i, j in pairs:
        distance = hamming(values[i], values[j])
        if distance <= threshold:
            found.append((items[i][0], items[j][0], distance))
    return sorted(found)


def flag_near_duplicates(
    entries: Sequence[ManifestEntry],
    threshold: int = 6,
    placeholders: AbstractSet[str] = frozenset(),
) -> list[ManifestEntry]:
    """``entries`` with a ``distinct`` check added to the variants of each asset: variants
    meant to differ that look alike (perceptual hashes within ``threshold`` bits) waste a
    paid call. Entries of ``placeholders`` providers (drawn, not generated) are left out."""
    groups: dict[tuple[str, str], dict[str, int]] = {}
    for e in entries:
        if e.is_api and e.phash and _PHASH.fullmatch(e.phash) and e.provider not in placeholders:
            groups.setdefault((e.collection, e.asset), {})[e.job] = int(e.phash, 16)
    verdicts: dict[str, dict[str, Any]] = {}
    for hashes in groups.values():
        if len(hashes) < 2:
            continue
        twins: dict[str, tuple[str, int]] = {}
        for a, b, bits in near_duplicates(hashes, threshold):
            twins.setdefault(a, (b, bits))
            twins.setdefault(b, (a, bits))
        for job in hashes:
            twin = twins.get(job)
            verdicts[job] = {
                "name": "distinct",
                "ok": twin is None,
                "detail": f"near-duplicate of {twin[0]} ({twin[1]} bits differ)"
                if twin
                else "differs from the other variants",
                "value": twin[1] if twin else None,
            }
    out = []
    for entry in entries:
        verdict = verdicts.get(entry.job) if entry.is_api else None
        if verdict is None:
            out.append(entry)
            continue
        kept = [c for c in entry.checks or () if c.get("name") != "distinct"]
        out.append(dataclasses.replace(entry, checks=(*kept, verdict)))
    return out


def run_checks(
    data: Inspectable,
    *,
    width: int | None,
    height: int | None,
    expect_alpha: bool,
    palette: Sequence[str] | Mapping[str, str],
    palette_tolerance: float = PALETTE_DEFAULT_TOLERANCE,
) -> list[Check]:
    """All checks that apply to one delivered file (bytes, an image, or its sample).

    ``alpha`` runs only when transparency was asked for; ``palette`` only with a palette.
    Without ``width`` and ``height`` (a ``trim`` decided them), ``size`` passes and says so.
    A file that cannot be decoded raises :class:`pipeline.postprocess.ImageDecodeError`,
    as delivery already does, rather than producing a misleading set of checks.
    """
    sample = sampled(data)
    if width is None or height is None:
        info = sample.info
        checks = [Check("size", True, f"{info.width}x{info.height}, as its content made it")]
    else:
        checks = [check_dimensions(sample.info, width, height)]
    if expect_alpha:
        checks.append(_alpha(sample))
    palette_check = check_palette(sample, palette, palette_tolerance)
    if palette_check is not None:
        checks.append(palette_check)
    return checks


def sampled(data: Inspectable) -> Sample:
    """The sample of ``data``: decoded once (bytes), shrunk once (an image), or as it is."""
    if isinstance(data, Sample):
        return data
    if isinstance(data, Image.Image):
        return sample(data)
    return sample_bytes(data)


def _alpha(sample: Sample) -> Check:
    """The alpha check from a sample's full-resolution alpha histogram."""
    info, histogram = sample.info, sample.alpha
    if not info.has_alpha or histogram is None:
        return Check("alpha", False, f"no transparent pixels (mode {info.mode})", 0.0)
    total = sample.pixels
    share = sum(histogram[:255]) / total
    clear = histogram[0] / total
    detail = f"{_percent(share)} of pixels transparent ({_percent(clear)} fully)"
    # A cut-out has a background that is gone, not merely faded: some pixel fully clear.
    return Check("alpha", histogram[0] > 0, detail, share)


def _hue_degrees(b: float, a: float) -> float:
    """The hue angle of (a, b) in degrees, in [0, 360); 0 for a neutral color."""
    if a == 0 and b == 0:
        return 0.0
    angle = math.degrees(math.atan2(b, a)) % 360
    return 0.0 if angle >= 360 else angle  # -1e-17 % 360 rounds to 360.0


def _cos(degrees: float) -> float:
    return math.cos(math.radians(degrees))


def _percent(share: float) -> str:
    """A share as a percentage that never rounds a few pixels to 0% or 100%."""
    if 0 < share < 0.001:
        return "<0.1%"
    if 0.999 < share < 1:
        return ">99.9%"
    return f"{share:.1%}"
