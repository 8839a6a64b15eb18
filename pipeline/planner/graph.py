"""The planner: a pure function from loaded specs to a job graph.

Loading, rendering and checking happen here, with no network and no writes; the only
input besides the specs is ``read_file``, which the composition root injects to hash
and measure referenced image files. The result is a printable value: ``assetpipe plan``
shows it and tests assert on it with plain data.

This module runs the stages in order and collects their errors, so one run reports
every broken asset: resolving the assets (:mod:`~pipeline.planner.assets`), their
effective settings (:mod:`~pipeline.planner.settings`), sizes and edit inputs
(:mod:`~pipeline.planner.inputs`), each asset's jobs (:mod:`~pipeline.planner.asset_jobs`)
and sheets (:mod:`~pipeline.planner.sheets`), then the checks across the whole graph.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from pipeline.catalog import Catalog, ModelPolicy
from pipeline.collecting import no_collections
from pipeline.errors import Location, SpecError, SpecErrors, printable, raise_collected
from pipeline.jobs import PALETTE_SKIPPED, ApiJob, Job, Plan, PlanWarning, topological
from pipeline.jobs.wire import RequestFormat
from pipeline.planner.asset_jobs import JobShapes, asset_jobs
from pipeline.planner.assets import AssetKey, resolve_assets
from pipeline.planner.inputs import AlreadyReported, FileFacts, FileReader, InputResolver
from pipeline.planner.order import check_cycles
from pipeline.planner.paths import output_path_errors
from pipeline.planner.resolve import ResolvedAsset
from pipeline.planner.settings import Effective, ProviderRules, effective_settings
from pipeline.planner.sheets import sheet_jobs
from pipeline.spec.loader import Project
from pipeline.spec.lock import LOCK_FILE, Lock, Pick
from pipeline.templating import TemplateEngine

__all__ = ["DEFAULT_MAX_JOBS", "PALETTE_SKIPPED", "FileFacts", "FileReader", "PlanOptions", "plan"]

DEFAULT_MAX_JOBS = 10_000
MAX_ERRORS = 50
PREVIEW_PROVIDER = "preview"
"""The built-in provider that draws placeholders instead of calling an API."""


@dataclass(frozen=True, slots=True)
class PlanOptions:
    """What a plan depends on besides the specs."""

    catalog: Catalog
    """The provider's model table (with the project's price overrides)."""
    request_format: RequestFormat
    """From the provider's registry entry: how it words a request, which options it takes."""
    provider: str = "preview"
    model_policy: ModelPolicy = "catalog"
    """From the provider's registry entry: how a spec's model name is read."""
    model: str | None = None
    today: dt.date = field(default_factory=dt.date.today)
    max_jobs: int = DEFAULT_MAX_JOBS
    lock: Lock = field(default_factory=Lock)
    """``assetpipe.lock``: approved variants (delivered at the asset's own path) and rerolls."""
    placeholders: bool | None = None
    """From the provider's registry entry (``free``): whether it draws placeholders, on
    which the build skips the palette check; None: only ``preview`` does."""

    @property
    def draws_placeholders(self) -> bool:
        """Whether the provider's images are placeholders (the build checks no palette)."""
        if self.placeholders is None:
            return self.provider == PREVIEW_PROVIDER
        return self.placeholders


def plan(
    project: Project, engine: TemplateEngine, options: PlanOptions, read_file: FileReader
) -> Plan:
    """Expand, render and check every asset of ``project`` into a job graph."""
    with no_collections():
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
        self.assets: dict[AssetKey, ResolvedAsset] = {}
        self.effective: dict[AssetKey, Effective] = {}
        self.picks = options.lock.picks  # made from every entry: once, not per asset

    def _collect(self, exc: SpecError | SpecErrors) -> None:
        """Keep errors to report with the others (one asset may have several); the same
        text at the same place once."""
        for error in exc.errors if isinstance(exc, SpecErrors) else (exc,):
            if all(e.render() != error.render() for e in self.errors):
                self.errors.append(error)
        if len(self.errors) >= MAX_ERRORS:
            raise_collected(self.errors)

    def run(self) -> Plan:
        options = self.options
        # Every stage runs on what the stages before it could make sense of, so one run
        # reports every mistake of every spec; only a plan over --max-jobs stops at once.
        # Files that did not load at all (a YAML error) are reported first, with the rest.
        for error in self.project.errors:
            self._collect(error)
        resolved = resolve_assets(self.project, self.engine, options.max_jobs, self._collect)
        if resolved.over_limit:
            raise_collected(self.errors)
        failed = resolved.failed
        self.assets = resolved.assets
        unusable: set[AssetKey] = set()
        rules = ProviderRules(
            options.provider, options.catalog, options.model_policy, options.request_format
        )
        # The combinations of a matrix asset that share a shape (the same spec but the id)
        # share their settings: worked out once, unless they depend on the prompt (a
        # chroma key color). Their warnings would repeat the first one's, which is kept.
        by_shape: dict[int, Effective] = {}
        for key, asset in self.assets.items():
            shape = asset.shape
            known = by_shape.get(id(shape)) if shape is not None else None
            if known is not None:
                self.effective[key] = known
                continue
            try:
                eff = effective_settings(asset, rules, options.model, options.today, self.warnings)
            except (SpecError, SpecErrors) as exc:
                unusable.add(key)
                self._collect(exc)
                continue
            self.effective[key] = eff
            if eff.chroma is None:
                by_shape[id(asset.base)] = eff
        self.assets = {k: a for k, a in self.assets.items() if k not in unusable}
        inputs = InputResolver(
            self.project.root,
            self.assets,
            self.effective,
            self.read_file,
            options.lock,
            self.warnings,
            unknown_ok=failed | self.project.unloaded | {c for c, _ in unusable},
        )
        jobs: list[Job] = []
        shapes = JobShapes()
        for key, asset in self.assets.items():
            if key in inputs.broken:
                continue
            try:
                pick = self._pick(key, inputs.variants(key)) if self.picks else None
                jobs.extend(asset_jobs(asset, self.effective[key], inputs, rules, pick, shapes))
            except (SpecError, SpecErrors) as exc:
                self._collect(exc)
            except AlreadyReported:
                continue
        for coll in self.project.collections:
            if coll.sheets and coll.name not in failed:
                mine = [job for job in jobs if job.collection == coll.name]
                try:
                    jobs.extend(sheet_jobs(coll, mine, options.provider))
                except SpecError as exc:
                    self._collect(exc)
        raise_collected(self.errors)
        for error in output_path_errors(jobs, self._job_location):
            self._collect(error)
        raise_collected(self.errors)
        check_cycles(jobs, self.assets)
        self._palette_note(jobs)
        # One warning per place: a deprecated model in `defaults:` is said once, not per asset.
        warnings = tuple(dict.fromkeys(self.warnings))
        return Plan(jobs=tuple(topological(jobs)), warnings=warnings)

    def _palette_note(self, jobs: list[Job]) -> None:
        """On a provider that draws placeholders (``preview``) the build skips the brand
        palette check, since a placeholder's colors say nothing of the brand; said once, so
        a clean preview build is not read as a palette that passed."""
        if not self.options.draws_placeholders:
            return
        if any(isinstance(job, ApiJob) and job.palette for job in jobs):
            self.warnings.append(PlanWarning(PALETTE_SKIPPED, None))

    def _pick(self, key: AssetKey, variants: int) -> Pick | None:
        """The asset's pick in the lock. One naming a variant the spec does not have (a
        hand-edited lock, or fewer variants since) still delivers the image the lock names,
        as every pick does until someone picks again; a warning says what to run."""
        if not self.picks:
            return None
        name = "/".join(key)
        pick = self.picks.get(name)
        if pick is not None and pick.variant > variants:
            self.warnings.append(_pick_beyond_variants(printable(name), pick.variant, variants))
        return pick

    def _job_location(self, job: Job) -> Location:
        """Where a job comes from: its asset (with the column), or its sheet's line."""
        asset = self.assets.get((job.collection, job.asset))
        if asset is not None and job.kind != "sheet":
            return asset.location
        file, _, line = job.source.rpartition(":")
        return Location(file, int(line)) if line.isdigit() else Location(job.source)


def _pick_beyond_variants(name: str, picked: int, variants: int) -> PlanWarning:
    """The lock picks variant ``picked`` of ``name``, which has only ``variants``: say so,
    and what to run (the pick stays valid, so planning and ``pick`` itself go on)."""
    have = f"{variants} variant{'s' if variants > 1 else ''}"
    choose = f"{name}#1`" if variants == 1 else f"{name}#K` (K from 1 to {variants})"
    return PlanWarning(
        f"{name}: the lock names variant {picked}, but the spec has only {have}; approve "
        f"one of them with `assetpipe pick {choose} or drop the pick with `assetpipe "
        f"unpick {name}` (until then builds deliver the image the lock names)",
        Location(LOCK_FILE),
    )
