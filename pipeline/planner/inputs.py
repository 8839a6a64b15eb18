"""Planning, stage two: each asset's size, and the images an edit reads.

The two are one recursion, so they live together: an edit input that names another asset
takes that asset's delivered size, and an edit with neither ``size`` nor ``aspect`` takes
the size of its first input. Following that chain is also where an edit cycle through
sizes is found. Files are read only through the injected :data:`FileReader`, which keeps
the planner free of disk access in tests.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import Location, SpecError, did_you_mean
from pipeline.jobs import InputRef, PlanWarning, job_id
from pipeline.planner.assets import AssetKey
from pipeline.planner.order import cycle_error
from pipeline.planner.resolve import ResolvedAsset
from pipeline.planner.settings import Effective
from pipeline.sizes import SizePlan, compile_aspect, compile_exact, parse_aspect, parse_size
from pipeline.spec.loader import inside
from pipeline.spec.lock import Lock
from pipeline.spec.models import BrandInput, EditInput, FileInput

MAX_DELIVERED_SIDE = 8192
MAX_UPSCALE = 1.25
"""Past this, an exact size is an error: the model cannot make it and an upscale of the
largest it can make would be paid for and still look soft."""
MAX_CROPPED_SHARE = 0.2
"""A size or aspect that throws away more of each generated image is a warning."""
INPUT_FORMATS = ("png", "webp", "jpeg")
NON_RASTER = {".svg": "an SVG", ".svgz": "an SVG", ".gif": "a GIF"}
"""Input files named as what the API cannot take (it edits raster images, and takes no
animation): said plainly at plan time, rather than as a file Pillow cannot read."""
REF = re.compile(r"(?:(?P<coll>.+)/)?(?P<id>[a-z0-9][a-z0-9._-]*)(?:#(?P<k>\d+))?")


@dataclass(frozen=True, slots=True)
class FileFacts:
    """What the planner needs to know of an input image file."""

    sha256: str
    width: int
    height: int
    format: str
    bytes: int


FileReader = Callable[[Path], FileFacts]
"""Reads an image file's facts; raises FileNotFoundError, or ValueError when not an image."""


class AlreadyReported(Exception):
    """An asset depends on an edit cycle whose error is already collected: report no more."""


class InputResolver:
    """Sizes assets and resolves their edit inputs, each asset's size computed once.

    ``broken`` holds the assets of every edit cycle found so far; their error has been
    raised once, and an asset that reads one of them raises :class:`AlreadyReported`.
    """

    def __init__(
        self,
        root: Path,
        assets: Mapping[AssetKey, ResolvedAsset],
        effective: Mapping[AssetKey, Effective],
        read_file: FileReader,
        lock: Lock | None = None,
        warnings: list[PlanWarning] | None = None,
        unknown_ok: AbstractSet[str] | None = None,
    ):
        self.root = root
        self.lock = lock or Lock()
        self.warnings = warnings if warnings is not None else []
        self.unknown_ok = unknown_ok or set()
        """Collections with an asset that failed: a reference into one that names no asset
        may name the failed one, whose error is already reported."""
        self.assets = assets
        self.effective = effective
        self.read_file = read_file
        self.sizes: dict[AssetKey, SizePlan] = {}
        self._shaped: dict[tuple[int, int], SizePlan] = {}
        """Sizes by (spec shape, model) object ids; both live as long as the plan."""
        self.broken: set[AssetKey] = set()
        self._sizing: dict[AssetKey, None] = {}  # an ordered set: the chain being sized

    def variants(self, key: AssetKey) -> int:
        """How many variants the asset has: its spec's, plus rerolls from the lock."""
        variants = self.assets[key].base.variants
        if not self.lock.entries:  # no lock: no rerolls (and no name to look up)
            return variants
        return variants + self.lock.entry("/".join(key)).rerolls

    def size(self, key: AssetKey) -> SizePlan:
        """The requested and delivered size of the asset ``key``."""
        known = self.sizes.get(key)
        if known is not None:
            return known
        asset, eff = self.assets[key], self.effective[key]
        rule = eff.model.size_rule
        spec = asset.base
        # Combinations of one shape (the same spec but the id) with the same model have
        # the same size, unless an edit takes it from its input.
        shaped = None
        if spec.size is not None or spec.aspect is not None or not spec.is_edit:
            shaped = (id(spec), id(eff.model))
            known = self._shaped.get(shaped)
            if known is not None:
                self.sizes[key] = known
                return known
        if spec.size is not None:
            wh = parsed(parse_size, spec.size)
            if wh is None or max(wh) > MAX_DELIVERED_SIDE or min(wh) < 1:
                raise SpecError(
                    f"size '{spec.size}' is not a pixel size",
                    asset.where("size"),
                    f"write WxH with sides from 1 to {MAX_DELIVERED_SIDE}, e.g. 1024x1024",
                )
            result = compile_exact(rule, *wh)
            self._check_fit(asset, eff, result, "size", f"size {wh[0]}x{wh[1]}")
        elif spec.aspect is not None:
            ratio = parsed(parse_aspect, spec.aspect)
            if ratio is None or max(ratio) / min(ratio) > 10:
                raise SpecError(
                    f"aspect '{spec.aspect}' is not a ratio",
                    asset.where("aspect"),
                    'write W:H between 1:10 and 10:1, e.g. "16:9" (quoted in YAML)',
                )
            result = compile_aspect(rule, *ratio)
            self._check_fit(asset, eff, result, "aspect", f"aspect {spec.aspect}")
        elif spec.is_edit:
            # An edit without size/aspect takes the size of its first input: size that first.
            self._sizing[key] = None
            try:
                ref, path = spec.input_images()[0]
                first = self.input(asset, ref, path)
            finally:
                self._sizing.pop(key, None)
            result = compile_exact(rule, first.width, first.height)
        else:
            result = compile_exact(rule, 1024, 1024)
        self.sizes[key] = result
        if shaped is not None:
            self._shaped[shaped] = result
        return result

    def _check_fit(
        self, asset: ResolvedAsset, eff: Effective, plan: SizePlan, key: str, what: str
    ) -> None:
        """Sizes a model cannot make: an upscale past :data:`MAX_UPSCALE` is an error, a
        crop that throws away more than :data:`MAX_CROPPED_SHARE` a warning naming it."""
        name = eff.model.name
        if plan.upscale > MAX_UPSCALE:
            cw, ch = plan.cropped
            raise SpecError(
                f"{what} is {plan.upscale:.1f}x larger than {name} can make at this shape "
                f"({cw}x{ch} at most): the image would be upscaled",
                asset.where(key),
                f"ask for at most {cw}x{ch} (upscale with your own tools if you must)",
            )
        if plan.kept_share < 1 - MAX_CROPPED_SHARE:
            rw, rh = plan.requested
            self.warnings.append(
                PlanWarning(
                    f"{what} keeps {plan.kept_share:.0%} of each generated {rw}x{rh} image "
                    f"({1 - plan.kept_share:.0%} is cropped away): {name} cannot make this "
                    "shape; a less extreme one wastes less",
                    asset.where(key),
                )
            )

    def input(self, asset: ResolvedAsset, ref: EditInput, path: tuple[str | int, ...]) -> InputRef:
        """The image ``ref`` (at ``path`` in ``asset``'s spec) names: another asset's
        output, a file in the project, or the brand kit's logo."""
        where = asset.where(*path)
        coll = asset.collection
        if isinstance(ref, str):
            m = REF.fullmatch(ref)
            if m is None:
                raise SpecError(
                    f"'{ref}' is not an asset reference",
                    where,
                    "write an asset id ('hero'), a variant ('hero#2'), "
                    "another collection's asset ('icons/hero') or {file: path}",
                )
            cname = m["coll"] or coll.name
            target_key = (cname, m["id"])
            target = self.assets.get(target_key)
            if target is None and cname in self.unknown_ok:
                raise AlreadyReported
            if target is None:
                ids = [a for c, a in self.assets if c == cname]
                hint = did_you_mean(m["id"], ids) or (
                    f"assets in '{cname}': {', '.join(ids[:10])}"
                    if ids
                    else f"there is no collection '{cname}'"
                )
                what = "reference" if path[0] == "reference" else "edit input"
                raise SpecError(f"{what} '{ref}' names no asset", where, hint)
            k = int(m["k"] or 1)
            variants = self.variants(target_key)
            if not 1 <= k <= variants:
                raise SpecError(
                    f"'{ref}' asks for variant {k}, but '{m['id']}' has {variants} variant(s)",
                    where,
                    f"use #1 to #{variants}",
                )
            if target_key == (coll.name, asset.id):
                raise SpecError(
                    f"edit cycle: {job_id(cname, m['id'], k)} edits itself",
                    where,
                    "an asset cannot be built from its own output; edit another asset or a "
                    "{file: ...}",
                )
            if target_key in self.broken:
                raise AlreadyReported
            if target_key in self._sizing:
                chain = [*list(self._sizing)[list(self._sizing).index(target_key) :], target_key]
                self.broken.update(chain)
                raise cycle_error([f"{c}/{a}" for c, a in chain], where)
            target_format = self.effective[target_key].format
            if target_format in ("svg", "gif"):
                what = "reference" if path[0] == "reference" else "edit input"
                raise SpecError(
                    f"{what} '{ref}' is a format: {target_format} asset; the API edits only "
                    "raster images (png, webp or jpeg)",
                    where,
                    "give that asset a raster format, or name a PNG exported from it "
                    "({file: path.png})",
                )
            w, h = self.size(target_key).delivered
            pick = self.lock.picks.get(f"{cname}/{m['id']}")
            if pick is not None and m["k"] is None:  # the asset itself: its approved image
                return InputRef(job=f"{cname}/{m['id']}", width=w, height=h, format=pick.format)
            return InputRef(
                job=job_id(cname, m["id"], k, numbered=pick is not None),
                width=w,
                height=h,
                format=self.effective[target_key].format,
            )
        if isinstance(ref, FileInput):
            return self._file(coll.path.parent / ref.file, ref.file, where)
        if isinstance(ref, BrandInput):
            brand, brand_dir = asset.brand, asset.brand_dir or coll.brand_dir
            if brand is None or not brand.logo:
                raise SpecError(
                    "{brand: logo} needs a brand kit with a 'logo'",
                    where,
                    "add logo: path/to/logo.png to the brand kit",
                )
            return self._file(brand_dir / brand.logo, brand.logo, where)
        raise AssertionError(ref)  # pragma: no cover - pydantic admits no other shape

    def _file(self, path: Path, written: str, where: Location) -> InputRef:
        root = self.root
        if not inside(path, root):
            raise SpecError(
                f"'{written}' is outside the project folder",
                where,
                "input images must live inside the project",
            )
        display = path.resolve().relative_to(root.resolve()).as_posix()
        kind = NON_RASTER.get(path.suffix.lower())
        if kind is not None:
            raise SpecError(
                f"'{written}' is {kind}; the API edits only raster images (png, webp or jpeg)",
                where,
                "export it as PNG and name that file"
                + (" (one frame of the animation)" if kind == "a GIF" else ""),
            )
        try:
            facts = self.read_file(path)
        except FileNotFoundError:
            raise SpecError(
                f"input image '{written}' not found (looked at {display})",
                where,
                "paths are relative to the spec file",
            ) from None
        except ValueError as exc:
            raise SpecError(
                f"'{written}' is not a usable image: {exc}",
                where,
                "edit inputs and masks are PNG, WebP or JPEG files under 50 MB",
            ) from None
        if facts.format not in INPUT_FORMATS:
            raise SpecError(
                f"'{written}' is {facts.format}; edit inputs are png, webp or jpeg",
                where,
                "convert it to PNG (or WebP/JPEG)",
            )
        return InputRef(
            path=display,
            sha256=facts.sha256,
            width=facts.width,
            height=facts.height,
            format=facts.format,
            bytes=facts.bytes,
        )


def parsed(parse: Callable[[str], tuple[int, int] | None], text: str) -> tuple[int, int] | None:
    """``parse(text)``, or None where int() refuses what str.isdigit() let through
    (``"²x²"``, a side of 5,000 digits)."""
    try:
        return parse(text)
    except ValueError:
        return None
