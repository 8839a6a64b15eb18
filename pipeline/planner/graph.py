"""The planner: a pure function from loaded specs to a job graph.

Loading, rendering and checking happen here, with no network and no writes; the only
input besides the specs is ``read_file``, which the composition root injects to hash
and measure referenced image files. The result is a printable value: ``assetpipe plan``
shows it and tests assert on it with plain data.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from pipeline.catalog import Catalog, ModelInfo, ModelPolicy
from pipeline.errors import Location, SpecError, SpecErrors, did_you_mean, raise_collected
from pipeline.jobs import (
    ApiJob,
    InputRef,
    Job,
    ParamValue,
    Plan,
    PlanWarning,
    RenditionJob,
    RenditionOp,
    api_cache_key,
    job_id,
    output_path,
    topological,
)
from pipeline.planner.matrix import Combo, expand_matrix, show_value
from pipeline.planner.order import check_cycles, cycle_error
from pipeline.planner.paths import output_path_errors
from pipeline.planner.resolve import ResolvedAsset, base_context, resolve_asset
from pipeline.planner.settings import Effective, effective_settings
from pipeline.planner.sheets import sheet_jobs
from pipeline.sizes import SizePlan, compile_aspect, compile_exact, parse_aspect, parse_size
from pipeline.spec.loader import Project, inside
from pipeline.spec.models import MAX_VARIANTS, BrandInput, EditInput, FileInput
from pipeline.spec.yamlsource import YMap, YSeq
from pipeline.templating import TemplateEngine

DEFAULT_MAX_JOBS = 10_000
MAX_ERRORS = 50
MAX_DELIVERED_SIDE = 8192
INPUT_FORMATS = ("png", "webp", "jpeg")
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


@dataclass(frozen=True, slots=True)
class PlanOptions:
    """What a plan depends on besides the specs."""

    catalog: Catalog
    provider: str = "preview"
    model_policy: ModelPolicy = "catalog"
    """From the provider's registry entry: how a spec's model name is read."""
    model: str | None = None
    today: dt.date = field(default_factory=dt.date.today)
    max_jobs: int = DEFAULT_MAX_JOBS


def plan(
    project: Project, engine: TemplateEngine, options: PlanOptions, read_file: FileReader
) -> Plan:
    """Expand, render and check every asset of ``project`` into a job graph."""
    return _Planner(project, engine, options, read_file).run()


class _Planner:
    def __init__(
        self, project: Project, engine: TemplateEngine, options: PlanOptions, read_file: FileReader
    ):
        self.project = project
        self.engine = engine
        self.options = options
        self.read_file = read_file
        self.errors: list[SpecError] = []
        self.warnings: list[PlanWarning] = []
        self.assets: dict[tuple[str, str], ResolvedAsset] = {}
        self.effective: dict[tuple[str, str], Effective] = {}
        self.sizes: dict[tuple[str, str], SizePlan] = {}
        self._sizing: dict[tuple[str, str], None] = {}  # an ordered set: the chain being sized
        self._broken: set[tuple[str, str]] = set()  # assets in a cycle already reported
        self.job_count = 0  # API jobs, renditions and sheets counted so far

    def _collect(self, exc: SpecError | SpecErrors) -> None:
        """Keep errors to report with the others (one asset may have several); the same
        text at the same place once."""
        for error in exc.errors if isinstance(exc, SpecErrors) else (exc,):
            if all(e.render() != error.render() for e in self.errors):
                self.errors.append(error)
        if len(self.errors) >= MAX_ERRORS:
            raise_collected(self.errors)

    def run(self) -> Plan:
        self._resolve_all()
        raise_collected(self.errors)
        for key, asset in self.assets.items():
            try:
                self.effective[key] = effective_settings(
                    asset,
                    self.options.catalog,
                    self.options.model,
                    self.options.model_policy,
                    self.options.today,
                    self.warnings,
                )
            except (SpecError, SpecErrors) as exc:
                self._collect(exc)
        raise_collected(self.errors)
        jobs: list[Job] = []
        for key, asset in self.assets.items():
            if key in self._broken:
                continue
            try:
                jobs.extend(self._jobs_for(key, asset))
            except (SpecError, SpecErrors) as exc:
                self._collect(exc)
            except _AlreadyReported:
                continue
        raise_collected(self.errors)
        for coll in self.project.collections:
            if coll.sheets:
                mine = [job for job in jobs if job.collection == coll.name]
                try:
                    jobs.extend(sheet_jobs(coll, mine, self.options.provider))
                except SpecError as exc:
                    self._collect(exc)
        raise_collected(self.errors)
        for error in output_path_errors(jobs, self._job_location):
            self._collect(error)
        raise_collected(self.errors)
        check_cycles(jobs, self.assets)
        # One warning per place: a deprecated model in `defaults:` is said once, not per asset.
        warnings = tuple(dict.fromkeys(self.warnings))
        return Plan(jobs=tuple(topological(jobs)), warnings=warnings)

    def _job_location(self, job: Job) -> Location:
        """Where a job comes from: its asset (with the column), or its sheet's line."""
        asset = self.assets.get((job.collection, job.asset))
        if asset is not None and job.kind != "sheet":
            return asset.location
        file, _, line = job.source.rpartition(":")
        return Location(file, int(line)) if line.isdigit() else Location(job.source)

    # -- stage 1: expand and render ---------------------------------------------------------

    def _resolve_all(self) -> None:
        for coll in self.project.collections:
            base = base_context(coll)
            if coll.sheets:
                try:
                    first = coll.sheets[0][1].location
                    self._count(len(coll.sheets), first, "the sheets of this file take")
                except SpecError as exc:
                    self._collect(exc)
            for tree in coll.assets:
                try:
                    for combo in self._expand(tree):
                        self._add(resolve_asset(coll, tree, combo, self.engine, base))
                except (SpecError, SpecErrors) as exc:
                    self._collect(exc)
                if self.job_count > self.options.max_jobs:
                    raise_collected(self.errors)  # every later asset would pass it too

    def _expand(self, tree: YMap) -> list[Combo]:
        """The matrix combinations of one asset, counted against the job limit.

        Each combination makes one API job per variant and one rendition job per variant
        and rendition. The matrix is expanded only as far as the limit leaves room for,
        so a 100x100x100 typo (or 200 renditions of 100 assets) is refused before a
        million combinations or jobs are built.
        """
        variants = tree.get("variants", 1)
        # Over MAX_VARIANTS is the variants rule's error, not a plan too large.
        images = min(variants, MAX_VARIANTS) if _positive_int(variants) else 1
        renditions = tree.get("renditions")
        per = images * (1 + (len(renditions) if isinstance(renditions, YSeq) else 0))
        room = max(self.options.max_jobs - self.job_count, 0) // per
        combos = expand_matrix(tree, limit=room)
        # Expansion stopped early: the matrix has more combinations than were counted.
        partial = "matrix" in tree and len(combos) > room
        self._count(len(combos) * per, tree.location, "this asset takes", partial=partial)
        return combos

    def _count(self, jobs: int, where: Location, what: str, *, partial: bool = False) -> None:
        """Add ``jobs`` to the plan's count; past ``--max-jobs``, refuse at ``where``."""
        self.job_count += jobs
        if self.job_count > self.options.max_jobs:
            raise SpecError(
                f"the plan has more than {self.options.max_jobs:,} jobs (API jobs, "
                f"renditions and sheets): {what} it to {'at least ' if partial else ''}"
                f"{self.job_count:,}",
                where,
                "each variant of each matrix combination is an API job, plus a job per "
                "rendition; shrink the matrix, variants or renditions, or raise the limit "
                "with --max-jobs (max_jobs in assetpipe.yaml)",
            )

    def _add(self, asset: ResolvedAsset) -> None:
        key = (asset.collection.name, asset.spec.id)
        other = self.assets.get(key)
        if other is None:
            self.assets[key] = asset
            return
        if other.tree is not asset.tree:
            where = f"{other.location.file}:{other.location.line}"
            raise SpecError(
                f"duplicate asset id '{asset.spec.id}' in collection '{key[0]}' "
                f"(first from {where})",
                asset.where("id"),
                "give each asset its own id",
            )
        # One matrix asset whose id does not vary with (some of) its variables.
        differ = [n for n in asset.combo if other.combo.get(n) != asset.combo[n]] or list(
            asset.combo
        )
        first, second = (
            ", ".join(f"{n}={show_value(c.get(n))}" for n in differ)
            for c in (other.combo, asset.combo)
        )
        raw = asset.tree.get("id")
        base = raw if isinstance(raw, str) else asset.spec.id
        suggestion = base + "".join(f"-{{{{ {n} }}}}" for n in differ)
        raise SpecError(
            f"duplicate asset id '{asset.spec.id}' in collection '{key[0]}': the matrix "
            f"combinations {first} and {second} both give it",
            asset.where("id"),
            f'put the matrix variables in the id, e.g. id: "{suggestion}"',
        )

    # -- stage 2: sizes and inputs ----------------------------------------------------------

    def _size(self, key: tuple[str, str]) -> SizePlan:
        known = self.sizes.get(key)
        if known is not None:
            return known
        asset, eff = self.assets[key], self.effective[key]
        rule = eff.model.size_rule
        spec = asset.spec
        if spec.size is not None:
            wh = _parsed(parse_size, spec.size)
            if wh is None or max(wh) > MAX_DELIVERED_SIDE or min(wh) < 1:
                raise SpecError(
                    f"size '{spec.size}' is not a pixel size",
                    asset.where("size"),
                    f"write WxH with sides from 1 to {MAX_DELIVERED_SIDE}, e.g. 1024x1024",
                )
            result = compile_exact(rule, *wh)
        elif spec.aspect is not None:
            ratio = _parsed(parse_aspect, spec.aspect)
            if ratio is None or max(ratio) / min(ratio) > 10:
                raise SpecError(
                    f"aspect '{spec.aspect}' is not a ratio",
                    asset.where("aspect"),
                    'write W:H between 1:10 and 10:1, e.g. "16:9" (quoted in YAML)',
                )
            result = compile_aspect(rule, *ratio)
        elif spec.edit is not None:
            # An edit without size/aspect takes the size of its first input: size that first.
            self._sizing[key] = None
            try:
                first = self._input(asset, spec.edit.images[0], ("edit", "images", 0))
            finally:
                self._sizing.pop(key, None)
            result = compile_exact(rule, first.width, first.height)
        else:
            result = compile_exact(rule, 1024, 1024)
        self.sizes[key] = result
        return result

    def _input(self, asset: ResolvedAsset, ref: EditInput, path: tuple[str | int, ...]) -> InputRef:
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
            if target is None:
                ids = [a for c, a in self.assets if c == cname]
                hint = did_you_mean(m["id"], ids) or (
                    f"assets in '{cname}': {', '.join(ids[:10])}"
                    if ids
                    else f"there is no collection '{cname}'"
                )
                raise SpecError(f"edit input '{ref}' names no asset", where, hint)
            k = int(m["k"] or 1)
            if not 1 <= k <= target.spec.variants:
                raise SpecError(
                    f"'{ref}' asks for variant {k}, but '{m['id']}' has "
                    f"{target.spec.variants} variant(s)",
                    where,
                    f"use #1 to #{target.spec.variants}",
                )
            if target_key == (coll.name, asset.spec.id):
                raise SpecError(
                    f"edit cycle: {job_id(cname, m['id'], k)} edits itself",
                    where,
                    "an asset cannot be built from its own output; edit another asset or a "
                    "{file: ...}",
                )
            if target_key in self._broken:
                raise _AlreadyReported
            if target_key in self._sizing:
                chain = [*list(self._sizing)[list(self._sizing).index(target_key) :], target_key]
                self._broken.update(chain)
                raise cycle_error([f"{c}/{a}" for c, a in chain], where)
            w, h = self._size(target_key).delivered
            return InputRef(
                job=job_id(cname, m["id"], k),
                width=w,
                height=h,
                format=self.effective[target_key].format,
            )
        if isinstance(ref, FileInput):
            return self._file(coll.path.parent / ref.file, ref.file, where)
        if isinstance(ref, BrandInput):
            if coll.brand is None or not coll.brand.logo:
                raise SpecError(
                    "{brand: logo} needs a brand kit with a 'logo'",
                    where,
                    "add logo: path/to/logo.png to the brand kit",
                )
            return self._file(coll.brand_dir / coll.brand.logo, coll.brand.logo, where)
        raise AssertionError(ref)  # pragma: no cover - pydantic admits no other shape

    def _file(self, path: Path, written: str, where: Location) -> InputRef:
        root = self.project.root
        if not inside(path, root):
            raise SpecError(
                f"'{written}' is outside the project folder",
                where,
                "input images must live inside the project",
            )
        display = path.resolve().relative_to(root.resolve()).as_posix()
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

    # -- stage 3: jobs ----------------------------------------------------------------------

    def _jobs_for(self, key: tuple[str, str], asset: ResolvedAsset) -> list[Job]:
        eff = self.effective[key]
        size = self._size(key)
        spec, coll = asset.spec, asset.collection
        model = eff.model
        if len(asset.prompt) > model.max_prompt_chars:
            raise SpecError(
                f"the rendered prompt has {len(asset.prompt):,} characters; "
                f"{model.name} takes at most {model.max_prompt_chars:,}",
                asset.where("template" if spec.template else "prompt"),
                "shorten the prompt or the values it includes",
            )
        inputs: tuple[InputRef, ...] = ()
        mask: InputRef | None = None
        if spec.edit is not None:
            inputs = tuple(
                self._input(asset, ref, ("edit", "images", i))
                for i, ref in enumerate(spec.edit.images)
            )
            if len(inputs) > model.max_input_images:
                raise SpecError(
                    f"{len(inputs)} input images; {model.name} takes at most "
                    f"{model.max_input_images}",
                    asset.where("edit", "images"),
                    f"list at most {model.max_input_images} images (the mask is not one of them)",
                )
            if spec.edit.mask is not None:
                mask = self._input(asset, spec.edit.mask, ("edit", "mask"))
                first = inputs[0]
                if (mask.width, mask.height) != (first.width, first.height):
                    raise SpecError(
                        f"the mask is {mask.width}x{mask.height} but the first image is "
                        f"{first.width}x{first.height}",
                        asset.where("edit", "mask"),
                        "a mask must have the same size as the first input image",
                    )
                _check_mask(mask, model, asset.where("edit", "mask"))
        params = _params(eff, size, spec.edit is not None)
        rw, rh = size.requested
        # The API price even on the preview provider: a dry run should show what the real
        # build would cost. The runner charges preview jobs nothing.
        estimate = model.estimate_cost(eff.quality, rw, rh, len(asset.prompt), len(inputs))
        palette = tuple(coll.brand.colors.values()) if coll.brand else ()
        depends = tuple(
            dict.fromkeys(r.job for r in (*inputs, *((mask,) if mask else ())) if r.job is not None)
        )
        jobs: list[Job] = []
        for k in range(1, spec.variants + 1):
            job = ApiJob(
                id=job_id(coll.name, spec.id, k),
                kind="edit" if spec.edit is not None else "generate",
                collection=coll.name,
                asset=spec.id,
                variant=k,
                model=model.name,
                provider=self.options.provider,
                prompt=asset.prompt,
                params=params,
                size=size.delivered,
                requested_size=size.requested,
                output_path=output_path(coll.name, spec.id, k, None, eff.format),
                source=asset.source,
                depends_on=depends,
                inputs=inputs,
                mask=mask,
                estimated_cost_usd=estimate,
                palette=palette,
                tags=tuple(spec.tags),
                keep_original=spec.keep_original,
            )
            if not depends:
                job = _with_key(
                    job, [i.sha256 or "" for i in inputs], mask.sha256 if mask else None
                )
            jobs.append(job)
            jobs.extend(self._renditions(asset, job, eff))
        return jobs

    def _renditions(
        self, asset: ResolvedAsset, source: ApiJob, eff: Effective
    ) -> list[RenditionJob]:
        out: list[RenditionJob] = []
        seen: set[str] = set()
        for i, r in enumerate(asset.spec.renditions):
            wh = _parsed(parse_size, r.size)
            if wh is None or max(wh) > MAX_DELIVERED_SIDE:
                raise SpecError(
                    f"rendition size '{r.size}' is not a pixel size",
                    asset.where("renditions", i, "size"),
                    "write WxH, e.g. 256x256",
                )
            fmt = r.format or eff.format
            op = RenditionOp(
                width=wh[0], height=wh[1], fit=r.fit, format=fmt, compression=r.compression
            )
            path = output_path(source.collection, source.asset, source.variant, wh, fmt)
            if path in seen or path == source.output_path:
                raise SpecError(
                    f"rendition {r.size} {fmt} is listed twice",
                    asset.where("renditions", i),
                    "keep one of them",
                )
            seen.add(path)
            out.append(
                RenditionJob(
                    id=f"{source.id}@{wh[0]}x{wh[1]}" + ("" if fmt == eff.format else f".{fmt}"),
                    collection=source.collection,
                    asset=source.asset,
                    variant=source.variant,
                    model=source.model,
                    provider=source.provider,
                    prompt=source.prompt,
                    size=wh,
                    output_path=path,
                    source=source.source,
                    depends_on=(source.id,),
                    op=op,
                    palette=source.palette,
                    tags=source.tags,
                )
            )
        return out


def _parsed(parse: Callable[[str], tuple[int, int] | None], text: str) -> tuple[int, int] | None:
    """``parse(text)``, or None where int() refuses what str.isdigit() let through
    (``"²x²"``, a side of 5,000 digits)."""
    try:
        return parse(text)
    except ValueError:
        return None


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _params(eff: Effective, size: SizePlan, is_edit: bool) -> Mapping[str, ParamValue]:
    w, h = size.requested
    params: dict[str, ParamValue] = {
        "size": f"{w}x{h}",
        "quality": eff.quality,
        "background": eff.background,
        "output_format": eff.format,
        "n": 1,
    }
    if eff.compression is not None:
        params["output_compression"] = eff.compression
    if eff.moderation is not None:
        params["moderation"] = eff.moderation
    if is_edit and eff.input_fidelity is not None:
        params["input_fidelity"] = eff.input_fidelity
    return params


def _with_key(job: ApiJob, input_shas: Sequence[str], mask_sha: str | None) -> ApiJob:
    return replace(job, cache_key=api_cache_key(job, input_shas, mask_sha))


def _check_mask(mask: InputRef, model: ModelInfo, where: Location) -> None:
    """The API takes a PNG mask under the model's size limit; say so before paying."""
    if mask.format != "png":
        raise SpecError(
            f"the mask is {mask.format or 'not a PNG'}; a mask is a PNG",
            where,
            "save it as PNG, with alpha 0 where the image may change",
        )
    if mask.bytes is not None and mask.bytes > model.max_mask_bytes:
        raise SpecError(
            f"the mask is {mask.bytes:,} bytes; {model.name} takes masks under "
            f"{model.max_mask_bytes:,}",
            where,
            "a mask needs only its alpha channel: save it as a small PNG (e.g. 1-bit alpha)",
        )


class _AlreadyReported(Exception):
    """An asset depends on an edit cycle whose error is already collected: report no more."""
