"""Planning speed: ``assetpipe plan --json --provider preview`` on a 10,000-job matrix.

One asset whose matrix is 100 x 100, an inline prompt using both matrix variables and a
brand color filter (``color_name``). The whole process is timed (interpreter start-up,
imports, loading, templating, planning, freshness and JSON output): one warm-up run, then
the best of three. Target: under 2 s.

    .venv/bin/python benchmarks/bench_plan.py [--rows 100] [--cols 100] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys

from common import assetpipe, best_of, make_project, matrix_spec, temp_dir, verdict

TARGET_S = 2.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--cols", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    jobs = args.rows * args.cols
    with temp_dir("plan") as root:
        make_project(root, {"tiles": matrix_spec(args.rows, args.cols)})
        options = ("--json", "--provider", "preview")
        warm = assetpipe("plan", root, *options).check()
        doc = warm.json()
        if len(doc["jobs"]) != jobs:
            raise RuntimeError(f"expected {jobs} jobs, the plan has {len(doc['jobs'])}")
        runs = [assetpipe("plan", root, *options).check() for _ in range(args.repeat)]
    best = best_of(runs)
    all_s = ", ".join(f"{r.wall_s:.3f}" for r in runs)
    return verdict(
        "bench_plan",
        best.wall_s < TARGET_S,
        f"{jobs} jobs planned in {best.wall_s:.3f} s (best of {args.repeat}: {all_s}; "
        f"warm-up {warm.wall_s:.3f} s) = {best.wall_s / jobs * 1e6:.1f} us/job; "
        f"peak RSS {best.peak_rss_mb:.0f} MB; target < {TARGET_S:g} s",
    )


if __name__ == "__main__":
    sys.exit(main())
