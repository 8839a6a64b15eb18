"""Rerolling what fails the quality gate: more variants of a failing asset, the best delivered.

After a judged build, each selected asset whose every variant failed its ``expect`` (and
that no person picked: a pick in ``assetpipe.lock`` always wins, so a picked asset is
never rerolled) gets one more variant, up to ``qa.rerolls``. Each round first reserves
what the new variant may cost (the image's estimate plus, when the asset has a rubric,
one judge call's) against what is left of ``--max-cost``; a reroll that does not fit is
not made, no later one either, and the build exits 3. Then the count is recorded
(:mod:`~pipeline.api.judged`), the project is planned again (the new variant is a new
job with its own cache key; the variants already made are untouched and come from the
cache) and built with the budget reduced by what was spent so far, and judged.

When an asset's rerolls are settled, its best variant (passing first, then the higher
score, then the lower variant) is recorded as the winner, and a last pass delivers it at
the asset's own path, every variant at its numbered ``.vK`` path. A rebuild plans the
same variants and the same winner from the record, and pays for nothing.
"""

from __future__ import annotations

import glob
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from pipeline.api.judged import (
    JudgedAsset,
    VariantScore,
    best_variant,
    read_judged,
    variant_score,
    write_judged,
)
from pipeline.api.qa import expectations, judge_estimate
from pipeline.api.results import BuildResult
from pipeline.api.sealing import user_sealer
from pipeline.api.workspace import Workspace, open_workspace
from pipeline.errors import EXIT_BUDGET, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_PENDING
from pipeline.jobs import ApiJob, Plan, select
from pipeline.output import Manifest, load_manifest
from pipeline.runner.outcome import Outcome
from pipeline.spec.lock import read_lock
from pipeline.spec.models import Expect

log = logging.getLogger("assetpipe.qa")

Run = Callable[[Workspace], BuildResult]
_BUILT = frozenset({"generated", "cached"})


def reroll_failing(ws: Workspace, first: BuildResult, run: Run) -> BuildResult:
    """Reroll the selected assets that fail the gate, within ``qa.rerolls`` and the
    budget, and deliver each one's best variant; ``run`` builds a planned workspace
    (without rerolling). Returns the build's result over all its passes."""
    qa = ws.settings.qa
    if qa is None or not qa.rerolls or ws.request is None:
        return first
    if first.exit_code in (EXIT_BUDGET, EXIT_INTERRUPTED, EXIT_PENDING):
        return first
    expected = expectations(ws)
    selected = sorted(
        {(j.collection, j.asset) for j in ws.plan.jobs if isinstance(j, ApiJob)} & set(expected)
    )
    if not selected:
        return first
    settings, sealer = ws.settings, user_sealer()
    picked = read_lock(settings.root).picks
    spent = _spent(first, load_manifest(settings.output_dir))
    results, current, refused = [first], ws, False
    for _round in range(qa.rerolls + 2):
        manifest = load_manifest(settings.output_dir)
        records = read_judged(settings.cache_dir, sealer)
        scores = _scores(current.full_plan, manifest, expected, selected)
        updated = dict(records)
        for name, record in records.items():
            best = best_variant(scores.get(name, ()))
            if best is not None and record.rerolls:
                updated[name] = _won(record, best)
        failing = [
            name
            for name in sorted(scores)
            if name not in picked
            and _fails(scores[name])
            and records.get(name, JudgedAsset(0)).rerolls < qa.rerolls
        ]
        remaining = None if settings.max_cost is None else settings.max_cost - spent
        for name in [] if refused else failing:
            cost = _reroll_cost(ws, current.full_plan, name, expected)
            if remaining is not None and cost > remaining + 1e-9:
                log.warning(
                    "%s fails the quality gate, but another variant and its judging "
                    "(~$%.4f) would pass --max-cost ($%.4f left); not rerolled",
                    name,
                    cost,
                    max(remaining, 0.0),
                )
                refused = True
                break
            if remaining is not None:
                remaining -= cost
            record = updated.get(name, JudgedAsset(0))
            best = best_variant(scores[name])
            if best is not None and not record.rerolls:
                record = _won(record, best)
            updated[name] = replace(record, rerolls=record.rerolls + 1)
            log.info("%s fails the gate: reroll %d of %d", name, record.rerolls + 1, qa.rerolls)
        if updated == records:
            break  # the last pass delivered what the records say
        if not write_judged(settings.cache_dir, updated, sealer):
            log.warning(
                "cannot record rerolls without a per-user key in the state folder; "
                "failing assets are not rerolled"
            )
            break
        left = None if settings.max_cost is None else max(settings.max_cost - spent, 0.0)
        current = _replan(ws, selected, left)
        result = run(current)
        spent += _spent(result, load_manifest(settings.output_dir))
        results.append(result)
        if result.exit_code in (EXIT_BUDGET, EXIT_INTERRUPTED, EXIT_PENDING):
            break
    return _combined(results, refused)


def _scores(
    plan: Plan,
    manifest: Manifest,
    expected: Mapping[tuple[str, str], Expect],
    selected: Sequence[tuple[str, str]],
) -> dict[str, list[VariantScore]]:
    """Each selected asset's variants as the manifest judged them, by ``collection/asset``."""
    wanted = set(selected)
    out: dict[str, list[VariantScore]] = {}
    for job in plan.jobs:
        key = (job.collection, job.asset)
        if not isinstance(job, ApiJob) or key not in wanted:
            continue
        entry = manifest.entries.get(job.output_path)
        if entry is None or not entry.sha256:
            continue
        expect = expected[key]
        score = variant_score(entry, expect.shows is not None, expect.text is not None)
        out.setdefault("/".join(key), []).append(replace(score, variant=job.variant))
    return out


def _fails(scores: Sequence[VariantScore]) -> bool:
    """No variant passed, and the last one made failed outright (a check that could not
    run, such as a judge's outage, is no reason to pay for another image)."""
    if not scores or any(s.passed is True for s in scores):
        return False
    return max(scores, key=lambda s: s.variant).passed is False


def _won(record: JudgedAsset, best: VariantScore) -> JudgedAsset:
    return replace(
        record,
        winner=best.variant,
        score=None if best.score is None else round(best.score, 4),
        sha256=best.sha256,
        cache_key=best.cache_key,
        format=best.format,
    )


def _reroll_cost(
    ws: Workspace, plan: Plan, name: str, expected: Mapping[tuple[str, str], Expect]
) -> float:
    """What one more variant of ``name`` may cost at list prices: its image (nothing on a
    provider that draws placeholders) and, with a rubric, one judge call."""
    collection, _, asset = name.rpartition("/")
    image = max(
        (
            j.estimated_cost_usd
            for j in plan.jobs
            if isinstance(j, ApiJob) and j.collection == collection and j.asset == asset
        ),
        default=0.0,
    )
    if ws.settings.provider_entry.free:
        image = 0.0
    shows = expected[(collection, asset)].shows is not None
    return image + (judge_estimate(ws.settings.qa, 1) if shows else 0.0)


def _replan(ws: Workspace, selected: Sequence[tuple[str, str]], budget: float | None) -> Workspace:
    """The project planned again (the records changed) with the same assets selected,
    every variant of each, and ``budget`` as ``--max-cost``. An ``--only`` names jobs, and a
    reroll is a job no pattern named: the selection is by asset instead."""
    assert ws.request is not None  # noqa: S101 - the caller checked
    request = replace(ws.request, only=(), paths=(), shard=None)
    fresh = open_workspace(request, reuse=True, store_plan=True)
    names = [glob.escape(f"{c}/{a}") for c, a in selected]
    patterns = [p for name in names for p in (name, f"{name}#*")]
    return replace(
        fresh,
        plan=select(fresh.full_plan, patterns),
        settings=replace(fresh.settings, max_cost=budget),
        plan_digest=None,
    )


def _spent(result: BuildResult, manifest: Manifest) -> float:
    """What one pass paid: its images, and the judge calls it sent (a verdict the memo
    kept is recorded ``cached`` at no cost)."""
    judged = 0.0
    for entry in manifest.entries.values():
        if entry.job not in result.report.outcomes:
            continue
        for check in entry.checks or ():
            cost = check.get("cost_usd")
            if check.get("name") == "qa" and not check.get("cached") and isinstance(cost, float):
                judged += cost
    return result.report.spent_usd + judged


def _combined(results: Sequence[BuildResult], refused: bool) -> BuildResult:
    """One result for every pass: the last pass's jobs (each with the status of the pass
    that made it), what all of them spent and took, and exit 3 when a reroll did not fit."""
    last = results[-1]
    outcomes: dict[str, Outcome] = dict(last.report.outcomes)
    for earlier in results[:-1]:
        for job_id, outcome in earlier.report.outcomes.items():
            now = outcomes.get(job_id)
            if now is not None and now.status == "up-to-date" and outcome.status in _BUILT:
                outcomes[job_id] = replace(now, status=outcome.status)
    report = replace(
        last.report,
        outcomes=outcomes,
        spent_usd=sum(r.report.spent_usd for r in results),
        elapsed_s=sum(r.report.elapsed_s for r in results),
        budget_hit=last.report.budget_hit or refused,
    )
    code = last.exit_code
    if refused and code in (EXIT_OK, EXIT_FAILED):
        code = EXIT_BUDGET
    return replace(last, report=report, exit_code=code)
