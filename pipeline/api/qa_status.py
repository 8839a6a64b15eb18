"""What the quality gate says without running: the judging a build would pay for
(``plan``) and the assets whose delivered image fails its checks (``check --qa``).

Neither sends anything nor writes anything. ``plan`` prices only the images whose verdict
the memo does not keep (a rebuild judges nothing again, so it costs nothing); ``check``
reads the ``text`` and ``qa`` checks the last build recorded in the manifest, for the
image at each asset's own path (the one delivered: variant 1, the pick, or the judge's
winner among rerolls), so a CI step can stop on an asset that does not show what it must.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.api.stores import local_store
from pipeline.api.workspace import Workspace
from pipeline.jobs import ApiJob, PinnedJob
from pipeline.output import Manifest
from pipeline.runner.freshness import JobState
from pipeline.spec.models import Expect


@dataclass(frozen=True, slots=True)
class JudgingEstimate:
    """The judge calls a build would make, and what they would cost at list prices."""

    model: str
    images: int
    """Images a build would judge (no verdict kept for them yet)."""
    judged: int
    """Images whose verdict the memo keeps: judged again for nothing."""
    cost_usd: float

    def as_dict(self) -> dict[str, Any]:
        """``plan --json``'s ``totals.judging``."""
        return {
            "model": self.model,
            "images": self.images,
            "judged": self.judged,
            "estimated_cost_usd": round(self.cost_usd, 6),
        }


def judging_estimate(
    ws: Workspace, states: Mapping[str, JobState], factor: float = 1.0
) -> JudgingEstimate | None:
    """What judging the selected plan would cost (None with the gate off) at ``factor`` of
    the judge's list prices (0.5: ``build --batch`` judges through the Batch API). An
    image whose bytes are not known yet (to generate) is priced; one whose verdict is kept
    is not. Rerolls are not priced: whether they happen depends on verdicts not given yet."""
    qa = ws.settings.qa
    if qa is None:
        return None
    # The gate's modules (the judge, its batches, OCR) load only for a project that has one.
    from pipeline.api.qa import expectations, judge_estimate, kept_verdict  # noqa: PLC0415

    expected = expectations(ws)
    images = judged = 0
    with local_store(ws.settings) as local:
        for job in ws.plan.jobs:
            expect = _expect(job, expected)
            if expect is None or expect.shows is None:
                continue
            state = states.get(job.id)
            sha = state.sha256 if state is not None else None
            if sha and kept_verdict(local.memo, sha, expect, qa) is not None:
                judged += 1
            else:
                images += 1
    return JudgingEstimate(qa.model, images, judged, judge_estimate(qa, images) * factor)


@dataclass(frozen=True, slots=True)
class QaProblem:
    """An asset ``check --qa`` stops on, and why."""

    asset: str
    path: str
    problem: str


def qa_problems(ws: Workspace, manifest: Manifest) -> tuple[QaProblem, ...]:
    """The assets whose delivered image failed a check, or was never checked, by the
    manifest (an asset not built yet is the pending list's business, not this one's)."""
    if ws.settings.qa is None:
        return ()
    from pipeline.api.qa import expectations  # noqa: PLC0415 - only with the gate on

    expected = expectations(ws)
    problems: list[QaProblem] = []
    for job in ws.plan.jobs:
        expect = _expect(job, expected)
        if expect is None or job.id != f"{job.collection}/{job.asset}":
            continue  # only the image at the asset's own path is what ships
        entry = manifest.entries.get(job.output_path)
        if entry is None or not entry.sha256:
            continue
        checks = {c.get("name"): c for c in entry.checks or ()}
        for name, wanted in (("text", expect.text), ("qa", expect.shows)):
            if wanted is None:
                continue
            problem = _problem(name, checks.get(name), expect)
            if problem is not None:
                problems.append(QaProblem(job.id, job.output_path, problem))
    return tuple(problems)


def _expect(job: object, expected: Mapping[tuple[str, str], Expect]) -> Expect | None:
    if not isinstance(job, ApiJob | PinnedJob):
        return None
    return expected.get((job.collection, job.asset))


def _problem(name: str, check: Mapping[str, Any] | None, expect: Expect) -> str | None:
    """Why one recorded check fails the asset, or None when it passed."""
    if check is None:
        what = "its text was not checked" if name == "text" else "it was not judged"
        return f"{what}; run assetpipe build --qa"
    if check.get("ok") is True:
        return None
    if check.get("detail"):
        return f"{name} check could not run: {check['detail']}"
    if name == "text":
        return f"its text reads {check.get('read')!r}, not {check.get('expected')!r}"
    score = check.get("score")
    reasons = "; ".join(str(r) for r in check.get("reasons") or ())
    scored = f"{score:.2f}" if isinstance(score, int | float) else "?"
    return f"scored {scored} (min {expect.min_score:g})" + (f": {reasons}" if reasons else "")
