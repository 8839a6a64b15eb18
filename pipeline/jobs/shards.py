"""Splitting a plan across CI machines (``--shard i/n``): whole dependency chains per shard.

A *chain* is a connected part of the job graph: an asset's generation with the edits that
use it, the renditions of both, and the sprite sheets packed from them. Shards own whole
chains, so

- no shard waits on another: every input a shard's job reads is made by that shard;
- no image is paid twice: every API job is in exactly one shard;
- an edit travels with the assets it uses (its inputs are in its chain).

A sheet whose frames come from several chains joins them into one chain: its shard makes
every frame it packs. (The alternative, a sheet made by none of the shards and left to the
plain build that assembles the output, would keep its frames apart but leave the shards'
trees incomplete.)

Which shard owns a chain depends only on the chain's *anchor*, the smallest id among its
roots (jobs that depend on no other job of the plan): a hash of it, modulo the number of
shards. So adding, changing or removing an asset moves no other chain to another shard,
and every machine of a CI matrix computes the same partition from the same specs without
talking to the others. The price of that stability is balance: shards are as even as a
hash makes them, which for a few chains may leave one empty (it exits 0).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from pipeline.hashing import sha256_bytes
from pipeline.jobs.job import Job
from pipeline.jobs.plan import Plan

SHARD_SALT = "assetpipe-shard-v1"
"""Part of every anchor's hash; changing it moves every chain (a new version, on purpose)."""
MAX_SHARDS = 1000
_SHARD = re.compile(r"\s*(\d{1,4})\s*/\s*(\d{1,4})\s*")


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard ``index`` of ``count``, counted from 1 (as a CI matrix writes it: ``2/3``)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS:
            raise ValueError(f"the number of shards must be 1 to {MAX_SHARDS}, not {self.count}")
        if not 1 <= self.index <= self.count:
            raise ValueError(f"shard {self.index}/{self.count}: i must be 1 to {self.count}")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``i/n`` as written on the command line; ValueError saying what is expected."""
        match = _SHARD.fullmatch(text)
        if match is None:
            raise ValueError(f"expected i/n, such as 2/3, not {text!r}")
        return cls(int(match.group(1)), int(match.group(2)))


def chains(jobs: Sequence[Job]) -> list[tuple[Job, ...]]:
    """The connected parts of the job graph (dependencies among ``jobs`` taken both ways),
    each in the order of ``jobs``, ordered by their first job."""
    parent = {job.id: job.id for job in jobs}

    def find(node: str) -> str:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for job in jobs:
        for dep in job.depends_on:
            if dep in parent:
                a, b = find(job.id), find(dep)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    groups: dict[str, list[Job]] = {}
    for job in jobs:
        groups.setdefault(find(job.id), []).append(job)
    return [tuple(group) for group in groups.values()]


def anchor(chain: Sequence[Job]) -> str:
    """The id that places a chain: the smallest id among the jobs that depend on no job
    of the chain (a chain always has one: the plan is acyclic)."""
    ids = {job.id for job in chain}
    return min(job.id for job in chain if not any(dep in ids for dep in job.depends_on))


def shard_index(anchor_id: str, count: int) -> int:
    """The shard (from 1) that owns the chain anchored at ``anchor_id``."""
    digest = sha256_bytes(f"{SHARD_SALT}\0{anchor_id}".encode())
    return int(digest[:16], 16) % count + 1


def shard_plan(plan: Plan, shard: Shard) -> Plan:
    """The jobs of ``plan`` that ``shard`` owns, in plan order, with the plan's warnings."""
    if shard.count == 1:
        return plan
    owned = {
        job.id
        for chain in chains(plan.jobs)
        if shard_index(anchor(chain), shard.count) == shard.index
        for job in chain
    }
    return replace(plan, jobs=tuple(job for job in plan.jobs if job.id in owned))


@dataclass(frozen=True, slots=True)
class PacingNote:
    """How a shard paces a limit it may share with the other shards of its build.

    The limits of an API key are its organisation's: every shard of a CI matrix spends
    them, so a limit given to each shard is split among them unless they have limits of
    their own (``limit_scope: shard``).
    """

    images_per_minute: float | None
    """The limit given (flag, environment or assetpipe.yaml); None: learned from answers."""
    sharers: int
    """How many shards spend it together (1: this shard's own)."""
    share: float | None = None
    """This shard's part of the build's paid jobs, which is its part of the limit (None:
    an even ``1 / sharers``)."""
    turns: bool = False
    """Whether the shards take turns on a clock they share (see ``pipeline.runner.turns``)."""

    @property
    def portion(self) -> float:
        """The part of the limit this shard paces at to begin with."""
        if self.sharers == 1:
            return 1.0
        return min(1.0, self.share) if self.share else 1 / self.sharers

    @property
    def paced_at(self) -> float | None:
        """This shard's images a minute to begin with."""
        if self.images_per_minute is None:
            return None
        return self.images_per_minute * self.portion

    def line(self) -> str:
        """``pacing at 40 images/min: 120 shared by 3 shards``, and the like."""
        given, paced = self.images_per_minute, self.paced_at
        if given is None or paced is None:
            whose = f"shared by {self.sharers} shards" if self.sharers > 1 else "this shard's own"
            return f"pacing at the limit the API's answers advertise, {whose}{self._how()}"
        if self.sharers == 1:
            return f"pacing at {_number(given)} images/min: this shard's own limit"
        by = "" if not self.share else f", by its {self.portion:.0%} of the paid jobs"
        return (
            f"pacing at {_number(paced)} images/min: {_number(given)} shared by "
            f"{self.sharers} shards{by}{self._how()}"
        )

    def _how(self) -> str:
        if not self.turns or self.sharers == 1:
            return ""
        return ", in turns on a shared clock (taking over the turns of shards that stop)"

    def summary(self) -> dict[str, float | int | str | None]:
        """The same for ``build --json``."""
        return {
            "images_per_minute": self.paced_at,
            "limit": self.images_per_minute,
            "shared_by": self.sharers,
            "share": round(self.portion, 4),
            "turns": self.turns and self.sharers > 1,
            "line": self.line(),
        }


def _number(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def paid_share(selected: Plan, full: Plan) -> float | None:
    """The part of ``full``'s paid jobs that ``selected`` (one shard) holds: the part of a
    shared limit it should pace at, so that shards of unequal size finish together
    instead of one running on alone at a fraction of the limit. None when the build has
    no paid jobs."""
    total = sum(1 for job in full.jobs if job.is_api)
    if total == 0:
        return None
    return sum(1 for job in selected.jobs if job.is_api) / total


@dataclass(frozen=True, slots=True)
class SharedLimit:
    """How the shards of one build share a rate limit: which one this is, and every
    shard's weight (its paid jobs), so that every shard lays out the same turns."""

    index: int
    """This shard, counted from 1."""
    weights: tuple[int, ...]
    """Every shard's paid jobs, shard 1 first."""

    def __post_init__(self) -> None:
        if not 1 <= self.index <= len(self.weights):
            raise ValueError(f"shard {self.index} of {len(self.weights)}")
        if any(weight < 0 for weight in self.weights):
            raise ValueError("a shard's weight is its paid jobs, never negative")


def shared_limit(full: Plan, shard: Shard) -> SharedLimit:
    """Every shard's paid jobs in ``full`` (the plan before sharding), with ``shard``'s
    place among them: the same on every machine, from the same specs."""
    weights = [0] * shard.count
    for chain in chains(full.jobs):
        owner = shard_index(anchor(chain), shard.count)
        weights[owner - 1] += sum(1 for job in chain if job.is_api)
    return SharedLimit(shard.index, tuple(weights))
