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
