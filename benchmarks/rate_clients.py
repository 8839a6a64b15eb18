"""The clients the rate-limit benchmarks run side by side, and the table they print.

Each client is a whole process against its own fresh fake (``tests/fakeapi.py`` as a
subprocess with the same ``--ipm`` and ``--latency``), sending the same API jobs:

- ``assetpipe build --provider openai`` on the benchmark's project;
- ``naive_semaphore.py``: ``asyncio.Semaphore`` + ``AsyncOpenAI`` with the SDK's retries;
- ``skills_batch.py``: the openai/skills ``generate-batch`` approach (fixed concurrency,
  retries on 429 with sleeps).

Achieved images/min is measured three ways, each as a share of the limit: over the
client's own working time (``build --json`` ``elapsed_s``, or the script's ``wall_s``),
over the whole process (interpreter start-up and imports included), and from the first
request the fake saw to the last image it billed (polled from ``/_stats``).
"""

from __future__ import annotations

import os
import shutil
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import (
    PYTHON,
    FakeServer,
    StatsPoller,
    assetpipe,
    make_project,
    matrix_spec,
    run,
    temp_dir,
)

HERE = Path(__file__).resolve().parent
NAIVE = HERE / "naive_semaphore.py"
SKILLS = HERE / "skills_batch.py"


@dataclass
class ClientRun:
    """One client's run: what it made, how long it took, what the fake saw."""

    client: str
    exit: int
    jobs: int
    images: int
    process_s: float
    work_s: float | None
    window_s: float | None
    stats: dict[str, Any]
    failures: dict[str, int] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return int(self.stats.get("requests", 0))

    @property
    def refused(self) -> int:
        return int(self.stats.get("status_counts", {}).get("429", 0))

    @property
    def share_429(self) -> float:
        return self.refused / self.requests if self.requests else 0.0

    def per_minute(self, seconds: float | None) -> float:
        return self.images / seconds * 60 if seconds else float("nan")

    def ratio(self, seconds: float | None, limit: float) -> float:
        return self.per_minute(seconds) / limit


def fresh_build(root: Path) -> None:
    """Forget the last round's output and cache, so every round pays for every image."""
    for folder in ("output", ".assetpipe"):
        shutil.rmtree(root / folder, ignore_errors=True)


def run_assetpipe(
    root: Path, jobs: int, *, ipm: int, latency: float, options: Sequence[str]
) -> ClientRun:
    """``assetpipe build --provider openai --json OPTIONS`` against a fresh fake."""
    with FakeServer(latency=latency, ipm=ipm) as fake:
        args = ["--provider", "openai", "--json", *options]
        with StatsPoller(fake, jobs) as poller:
            result = assetpipe("build", root, *args, env=fake.env(), timeout=900)
        stats = fake.stats()
    summary = result.json() if result.stdout.strip() else {}
    return ClientRun(
        client="assetpipe",
        exit=result.returncode,
        jobs=jobs,
        images=summary.get("counts", {}).get("generated", 0),
        process_s=result.wall_s,
        work_s=summary.get("elapsed_s"),
        window_s=poller.window_s,
        stats=stats,
    )


def run_script(
    name: str,
    script: Path,
    root: Path,
    plan_file: Path,
    jobs: int,
    *,
    ipm: int,
    latency: float,
    concurrency: int,
) -> ClientRun:
    """A baseline script over the plan's API jobs against a fresh fake."""
    out = root / f"{script.stem}-out"
    with FakeServer(latency=latency, ipm=ipm) as fake:
        args = [PYTHON, str(script), "--plan", str(plan_file), "--out", str(out)]
        args += ["--concurrency", str(concurrency)]
        with StatsPoller(fake, jobs) as poller:
            result = run(args, env=fake.env(), timeout=900)
        stats = fake.stats()
    summary = result.json() if result.stdout.strip() else {}
    return ClientRun(
        client=name,
        exit=result.returncode,
        jobs=jobs,
        images=summary.get("images", 0),
        process_s=result.wall_s,
        work_s=summary.get("wall_s"),
        window_s=poller.window_s,
        stats=stats,
        failures=summary.get("failures", {}),
    )


def header() -> str:
    return (
        f"{'client':<26} {'images':>7} {'own time':>15} {'whole process':>15} "
        f"{'1st req->last':>15} {'requests':>8} {'429s':>5} {'429 %':>6} {'proc s':>7}"
    )


def row(r: ClientRun, limit: float, label: str | None = None) -> str:
    def rate(seconds: float | None) -> str:
        if not seconds:
            return "n/a"
        return f"{r.per_minute(seconds):5.0f} ({r.ratio(seconds, limit):4.0%})"

    lost = f"  lost: {r.failures}" if r.failures else ""
    return (
        f"{label or r.client:<26} {r.images:>3}/{r.jobs:<3} {rate(r.work_s):>15} "
        f"{rate(r.process_s):>15} {rate(r.window_s):>15} {r.requests:>8} {r.refused:>5} "
        f"{r.share_429:>6.1%} {r.process_s:>7.2f}{lost}"
    )


def spread(runs: Sequence[ClientRun], limit: float) -> str:
    """Whole-process share of the limit and 429 share over rounds: median [min-max]."""
    shares = [r.ratio(r.process_s, limit) for r in runs]
    refused = [r.share_429 for r in runs]
    return (
        f"{runs[0].client:<26} whole process {statistics.median(shares):.1%} of the limit "
        f"[{min(shares):.1%}-{max(shares):.1%}], 429s {statistics.median(refused):.1%} "
        f"[{min(refused):.1%}-{max(refused):.1%}] over {len(runs)} round(s)"
    )


def side_by_side(
    name: str,
    rows: int,
    cols: int,
    rounds: int,
    *,
    ipm: float,
    latency: float,
    options: Sequence[str],
    concurrency: int,
    skills_concurrency: int,
) -> dict[str, list[ClientRun]]:
    """One project of ``rows`` x ``cols`` jobs built by assetpipe (with ``options``), the
    naive semaphore loop and the skills-style batch, each against a fresh fake allowing
    ``ipm``, for ``rounds`` rounds: the rows as they come, then each client's spread."""
    jobs = rows * cols
    runs: dict[str, list[ClientRun]] = {"assetpipe": [], "naive": [], "skills": []}
    print(f"limit {ipm} images/min, latency {latency} s, {jobs} jobs", flush=True)
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    print(header(), flush=True)
    with temp_dir(name) as root:
        spec = matrix_spec(rows, cols, prompt="A simple flat icon, tile {{ x }}-{{ y }}")
        make_project(root, {"tiles": spec})
        plan = assetpipe("plan", root, "--json", "--provider", "preview").check()
        plan_file = root / "plan.json"
        plan_file.write_text(plan.stdout, encoding="utf-8")
        for number in range(1, rounds + 1):
            fresh_build(root)
            results = [
                run_assetpipe(root, jobs, ipm=ipm, latency=latency, options=list(options)),
                run_script(
                    f"naive semaphore ({concurrency})",
                    NAIVE,
                    root,
                    plan_file,
                    jobs,
                    ipm=ipm,
                    latency=latency,
                    concurrency=concurrency,
                ),
                run_script(
                    f"skills generate-batch ({skills_concurrency})",
                    SKILLS,
                    root,
                    plan_file,
                    jobs,
                    ipm=ipm,
                    latency=latency,
                    concurrency=skills_concurrency,
                ),
            ]
            for key, result in zip(runs, results, strict=True):
                runs[key].append(result)
                label = f"{result.client} #{number}" if rounds > 1 else None
                print(row(result, ipm, label), flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    for client_runs in runs.values():
        print(spread(client_runs, ipm))
    return runs
