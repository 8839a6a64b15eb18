"""Three shards under one organisation limit: ``--shard 1/3``, ``2/3``, ``3/3`` at once.

One project of ``--jobs`` API jobs (1024x1024, quality low), copied to three folders (three
CI machines), built by three ``assetpipe build --shard i/3 --provider openai --json``
processes started together against ONE fake (``--ipm 120 --latency 1.0``: two images per
one-second window for everyone). Measured over the whole run, from starting the three
processes to the end of the last: images per minute as a share of the limit, requests
answered 429 as a share of all requests the fake saw, and lost jobs (not generated).

Two scenarios, each with the pipeline before (``git archive HEAD pipeline``, or
``--before DIR``) and after (a copy of the working tree's ``pipeline/``, or ``--after DIR``)
side by side in one run, each against a fresh fake: nothing told (the limit is learned
from the answers), and each shard told ``ASSETPIPE_IMAGES_PER_MINUTE=120``.

Targets (after, each scenario): >= 85% of the limit, <= 10% of requests 429, 0 lost.

    .venv/bin/python benchmarks/bench_shards.py [--jobs 150] [--rounds 1]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import (
    _SNAPSHOT_LAUNCHER,
    PYTHON,
    FakeServer,
    RunResult,
    compiled,
    make_project,
    matrix_spec,
    run,
    snapshot,
    temp_dir,
    verdict,
)

LIMIT_IPM = 120
LATENCY_S = 1.0
SHARDS = 3
TARGET_SHARE = 0.85
TARGET_429 = 0.10
SCENARIOS = {"nothing told": {}, "each told 120": {"ASSETPIPE_IMAGES_PER_MINUTE": "120"}}


@dataclass
class ShardsRun:
    """One scenario on one tree: what the three shards made together, and how fast."""

    tree: str
    scenario: str
    jobs: int
    generated: int
    wall_s: float
    requests: int
    refused: int
    exits: list[int]
    shard_s: list[float]

    @property
    def share(self) -> float:
        return self.generated / self.wall_s * 60 / LIMIT_IPM

    @property
    def share_429(self) -> float:
        return self.refused / self.requests if self.requests else 0.0

    @property
    def lost(self) -> int:
        return self.jobs - self.generated

    @property
    def ok(self) -> bool:
        return (
            self.share >= TARGET_SHARE
            and self.share_429 <= TARGET_429
            and self.lost == 0
            and self.exits == [0] * SHARDS
        )


def build_shards(src: Path, machines: list[Path], env: dict[str, str]) -> list[RunResult]:
    """The three shard builds, started together, each as a whole process."""
    results: list[RunResult | None] = [None] * len(machines)

    def one(i: int) -> None:
        args = [PYTHON, "-c", _SNAPSHOT_LAUNCHER, str(src), "build", "--project"]
        args += [str(machines[i]), "--provider", "openai", "--json"]
        args += ["--shard", f"{i + 1}/{len(machines)}"]
        results[i] = run(args, env=env, cwd=machines[i], timeout=900)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(machines))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [r for r in results if r is not None]


def measure(src: Path, tree: str, scenario: str, project: Path, root: Path, jobs: int) -> ShardsRun:
    """Fresh machines, a fresh fake, the three shards at once."""
    machines = []
    for i in range(SHARDS):
        machine = root / f"machine-{i + 1}"
        shutil.rmtree(machine, ignore_errors=True)
        shutil.copytree(project, machine)
        machines.append(machine)
    with FakeServer(latency=LATENCY_S, ipm=LIMIT_IPM) as fake:
        env = fake.env()
        env.update(SCENARIOS[scenario])
        started = time.perf_counter()
        results = build_shards(src, machines, env)
        wall = time.perf_counter() - started
        stats: dict[str, Any] = fake.stats()
    generated = 0
    for result in results:
        summary = result.json() if result.stdout.strip() else {}
        generated += summary.get("counts", {}).get("generated", 0)
    return ShardsRun(
        tree=tree,
        scenario=scenario,
        jobs=jobs,
        generated=generated,
        wall_s=wall,
        requests=int(stats.get("requests", 0)),
        refused=int(stats.get("status_counts", {}).get("429", 0)),
        exits=[r.returncode for r in results],
        shard_s=[r.wall_s for r in results],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=150, help="a multiple of 10")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--before", type=Path, help="a folder holding the 'before' pipeline/")
    parser.add_argument("--after", type=Path, help="a folder holding the 'after' pipeline/")
    args = parser.parse_args(argv)
    with temp_dir("shards") as root, tempfile.TemporaryDirectory() as snaps:
        at = Path(snaps)
        trees = {
            "before": compiled(args.before) if args.before else snapshot(at / "before", True),
            "after": compiled(args.after) if args.after else snapshot(at / "after", False),
        }
        project = make_project(
            root / "project",
            {"tiles": matrix_spec(args.jobs // 10, 10)},
            settings={"provider": "openai"},
        )
        runs: list[ShardsRun] = []
        for n in range(args.rounds):
            for scenario in SCENARIOS:
                order = ["before", "after"] if n % 2 == 0 else ["after", "before"]
                for tree in order:
                    found = measure(trees[tree], tree, scenario, project, root, args.jobs)
                    runs.append(found)
                    print(
                        f"  {scenario:<14} {tree:<6} {found.share:6.1%} of the limit, "
                        f"{found.refused}/{found.requests} = {found.share_429:5.1%} 429, "
                        f"{found.lost} lost, {found.wall_s:.1f} s "
                        f"(shards {', '.join(f'{s:.1f}' for s in found.shard_s)} s)",
                        flush=True,
                    )
    print()
    print(f"| 3 shards, {args.jobs} jobs, {LIMIT_IPM}/min | before | after | target |")
    print("| --- | --- | --- | --- |")
    for scenario in SCENARIOS:
        cells = []
        for tree in ("before", "after"):
            mine = [r for r in runs if r.scenario == scenario and r.tree == tree]
            cells.append(
                "; ".join(
                    f"{r.share:.0%}, {r.share_429:.0%} 429, {r.lost} lost ({r.wall_s:.0f} s)"
                    for r in mine
                )
            )
        print(f"| {scenario} | {cells[0]} | {cells[1]} | >= 85%, <= 10% 429, 0 lost |")
    after = [r for r in runs if r.tree == "after"]
    ok = all(r.ok for r in after)
    worst = min(after, key=lambda r: r.share)
    return verdict(
        "bench_shards",
        ok,
        f"3 shards after: lowest {worst.share:.1%} of {LIMIT_IPM}/min, at most "
        f"{max(r.share_429 for r in after):.1%} 429, {sum(r.lost for r in after)} lost; "
        f"targets >= {TARGET_SHARE:.0%}, <= {TARGET_429:.0%} 429, 0 lost",
    )


if __name__ == "__main__":
    sys.exit(main())
