"""Planning, stage one: every asset of the project, expanded, rendered and counted.

Each asset's matrix is expanded and each combination resolved (see
:mod:`pipeline.planner.resolve`) into one asset keyed by ``(collection, id)``. Two kinds
of mistake are caught here, before anything is sized or built: a plan larger than
``--max-jobs``, refused while the matrix is expanded so a typo never builds a million
combinations, and two assets (or two combinations of one matrix asset) with one id.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import Location, SpecError, SpecErrors
from pipeline.planner.matrix import Combo, expand_matrix, show_value
from pipeline.planner.resolve import (
    AssetMemo,
    BrandReader,
    ResolvedAsset,
    base_context,
    resolve_asset,
)
from pipeline.spec.brand import read_brand_file
from pipeline.spec.loader import Collection, Project
from pipeline.spec.models import MAX_VARIANTS, BrandKit
from pipeline.spec.yamlsource import YMap, YSeq
from pipeline.templating import TemplateEngine

AssetKey = tuple[str, str]
"""An asset's ``(collection, id)``: unique within a plan."""

Collect = Callable[[SpecError | SpecErrors], None]
"""Keeps an error to report with the others (and stops when there are too many)."""


@dataclass(frozen=True, slots=True)
class Resolved:
    """The assets that resolved, the collections where one did not, and whether the plan
    went over ``--max-jobs`` (then the expansion stopped, and so does planning)."""

    assets: dict[AssetKey, ResolvedAsset]
    failed: frozenset[str]
    over_limit: bool


def resolve_assets(
    project: Project, engine: TemplateEngine, max_jobs: int, collect: Collect
) -> Resolved:
    """Every asset of ``project``, one per matrix combination, by ``(collection, id)``.

    A broken asset's errors go to ``collect`` and the others are still resolved, so one
    run reports them all; past ``max_jobs`` the expansion stops (every later asset would
    pass the limit too) with that error collected.
    """
    state = _Assets(engine, max_jobs, collect)
    found = state.resolve(project)
    return Resolved(found, frozenset(state.failed), state.job_count > max_jobs)


class _Assets:
    def __init__(self, engine: TemplateEngine, max_jobs: int, collect: Collect):
        self.engine = engine
        self.max_jobs = max_jobs
        self.collect = collect
        self.assets: dict[AssetKey, ResolvedAsset] = {}
        self.job_count = 0  # API jobs, renditions and sheets counted so far
        self.failed: set[str] = set()
        self.brands: dict[Path, tuple[BrandKit, Path]] = {}
        self.root = Path()

    def resolve(self, project: Project) -> dict[AssetKey, ResolvedAsset]:
        self.root = project.root
        for coll in project.collections:
            base = base_context(coll)
            if coll.sheets:
                try:
                    first = coll.sheets[0][1].location
                    self._count(len(coll.sheets), first, "the sheets of this file take")
                except SpecError as exc:
                    self.collect(exc)
            for tree in coll.assets:
                try:
                    read_brand = self._brand_reader(coll)
                    memo = AssetMemo(tree)
                    for combo in self._expand(tree):
                        self._add(
                            resolve_asset(coll, tree, combo, self.engine, base, read_brand, memo)
                        )
                except (SpecError, SpecErrors) as exc:
                    self.failed.add(coll.name)
                    self.collect(exc)
                if self.job_count > self.max_jobs:
                    return self.assets  # the limit's error is collected: stop here
        return self.assets

    def _brand_reader(self, coll: Collection) -> BrandReader:
        """Reads an asset's own brand file relative to ``coll``'s spec, each file once."""

        def read(written: str, where: Location) -> tuple[BrandKit, Path]:
            path = coll.path.parent / written
            known = self.brands.get(path)
            if known is None:
                kit, folder, _ = read_brand_file(path, written, self.root, where)
                known = self.brands[path] = (kit, folder)
            return known

        return read

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
        room = max(self.max_jobs - self.job_count, 0) // per
        combos = expand_matrix(tree, limit=room)
        # Expansion stopped early: the matrix has more combinations than were counted.
        partial = "matrix" in tree and len(combos) > room
        self._count(len(combos) * per, tree.location, "this asset takes", partial=partial)
        return combos

    def _count(self, jobs: int, where: Location, what: str, *, partial: bool = False) -> None:
        """Add ``jobs`` to the plan's count; past ``--max-jobs``, refuse at ``where``."""
        self.job_count += jobs
        if self.job_count > self.max_jobs:
            raise SpecError(
                f"the plan has more than {self.max_jobs:,} jobs (API jobs, "
                f"renditions and sheets): {what} it to {'at least ' if partial else ''}"
                f"{self.job_count:,}",
                where,
                "each variant of each matrix combination is an API job, plus a job per "
                "rendition; shrink the matrix, variants or renditions, or raise the limit "
                "with --max-jobs (max_jobs in assetpipe.yaml)",
            )

    def _add(self, asset: ResolvedAsset) -> None:
        key = (asset.collection.name, asset.id)
        other = self.assets.get(key)
        if other is None:
            self.assets[key] = asset
            return
        if other.tree is not asset.tree:
            where = f"{other.location.file}:{other.location.line}"
            raise SpecError(
                f"duplicate asset id '{asset.id}' in collection '{key[0]}' (first from {where})",
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
        base = raw if isinstance(raw, str) else asset.id
        suggestion = base + "".join(f"-{{{{ {n} }}}}" for n in differ)
        raise SpecError(
            f"duplicate asset id '{asset.id}' in collection '{key[0]}': the matrix "
            f"combinations {first} and {second} both give it",
            asset.where("id"),
            f'put the matrix variables in the id, e.g. id: "{suggestion}"',
        )


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
