"""No-op rebuild: ``assetpipe build --provider preview`` when all 10,000 jobs are up to date.

A 100 x 100 matrix (10,000 jobs) is built once with the offline preview provider (size
64x64, quality low, jpeg: the preview draws at the legal request size, about 816x816,
so a cheap format keeps the first build short). Then a second ``build`` is timed as a
whole process, best of three: every job must be ``up-to-date``. Target (issue 11): under
1 s. Beside it, for where the time goes, the same no-op twice more (best of three each):
without the last build's stamp (``.assetpipe/last-build.json``: the stored plan is
reused, every job is checked against the manifest), and without the stored plans either
(the project is planned afresh, as every build did before the plan cache).

If the first build exceeds ``--first-build-limit`` seconds it is stopped, reported, and
the benchmark falls back to a matrix of half the rows and columns (50 x 50) and
extrapolates to 10,000 jobs as fixed cost (``assetpipe --version``: interpreter and
imports) plus the per-job cost scaled linearly (said so in the result line).

    .venv/bin/python benchmarks/bench_noop.py [--rows 100] [--cols 100] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from common import (
    RunResult,
    assetpipe,
    assetpipe_cmd,
    best_of,
    make_project,
    matrix_spec,
    run,
    temp_dir,
    verdict,
)

TARGET_S = 1.0
FULL_JOBS = 10_000
OPTIONS = ("--provider", "preview", "--json")


def first_build(root: Path, rows: int, cols: int, limit: float) -> RunResult:
    spec = matrix_spec(rows, cols, size="64x64", quality="low")
    spec["defaults"]["format"] = "jpeg"
    make_project(root, {"tiles": spec})
    return assetpipe("build", root, *OPTIONS, timeout=limit)


def noop_builds(
    root: Path, jobs: int, repeat: int, forget: tuple[str, ...] = ()
) -> list[RunResult]:
    """``repeat`` no-op builds, each after removing ``forget`` (paths under .assetpipe/)."""
    runs = []
    for _ in range(repeat):
        for name in forget:
            shutil.rmtree(root / ".assetpipe" / name, ignore_errors=True)
            (root / ".assetpipe" / name).unlink(missing_ok=True)
        result = assetpipe("build", root, *OPTIONS, poll_memory=True).check()
        counts = result.json()["counts"]
        if counts != {"up-to-date": jobs}:
            raise RuntimeError(f"the second build was not a no-op: {counts}")
        runs.append(result)
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--cols", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--first-build-limit", type=float, default=900.0)
    args = parser.parse_args(argv)
    rows, cols = args.rows, args.cols
    note = ""
    with temp_dir("noop") as root:
        first = first_build(root / "p", rows, cols, args.first_build_limit)
        if first.returncode != 0:
            small = (max(1, rows // 2), max(1, cols // 2))
            note = (
                f"; first build of {rows * cols} jobs stopped after {first.wall_s:.0f} s "
                f"(exit {first.returncode}); EXTRAPOLATED from {small[0]}x{small[1]}"
            )
            rows, cols = small
            first = first_build(root / "q", rows, cols, 600.0).check()
            project = root / "q"
        else:
            project = root / "p"
        jobs = rows * cols
        runs = noop_builds(project, jobs, args.repeat)
        checked = best_of(noop_builds(project, jobs, args.repeat, ("last-build.json",)))
        planned = best_of(noop_builds(project, jobs, args.repeat, ("last-build.json", "plans")))
    best = best_of(runs)
    scale = FULL_JOBS / jobs
    estimate = best.wall_s
    if scale != 1:
        # fixed cost (interpreter and imports: ``assetpipe --version``) + per-job cost
        fixed = best_of([run([*assetpipe_cmd(), "--version"]).check() for _ in range(3)]).wall_s
        estimate = fixed + (best.wall_s - fixed) * scale
    all_s = ", ".join(f"{r.wall_s:.3f}" for r in runs)
    load = os.getloadavg()[0]
    return verdict(
        "bench_noop",
        estimate < TARGET_S,
        f"no-op build of {jobs} up-to-date jobs in {best.wall_s:.3f} s (best of "
        f"{args.repeat}: {all_s}) = {best.wall_s / jobs * 1e6:.0f} us/job"
        + (f", {estimate:.2f} s extrapolated to {FULL_JOBS}" if scale != 1 else "")
        + f"; peak RSS {best.peak_rss_mb:.0f} MB; without the stamp {checked.wall_s:.3f} s, "
        f"without the stored plan either {planned.wall_s:.3f} s; first build {first.wall_s:.1f} s "
        f"({first.wall_s / jobs * 1e3:.1f} ms/job){note}; load {load:.1f}; "
        f"target < {TARGET_S:g} s",
    )


if __name__ == "__main__":
    sys.exit(main())
