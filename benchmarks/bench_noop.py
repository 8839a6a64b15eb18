"""No-op rebuild: ``assetpipe build --provider preview`` when every job is up to date.

A matrix of ``--rows`` x ``--cols`` preview jobs (default 100 x 100 = 10,000; size 64x64,
quality low, jpeg: the preview draws at the legal request size, about 816x816, so a cheap
format keeps the first build short) is built once; the next build (a full check, which
stamps the build) is not timed; then ``build`` is timed as a whole process, best of
``--repeat``: every job must be ``up-to-date``. Targets: under 1 s for 10,000 jobs; at most
3 s for 100,000 (``--rows 316 --cols 317``: 100,172 jobs), judged when the plan has at
least 100,000 jobs. Beside it, for where the time goes: ``assetpipe --version`` (the
interpreter and the imports every command pays), and unless ``--quick``, the same no-op
without the last build's stamp (``.assetpipe/last-build.json``: the stored plan is
reused, every job is checked against the manifest) and without the stored plans either
(planned afresh, as every build did before the plan cache).

A first build of 100,000 jobs takes hours on two shared cores: ``--project DIR`` builds in
``DIR`` (kept) when it holds no project yet, and reuses the project found there otherwise
(its spec must have this size), so the first build is paid once. ``--fabricate`` makes the
built state instead of building it: one job of the same spec is built for real, its file is
copied to every job's path, and the manifest lists each job with its own cache key (from
the plan, as the build computes it), so the untimed full check that follows finds every
job up to date and writes the stored plan and the stamp as after a real build; the result
line says ``fabricated``.

``--before DIR`` (a folder holding a ``pipeline/`` package, e.g. ``git archive HEAD
pipeline | tar -x -C DIR``) times that code's no-op on the same project, in rounds
alternating with the code under test (``--after DIR``, else the installed one). Each side
starts its round with one untimed build: the two write their own stamp, and the first
build of a side after the other's is a full check that stamps again.

If the first build exceeds ``--first-build-limit`` seconds it is stopped, reported, and
the benchmark falls back to a matrix of half the rows and columns and extrapolates to the
full size as fixed cost (``assetpipe --version``) plus the per-job cost scaled linearly
(said so in the result line).

    .venv/bin/python benchmarks/bench_noop.py [--rows 100] [--cols 100] [--repeat 3]
    .venv/bin/python benchmarks/bench_noop.py --rows 316 --cols 317 --project /tmp/noop100k \\
        --quick [--before /tmp/snap]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

from common import (
    _SNAPSHOT_LAUNCHER,
    PYTHON,
    RunResult,
    assetpipe_cmd,
    best_of,
    clean_env,
    compiled,
    make_project,
    matrix_spec,
    run,
    temp_dir,
    verdict,
)

TARGET_S = 1.0
FULL_JOBS = 10_000
LARGE_JOBS = 100_000
LARGE_TARGET_S = 3.0
OPTIONS = ("--provider", "preview", "--json")


def cli(src: str | None) -> list[str]:
    """The command running assetpipe from the snapshot ``src`` (None: the default one)."""
    if src is None:
        return assetpipe_cmd()
    return [PYTHON, "-c", _SNAPSHOT_LAUNCHER, str(compiled(Path(src)))]


def build(root: Path, src: str | None, *, timeout: float = 600.0, poll: bool = False) -> RunResult:
    return run(
        [*cli(src), "build", "--project", str(root), *OPTIONS],
        env=clean_env(),
        cwd=root,
        timeout=timeout,
        poll_memory=poll,
    )


def first_build(root: Path, rows: int, cols: int, limit: float, src: str | None) -> RunResult:
    spec = matrix_spec(rows, cols, size="64x64", quality="low")
    spec["defaults"]["format"] = "jpeg"
    settings = {"max_jobs": rows * cols} if rows * cols > FULL_JOBS else None
    make_project(root, {"tiles": spec}, settings=settings)
    return build(root, src, timeout=limit)


def noop_builds(
    root: Path, jobs: int, repeat: int, src: str | None, forget: tuple[str, ...] = ()
) -> list[RunResult]:
    """``repeat`` no-op builds, each after removing ``forget`` (paths under .assetpipe/)."""
    runs = []
    for _ in range(repeat):
        for name in forget:
            shutil.rmtree(root / ".assetpipe" / name, ignore_errors=True)
            (root / ".assetpipe" / name).unlink(missing_ok=True)
        result = build(root, src, poll=True).check()
        counts = result.json()["counts"]
        if counts != {"up-to-date": jobs}:
            raise RuntimeError(f"the build was not a no-op: {counts}")
        runs.append(result)
    return runs


def fabricate(root: Path, rows: int, cols: int) -> None:
    """The state a first build of ``rows`` x ``cols`` leaves, made without drawing: see the
    module's docstring. Uses the installed pipeline's own planner and manifest writer."""
    from pipeline import api  # the installed code, used only by --fabricate
    from pipeline.output.entry import ManifestEntry
    from pipeline.output.manifest import write_manifest
    from pipeline.output.update import totals
    from pipeline.runner.freshness import job_request, recorded_key

    sample = root.parent / f"{root.name}-sample"
    shutil.rmtree(sample, ignore_errors=True)
    first_build(sample, 1, 1, 600.0, None).check()
    model = json.loads((sample / "output" / "manifest.json").read_bytes())["entries"][0]
    data = (sample / "output" / model["path"]).read_bytes()
    spec = matrix_spec(rows, cols, size="64x64", quality="low")
    spec["defaults"]["format"] = "jpeg"
    make_project(root, {"tiles": spec}, settings={"max_jobs": rows * cols})
    request = api.Request(project=root, flags={"provider": "preview"})
    plan = api.open_workspace(request, reuse=False).plan
    entries = []
    for job in plan.jobs:
        path = root / "output" / job.output_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        fields = {
            **model,
            "job": job.id,
            "collection": job.collection,
            "asset": job.asset,
            "variant": job.variant,
            "path": job.output_path,
            "prompt": job.prompt,
            "source": job.source,
            "cache_key": recorded_key(job, job_request(job, {}), None),
            "mtime_ns": path.lstat().st_mtime_ns,
        }
        entries.append(ManifestEntry.from_json(fields))
    write_manifest(root / "output", entries, totals(entries, None))
    shutil.rmtree(sample, ignore_errors=True)


@contextlib.contextmanager
def project_folder(kept: str | None) -> Iterator[Path]:
    """``--project``'s folder (kept), else a temporary one."""
    if kept is not None:
        Path(kept).mkdir(parents=True, exist_ok=True)
        yield Path(kept)
        return
    with temp_dir("noop") as root:
        yield root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--cols", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--first-build-limit", type=float, default=3600.0)
    parser.add_argument("--project", help="build in (and reuse) this folder; kept")
    parser.add_argument("--quick", action="store_true", help="skip the no-stamp/no-plan runs")
    parser.add_argument("--before", help="also time this snapshot's no-op, alternating")
    parser.add_argument("--after", help="the snapshot under test (default: the installed CLI)")
    parser.add_argument("--rounds", type=int, default=2, help="before/after rounds")
    parser.add_argument("--fabricate", action="store_true", help="make the built state")
    args = parser.parse_args(argv)
    rows, cols = args.rows, args.cols
    full_jobs = rows * cols
    note = ""
    with project_folder(args.project) as root:
        project = root / "p"
        reused = (project / "output" / "manifest.json").is_file()
        if reused:
            first = None
            note = f" (the project built earlier in {args.project} reused)"
        elif args.fabricate:
            first = None
            fabricate(project, rows, cols)
            note = " (the built state FABRICATED: copies of one real file, real cache keys)"
        else:
            shutil.rmtree(project, ignore_errors=True)
            first = first_build(project, rows, cols, args.first_build_limit, args.after)
            if first.returncode != 0:
                small = (max(1, rows // 2), max(1, cols // 2))
                note = (
                    f"; first build of {full_jobs} jobs stopped after {first.wall_s:.0f} s "
                    f"(exit {first.returncode}); EXTRAPOLATED from {small[0]}x{small[1]}"
                )
                rows, cols = small
                project = root / "q"
                first = first_build(project, rows, cols, args.first_build_limit, args.after)
                first.check()
        jobs = rows * cols
        build(project, args.after).check()  # a full check, which stamps the build
        before: list[RunResult] = []
        runs: list[RunResult] = []
        for _ in range(args.rounds if args.before else 1):
            if args.before:
                build(project, args.before).check()  # its own stamp (and stored plan)
                before += noop_builds(project, jobs, args.repeat, args.before)
                build(project, args.after).check()
            runs += noop_builds(project, jobs, args.repeat, args.after)
        fixed = best_of([run([*cli(args.after), "--version"]).check() for _ in range(3)])
        checked = planned = None
        if not args.quick:
            checked = best_of(
                noop_builds(project, jobs, args.repeat, args.after, ("last-build.json",))
            )
            planned = best_of(
                noop_builds(project, jobs, args.repeat, args.after, ("last-build.json", "plans"))
            )
    return report(args, runs, before, fixed, checked, planned, first, (jobs, full_jobs), note)


def report(
    args: argparse.Namespace,
    runs: list[RunResult],
    before: list[RunResult],
    fixed: RunResult,
    checked: RunResult | None,
    planned: RunResult | None,
    first: RunResult | None,
    sizes: tuple[int, int],
    note: str,
) -> int:
    """Print the result line; the exit code."""
    jobs, full_jobs = sizes
    target = LARGE_TARGET_S if full_jobs >= LARGE_JOBS else TARGET_S
    best = best_of(runs)
    scale = full_jobs / jobs
    estimate = best.wall_s
    if scale != 1:  # fixed cost (interpreter and imports) + per-job cost
        estimate = fixed.wall_s + (best.wall_s - fixed.wall_s) * scale
    all_s = ", ".join(f"{r.wall_s:.3f}" for r in runs)
    line = (
        f"no-op build of {jobs} up-to-date jobs in {best.wall_s:.3f} s (best of "
        f"{len(runs)}: {all_s}) = {best.wall_s / jobs * 1e6:.1f} us/job"
        + (f", {estimate:.2f} s extrapolated to {full_jobs}" if scale != 1 else "")
        + f"; peak RSS {best.peak_rss_mb:.0f} MB, CPU {best.cpu_s:.3f} s; "
        f"`assetpipe --version` {fixed.wall_s:.3f} s"
    )
    if before:
        line += (
            f"; before ({args.before}) {best_of(before).wall_s:.3f} s (best of {len(before)}: "
            + ", ".join(f"{r.wall_s:.3f}" for r in before)
            + ")"
        )
    if checked is not None and planned is not None:
        line += (
            f"; without the stamp {checked.wall_s:.3f} s, "
            f"without the stored plan either {planned.wall_s:.3f} s"
        )
    if first is not None:
        line += f"; first build {first.wall_s:.1f} s ({first.wall_s / jobs * 1e3:.1f} ms/job)"
    else:
        line += "; first build not run"
    bound = "<" if target == TARGET_S else "<="
    line += f"{note}; load {os.getloadavg()[0]:.1f}; target {bound} {target:g} s"
    if args.after:
        line += f" [after: {args.after}]"
    return verdict("bench_noop", estimate < target if bound == "<" else estimate <= target, line)


if __name__ == "__main__":
    sys.exit(main())
