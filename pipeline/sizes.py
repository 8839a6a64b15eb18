"""The size compiler: from what a user wants delivered to what a model can be asked for.

``size: WxH`` is the exact delivered size; ``aspect: "W:H"`` asks for that ratio at the
model's natural scale (about one megapixel). A model accepts either free sizes (multiples
of 16 within limits) or a few fixed ones. When the target is not a legal request size we
ask for the closest legal size with the same or wider coverage, so the model composes for
(nearly) the right canvas, and the remainder is a local center-crop and resize. Results
are memoized: a 10,000-job plan asks the same few questions over and over.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from pipeline.catalog import SizeRule

NATURAL_PIXELS = 1024 * 1024
RATIO_TOLERANCE = 0.01
"""A request whose ratio is within 1% of the target's costs a sliver of crop, not a bigger image."""


@dataclass(frozen=True, slots=True)
class SizePlan:
    """A request size and the exact delivered size; the two differ when a local step is needed."""

    requested: tuple[int, int]
    delivered: tuple[int, int]

    @property
    def needs_local_step(self) -> bool:
        """Whether the delivered file is a crop/resize of what the API returns."""
        return self.requested != self.delivered

    @property
    def cropped(self) -> tuple[int, int]:
        """The part of the requested image the delivered file is made from (a center crop
        to the delivered shape)."""
        return largest_with_ratio(self.requested, *self.delivered)

    @property
    def upscale(self) -> float:
        """How much the kept part is enlarged to the delivered size (1.0: not at all)."""
        (cw, ch), (dw, dh) = self.cropped, self.delivered
        return max(dw / cw, dh / ch, 1.0)

    @property
    def kept_share(self) -> float:
        """The share of the generated pixels the delivered file keeps (1.0: all)."""
        (cw, ch), (rw, rh) = self.cropped, self.requested
        return min(1.0, (cw * ch) / (rw * rh))


def parse_size(text: str) -> tuple[int, int] | None:
    """``"1920x1080"`` to ``(1920, 1080)``; None when it is not of that form or not positive."""
    parts = text.strip().lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        return None
    w, h = int(parts[0]), int(parts[1])
    return (w, h) if w > 0 and h > 0 else None


def parse_aspect(text: str) -> tuple[int, int] | None:
    """``"16:9"`` to ``(16, 9)``; None when it is not of that form or not positive."""
    parts = text.strip().split(":")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        return None
    w, h = int(parts[0]), int(parts[1])
    return (w, h) if w > 0 and h > 0 else None


def _ratio_error(w: int, h: int, ratio: float) -> float:
    return abs(math.log((w / h) / ratio))


def _clamp_ratio(rule: SizeRule, ratio: float) -> float:
    """A ratio beyond the model's limits is requested at the limit and cropped locally."""
    return min(max(ratio, 1 / rule.max_ratio), rule.max_ratio)


def _free_candidates(rule: SizeRule, ratio: float) -> list[tuple[int, int]]:
    """Legal sizes whose ratio is as close to ``ratio`` as the grid allows, one per width."""
    out = []
    m = rule.multiple
    for w in range(m, rule.max_long + 1, m):
        exact_h = w / ratio
        for h in {max(m, math.floor(exact_h / m) * m), max(m, math.ceil(exact_h / m) * m)}:
            if rule.allows(w, h):
                out.append((w, h))
    return out


@lru_cache(maxsize=4096)
def compile_exact(rule: SizeRule, width: int, height: int) -> SizePlan:
    """Plan an exact delivered size ``width x height`` on a model with ``rule``."""
    target = (width, height)
    if rule.allows(width, height):
        return SizePlan(requested=target, delivered=target)
    ratio = width / height
    if rule.kind == "fixed":
        best = min(rule.sizes, key=lambda s: (_ratio_error(s[0], s[1], ratio), s[0] * s[1]))
        return SizePlan(requested=best, delivered=target)
    ratio = _clamp_ratio(rule, ratio)
    candidates = _free_candidates(rule, ratio)
    # Smallest size that covers the target with a near-exact ratio: no upscaling, little crop.
    covering = [
        (w, h)
        for w, h in candidates
        if w >= width and h >= height and _ratio_error(w, h, ratio) <= RATIO_TOLERANCE
    ]
    if covering:
        best = min(covering, key=lambda s: (s[0] * s[1], _ratio_error(s[0], s[1], ratio)))
    else:
        # Larger than the model allows (or a ratio beyond its limits): the best ratio at the
        # largest size, upscaled locally.
        best = min(
            candidates, key=lambda s: (round(_ratio_error(s[0], s[1], ratio), 3), -s[0] * s[1])
        )
    return SizePlan(requested=best, delivered=target)


@lru_cache(maxsize=1024)
def compile_aspect(rule: SizeRule, aw: int, ah: int) -> SizePlan:
    """Plan an aspect ratio at the model's natural scale; delivered is that exact ratio."""
    ratio = aw / ah
    if rule.kind == "fixed":
        requested = min(rule.sizes, key=lambda s: _ratio_error(s[0], s[1], ratio))
    else:
        ratio = _clamp_ratio(rule, ratio)
        candidates = _free_candidates(rule, ratio)
        requested = min(
            candidates,
            key=lambda s: (
                round(_ratio_error(s[0], s[1], ratio), 4),
                abs(math.log(s[0] * s[1] / NATURAL_PIXELS)),
            ),
        )
    return SizePlan(requested=requested, delivered=largest_with_ratio(requested, aw, ah))


def largest_with_ratio(size: tuple[int, int], aw: int, ah: int) -> tuple[int, int]:
    """The largest ``aw:ah`` rectangle inside ``size`` (integer sides, exact ratio if possible)."""
    w, h = size
    g = math.gcd(aw, ah)
    aw, ah = aw // g, ah // g
    k = min(w // aw, h // ah)
    if k >= 1:
        return (aw * k, ah * k)
    # A ratio too extreme for exact integer sides at this size: keep the closest we can.
    if w / h > aw / ah:
        return (max(1, round(h * aw / ah)), h)
    return (w, max(1, round(w * ah / aw)))
