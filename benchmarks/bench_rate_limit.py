"""Rate-limit pacing: 200 images against a 1,200 images/min limit, versus a naive script.

The fake API (``--ipm 1200 --latency 0.3``) admits 20 images per one-second window and
answers the rest 429 with ``Retry-After``. assetpipe builds 200 jobs (1024x1024, quality
low) with ``--images-per-minute 1200 --concurrency 32``; then the same 200 requests go
through ``naive_semaphore.py`` (asyncio.Semaphore(32) + AsyncOpenAI, SDK default retries)
against a fresh fake with the same settings.

Achieved images/min is reported three ways: over the build phase (``build --json``
``elapsed_s``, which the target is judged on), over the whole process (start-up
included), and from the first request the fake saw to the last image it billed (polled
from ``/_stats``). Targets: >= 95% of the limit, < 5% of requests answered 429.

    .venv/bin/python benchmarks/bench_rate_limit.py [--jobs-rows 10] [--jobs-cols 20]
"""

from __future__ import annotations

import argparse
import sys
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
    verdict,
)

LIMIT_IPM = 1200
LATENCY_S = 0.3
CONCURRENCY = 32
TARGET_SHARE = 0.95
TARGET_429 = 0.05
NAIVE = Path(__file__).resolve().parent / "naive_semaphore.py"


def ipm(images: int, seconds: float | None) -> float:
    return images / seconds * 60 if seconds else float("nan")


def share_429(stats: dict[str, Any]) -> float:
    requests = stats.get("requests", 0)
    return stats.get("status_counts", {}).get("429", 0) / requests if requests else 0.0


def run_assetpipe(root: Path, jobs: int) -> dict[str, Any]:
    with FakeServer(latency=LATENCY_S, ipm=LIMIT_IPM) as fake:
        env = fake.env()
        options = ["--provider", "openai", "--images-per-minute", str(LIMIT_IPM)]
        options += ["--concurrency", str(CONCURRENCY), "--json"]
        with StatsPoller(fake, jobs) as poller:
            result = assetpipe("build", root, *options, env=env, timeout=300)
        stats = fake.stats()
    summary = result.json() if result.stdout.strip() else {}
    images = summary.get("counts", {}).get("generated", 0)
    return {
        "exit": result.returncode,
        "images": images,
        "process_s": result.wall_s,
        "build_s": summary.get("elapsed_s"),
        "window_s": poller.window_s,
        "stats": stats,
    }


def run_naive(root: Path, plan_file: Path, jobs: int) -> dict[str, Any]:
    with FakeServer(latency=LATENCY_S, ipm=LIMIT_IPM) as fake:
        args = [PYTHON, str(NAIVE), "--plan", str(plan_file), "--out", str(root / "naive-out")]
        args += ["--concurrency", str(CONCURRENCY)]
        with StatsPoller(fake, jobs) as poller:
            result = run(args, env=fake.env(), timeout=300)
        stats = fake.stats()
    summary = result.json() if result.stdout.strip() else {}
    return {
        "exit": result.returncode,
        "images": summary.get("images", 0),
        "failures": summary.get("failures", {}),
        "process_s": result.wall_s,
        "build_s": summary.get("wall_s"),
        "window_s": poller.window_s,
        "stats": stats,
    }


def row(label: str, r: dict[str, Any]) -> str:
    def rate(seconds: float | None) -> str:
        if not seconds:
            return "   n/a"
        value = ipm(r["images"], seconds)
        return f"{value:6.0f} ({value / LIMIT_IPM:4.0%})"

    stats = r["stats"]
    return (
        f"{label:<18} {r['images']:>6} {rate(r['build_s']):>14} {rate(r['process_s']):>14} "
        f"{rate(r['window_s']):>14} {stats['requests']:>8} "
        f"{stats['status_counts'].get('429', 0):>5} {share_429(stats):>6.1%} "
        f"{r['process_s']:>7.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10)
    parser.add_argument("--cols", type=int, default=20)
    args = parser.parse_args(argv)
    jobs = args.rows * args.cols
    with temp_dir("ratelimit") as root:
        spec = matrix_spec(args.rows, args.cols, prompt="A simple flat icon, tile {{ x }}-{{ y }}")
        make_project(root, {"tiles": spec})
        plan = assetpipe("plan", root, "--json", "--provider", "preview").check()
        plan_file = root / "plan.json"
        plan_file.write_text(plan.stdout, encoding="utf-8")
        ours = run_assetpipe(root, jobs)
        naive = run_naive(root, plan_file, jobs)

    print(
        f"{'':<18} {'images':>6} {'img/min build':>14} {'img/min proc':>14} "
        f"{'img/min window':>14} {'requests':>8} {'429s':>5} {'429 %':>6} {'proc s':>7}"
    )
    print(row("assetpipe", ours))
    print(row("naive semaphore", naive))
    if naive["failures"]:
        print(f"naive failures (after SDK retries): {naive['failures']}")
    achieved = ipm(ours["images"], ours["build_s"])
    rate_429 = share_429(ours["stats"])
    ok = (
        ours["exit"] == 0
        and ours["images"] == jobs
        and achieved >= TARGET_SHARE * LIMIT_IPM
        and rate_429 < TARGET_429
    )
    return verdict(
        "bench_rate_limit",
        ok,
        f"assetpipe {ours['images']}/{jobs} images at {achieved:.0f} img/min over the build "
        f"({achieved / LIMIT_IPM:.1%} of {LIMIT_IPM}; whole process "
        f"{ipm(ours['images'], ours['process_s']):.0f}), {rate_429:.1%} of "
        f"{ours['stats']['requests']} requests 429; naive: {naive['images']}/{jobs} images at "
        f"{ipm(naive['images'], naive['build_s']):.0f} img/min, "
        f"{share_429(naive['stats']):.1%} of {naive['stats']['requests']} requests 429; "
        f"targets >= {TARGET_SHARE:.0%} and < {TARGET_429:.0%} 429",
    )


if __name__ == "__main__":
    sys.exit(main())
