"""What a build would do, without doing it: each job's state, and ``assetpipe check``.

Kept apart from :mod:`~pipeline.api.workspace` (loading and planning) so that a build
with nothing to do never loads the cache index, the batch journal or the review rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pipeline.api.approval import ReviewProblem, review_problems
from pipeline.api.qa_status import QaProblem, qa_problems
from pipeline.api.stores import lookup_store, shared_cache_problem
from pipeline.api.workspace import Request, Workspace, open_workspace
from pipeline.output import Manifest, OutputTree, load_manifest
from pipeline.runner.freshness import JobState, assess
from pipeline.runner.journal import Journal


def job_states(ws: Workspace, manifest: Manifest | None = None) -> dict[str, JobState]:
    """Each selected job's state against the output manifest (read here unless given)
    and the cache."""
    return assess_workspace(ws, manifest).states


@dataclass(frozen=True, slots=True)
class Assessed:
    """Each selected job's state, and whether the shared cache could be read for it."""

    states: dict[str, JobState]
    shared_cache: str | None = None
    """The shared cache's URL, when one is configured."""
    shared_cache_problem: str | None = None
    """Why it could not be relied on (then ``cached`` may be missing from the states)."""


def assess_workspace(ws: Workspace, manifest: Manifest | None = None) -> Assessed:
    """:func:`job_states`, with what ``plan --json`` says of the shared cache."""
    tree = OutputTree(ws.settings.output_dir)
    if manifest is None:
        manifest = load_manifest(tree.root)
    pending = Journal(ws.settings.cache_dir).pending_keys()
    with lookup_store(ws.settings) as cache:
        signing = ws.settings.signing.fingerprint if ws.settings.signing is not None else None
        states = assess(ws.plan, manifest, cache, tree, pending, signing)
        problem = shared_cache_problem(cache)
    return Assessed(states, ws.settings.remote_cache, problem)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What a build would change: job ids by status (empty when all is up to date)."""

    pending: Mapping[str, str]
    total: int
    review: tuple[ReviewProblem, ...] = ()
    """Assets with several variants and no current pick (``--require-review``)."""
    stale: tuple[str, ...] = ()
    """Files in the output tree that the manifest records but no job makes any more
    (``--stale``; ``build --prune`` removes them)."""
    qa: tuple[QaProblem, ...] = ()
    """Assets whose delivered image fails its ``expect`` (with the quality gate on)."""


def check(req: Request) -> CheckResult:
    """Whether a build would change anything (no network, no writes), and which assets
    still need a pick."""
    ws = open_workspace(req, credentials=False, reuse=True)
    tree = OutputTree(ws.settings.output_dir)
    manifest = load_manifest(tree.root)  # read once, for the states and the stale files
    states = job_states(ws, manifest)
    pending = {jid: s.status for jid, s in states.items() if s.status != "up-to-date"}
    review = tuple(review_problems(ws.settings.root, ws.full_plan, states))
    produced = {job.output_path for job in ws.full_plan.jobs}
    stale = tuple(
        sorted(
            path
            for path, entry in manifest.entries.items()
            if path not in produced and entry.sha256 and tree.exists(path)
        )
    )
    qa = qa_problems(ws, manifest) if ws.settings.qa is not None else ()
    return CheckResult(pending=pending, total=len(states), review=review, stale=stale, qa=qa)
