"""Restores: ``rm -rf output/`` then ``assetpipe build`` with every job in the cache.

400 API jobs (a 20 x 20 matrix, 1024x1024, quality low) are built once against a fresh
fake (latency 0). Then, each timed as a whole process, best of ``--repeat`` (3):

- the no-op: a second ``build`` with every job ``up-to-date``;
- the restore: ``output/`` deleted, then ``build``; every job must be ``cached`` (no
  request reaches the fake).

Target: restore <= 2x the no-op. Also reported: CPU time of each process (user + system
of the child, from ``os.wait4``), and the per-image local work of the fresh build and of
the restore, as (process CPU - no-op process CPU) / images, which takes out what every
build pays once (interpreter, imports, planning). The fake runs in its own process, so
its CPU is not counted.

The fake is ``fake_distinct.py``: flat ~17 KB PNGs whose pixels differ in every answer, as
real answers' do (the stock fake's 400 answers hold 32 pictures, and work memoised by
pixels would be done 32 times). ``--heavy`` serves real-sized images instead
(``fake_heavy.py``: ~2.5 MB noisy PNGs, one noise per size and colour).

    .venv/bin/python benchmarks/bench_restore.py [--rows 20] [--cols 20] [--repeat 3] [--heavy]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections import Counter
from pathlib import Path

from common import (
    FAKE_DISTINCT,
    FAKE_HEAVY,
    FakeServer,
    RunResult,
    assetpipe,
    best_of,
    make_project,
    matrix_spec,
    temp_dir,
    verdict,
)

TARGET_RATIO = 2.0
OPTIONS = ("--provider", "openai", "--json")


def build(project: Path, fake: FakeServer, expect: str, jobs: int) -> RunResult:
    """One whole-process build; every job must end with the status ``expect``."""
    result = assetpipe("build", project, *OPTIONS, env=fake.env(), timeout=900).check()
    counts = result.json()["counts"]
    if counts != {expect: jobs}:
        raise RuntimeError(f"expected {jobs} {expect} jobs, got {counts}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20)
    parser.add_argument("--cols", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--heavy", action="store_true", help="real-sized (~2.5 MB) PNGs")
    args = parser.parse_args(argv)
    jobs = args.rows * args.cols
    script = FAKE_HEAVY if args.heavy else FAKE_DISTINCT
    with temp_dir("restore") as root, FakeServer(latency=0.0, script=script) as fake:
        project = make_project(
            root / "p",
            {
                "tiles": matrix_spec(
                    args.rows, args.cols, prompt="A flat icon, tile {{ x }}-{{ y }}"
                )
            },
        )
        fresh = build(project, fake, "generated", jobs)
        billed = fake.stats()["billed_images"]
        noops = [build(project, fake, "up-to-date", jobs) for _ in range(args.repeat)]
        restores = []
        for _ in range(args.repeat):
            shutil.rmtree(project / "output")
            restores.append(build(project, fake, "cached", jobs))
        stats = fake.stats()
        outputs = Counter(p.suffix for p in (project / "output").rglob("*") if p.is_file())
    if stats["billed_images"] != billed:
        raise RuntimeError(f"the restores paid: {stats['billed_images'] - billed} images")
    noop, restore = best_of(noops), best_of(restores)
    ratio = restore.wall_s / noop.wall_s
    fixed_cpu = min(r.cpu_s for r in noops)
    fresh_ms = (fresh.cpu_s - fixed_cpu) / jobs * 1e3
    restore_ms = (min(r.cpu_s for r in restores) - fixed_cpu) / jobs * 1e3
    for label, runs in (("no-op", noops), ("restore", restores)):
        print(
            f"  {label:8} wall "
            + ", ".join(f"{r.wall_s:.3f}" for r in runs)
            + " s; cpu "
            + ", ".join(f"{r.cpu_s:.2f}" for r in runs)
            + " s"
        )
    print(
        f"  fresh    wall {fresh.wall_s:.2f} s, cpu {fresh.cpu_s:.2f} s "
        f"(build phase {fresh.json()['elapsed_s']:.2f} s); output files {dict(outputs)}"
    )
    return verdict(
        "bench_restore",
        ratio <= TARGET_RATIO,
        f"restore of {jobs} cached {'heavy ' if args.heavy else ''}1024x1024 images in "
        f"{restore.wall_s:.3f} s vs no-op {noop.wall_s:.3f} s (best of {args.repeat}) = "
        f"{ratio:.2f}x; per-image CPU beyond the no-op: restore {restore_ms:.1f} ms, fresh "
        f"build {fresh_ms:.1f} ms (fresh process {fresh.cpu_s:.2f} s CPU, no-op "
        f"{fixed_cpu:.2f} s); load {os.getloadavg()[0]:.1f}; target <= {TARGET_RATIO:g}x",
    )


if __name__ == "__main__":
    sys.exit(main())
