"""Approvals in ``assetpipe.lock``: the changes a reviewer makes, and what is still unseen.

The command line (``pick``, ``unpick``) and the review page (pick, reject, reroll) change
the lock through the functions here, so each change is one locked step
(:func:`~pipeline.spec.lock.update_lock`) whichever of them makes it, and a check such as
"is there a pick to remove?" is made on the lock as it is when the change is written.

``check --require-review`` asks :func:`review_problems` which assets still need a
person's eye; it reads the lock once, without loading anything twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import UsageError
from pipeline.jobs import ApiJob, Plan
from pipeline.runner.freshness import JobState
from pipeline.spec.lock import MAX_REROLLS, Lock, Pick, picked, read_lock, update_lock

if TYPE_CHECKING:
    pass


@dataclass(frozen=True, slots=True)
class ReviewProblem:
    """An asset ``check --require-review`` stops on, and why."""

    asset: str
    problem: str


class VariantRequired(UsageError):
    """``pick collection/asset`` (no ``#K``) of an asset with several variants.

    Approving variant 1 because nobody said otherwise would ship an image no one chose,
    so the command stops and lists the choices (``choices``: each variant's
    ``collection/asset#K`` and the file to look at) for the person to name one."""

    def __init__(self, asset: str, choices: Sequence[tuple[str, str]]):
        self.asset = asset
        self.choices = tuple(choices)
        super().__init__(
            f"{asset} has {len(self.choices)} variants; name the one to approve: "
            f"assetpipe pick {asset}#K"
        )


def record_pick(root: Path, asset: str, pick: Pick) -> None:
    """Make ``pick`` the approved variant of ``asset`` (its rejection, if any, lifted)."""
    update_lock(root, lambda lock: picked(lock, asset, pick))


def drop_pick(root: Path, asset: str) -> None:
    """Forget the pick of ``asset``, keeping its rerolls and rejections (UsageError when it
    has no pick as the lock is now)."""

    def change(lock: Lock) -> Lock:
        entry = lock.entry(asset)
        if entry.pick is None:
            listed = ", ".join(sorted(lock.picks)) or "none"
            raise UsageError(f"{asset} has no pick to remove; picked assets: {listed}")
        return lock.with_entry(asset, replace(entry, pick=None))

    update_lock(root, change)


def set_rejected(root: Path, asset: str, variant: int, rejected: bool) -> None:
    """Set ``variant`` of ``asset`` aside, or restore it; the picked variant (as the lock
    is now) cannot be set aside."""

    def change(lock: Lock) -> Lock:
        entry = lock.entry(asset)
        if rejected and entry.pick is not None and entry.pick.variant == variant:
            raise UsageError(
                f"{asset}#{variant} is the picked variant; pick another one (or unpick) "
                "before rejecting it"
            )
        kept = set(entry.rejected) - {variant}
        marked = tuple(sorted(kept | {variant} if rejected else kept))
        return lock.with_entry(asset, replace(entry, rejected=marked))

    update_lock(root, change)


def add_reroll(root: Path, asset: str) -> None:
    """Ask for one more variant of ``asset``. Counted against :data:`MAX_REROLLS` on the
    lock as it is now: two rerolls confirmed at once must not write a count the lock
    refuses to read back."""

    def change(lock: Lock) -> Lock:
        entry = lock.entry(asset)
        if entry.rerolls >= MAX_REROLLS:
            raise UsageError(
                f"{asset} already has {entry.rerolls} rerolls, the most the lock keeps; "
                "pick one, or raise variants in the spec"
            )
        return lock.with_entry(asset, replace(entry, rerolls=entry.rerolls + 1))

    update_lock(root, change)


def review_problems(root: Path, plan: Plan, states: Mapping[str, JobState]) -> list[ReviewProblem]:
    """Every asset with several variants and no current pick, and every pick that names an
    asset the specs no longer have (``check --require-review``)."""
    picks = read_lock(root).picks
    assets: dict[str, int] = {}
    for job in plan.jobs:
        if isinstance(job, ApiJob):
            name = f"{job.collection}/{job.asset}"
            assets[name] = max(assets.get(name, 0), job.variant)
    problems = []
    for name, count in assets.items():
        state = states.get(name)
        if name in picks:
            if picks[name].variant > count:
                why = (
                    f"the lock names variant {picks[name].variant}, but the spec has only "
                    f"{count} variant{'s' if count != 1 else ''}; assetpipe pick {name}#K "
                    f"or assetpipe unpick {name}"
                )
                problems.append(ReviewProblem(name, why))
            elif state is not None and state.approval == "changed":
                why = "changed since approval: the spec now asks for another image"
                problems.append(ReviewProblem(name, why))
        elif count > 1:
            problems.append(ReviewProblem(name, f"{count} variants and none picked"))
    for name in sorted(set(picks) - set(assets)):
        problems.append(ReviewProblem(name, "picked, but no spec has this asset any more"))
    return problems
