"""A far shared cache: ``plan`` and an assemble against a bucket in another region.

SeaweedFS (``weed mini``, started as the tests start it: ``tests/s3servers.py``) holds
what machine A paid for: 400 API jobs (a 20 x 20 matrix, 1024x1024, quality low, built
against the fake Images API). Machines B then reach the bucket through
``latency_proxy.py``, which adds ``--delays`` (20 ms and 100 ms) each way, and each one,
as a whole process, from an empty ``.assetpipe/`` and ``output/``:

- ``plan --json``: every job must be ``cached`` (target <= 1.5 s at 20 ms);
- assemble: ``build --json``: every job ``cached``, no request to the fake; images per
  second over the whole process (target >= 200 images/s at 20 ms).

Every machine holds the team's secret (``ASSETPIPE_REMOTE_CACHE_SECRET``), as the CI
recipe sets it, so machine A shares what inspecting each image found and machines B read
it instead of decoding the images; ``--no-secret`` runs without it (every image decoded
on B).

Machine A draws with ``fake_distinct.py``, so every one of the 400 images has pixels of
its own, as real answers do (the stock fake's 400 answers hold 32 pictures, which work
memoised by pixels would decode only 32 times); ``--shared-pixels`` uses the stock fake.

Before and after side by side in one run, alternating which goes first in each round: the
pipeline of ``--before`` (default: ``git archive HEAD pipeline``) and of ``--after``
(default: a copy of the working tree's ``pipeline/`` taken at the start, so edits made
meanwhile do not leak in). Also printed: the same lookups in another process through
the proxy, one at a time (not at the delays of ``--skip-before``), ``LOOKUPS_IN_FLIGHT``
at once, and by listing the record and blob prefixes first (the alternative to
concurrent lookups). In each round, ``lean_assemble.py`` copies the same images into a
fresh folder as a whole process: the floor of any assemble on this machine, printed beside
assetpipe's (not judged). Every machine is kept until the run ends (see :func:`measure`).

    .venv/bin/python benchmarks/bench_far_bucket.py [--rows 20] [--cols 20] [--rounds 1]
        [--delays 0.02,0.1] [--before DIR] [--after DIR] [--no-secret]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from common import (
    _SNAPSHOT_LAUNCHER,
    FAKE_API,
    FAKE_DISTINCT,
    PYTHON,
    REPO,
    FakeServer,
    RunResult,
    clean_env,
    compiled,
    make_project,
    matrix_spec,
    run,
    snapshot,
    temp_dir,
    verdict,
)
from latency_proxy import LatencyProxy

sys.path.insert(0, str(REPO / "tests"))
from s3servers import S3Server, run_seaweedfs

PLAN_TARGET_S = 1.5
ASSEMBLE_TARGET = 200.0
JUDGED_DELAY = 0.02
TEAM_SECRET = "bench-team-secret-" + "5" * 32
LEAN = Path(__file__).with_name("lean_assemble.py")
LAYOUT = "assetpipe-v1"


def cli(src: Path, command: str, project: Path, *options: str, env: dict[str, str]) -> RunResult:
    """``assetpipe COMMAND`` as a whole process, running the pipeline of ``src``."""
    args = [PYTHON, "-c", _SNAPSHOT_LAUNCHER, str(src), command, "--project", str(project)]
    return run([*args, *options], env=env, cwd=project, timeout=1800)


def machine(root: Path, name: str, rows: int, cols: int, url: str) -> Path:
    """A fresh copy of the team's project: empty cache and output."""
    specs = {"tiles": matrix_spec(rows, cols, prompt="A flat icon, tile {{ x }}-{{ y }}")}
    settings = {"provider": "openai", "remote_cache": {"url": url}}
    return make_project(root / name, specs, settings=settings)


def environ(
    fake: FakeServer, server: S3Server, endpoint: str, *, secret: bool = True
) -> dict[str, str]:
    env = fake.env(clean_env())
    env.update(server.environ())
    env["AWS_ENDPOINT_URL"] = endpoint
    if secret:
        env["ASSETPIPE_REMOTE_CACHE_SECRET"] = TEAM_SECRET
    return env


def statuses(document: dict[str, Any]) -> Counter[str]:
    return Counter(job["status"] for job in document["jobs"])


def measure(
    src: Path, root: Path, tag: str, jobs: int, grid: tuple[int, int], url: str, env: dict[str, str]
) -> tuple[float, float]:
    """One plan and one assemble on fresh machines; (plan seconds, images/s). The machines
    are kept until the run ends: on this machine's disk, files created just after
    thousands were deleted cost several times the kernel time (ext4 steps over inodes
    freed moments ago), a cost of this benchmark's, not of the process it times next."""
    planner = machine(root, f"plan-{tag}", *grid, url)
    plan = cli(src, "plan", planner, "--json", env=env).check()
    if statuses(plan.json()) != {"cached": jobs}:
        raise RuntimeError(f"{tag}: plan found {dict(statuses(plan.json()))}")
    builder = machine(root, f"build-{tag}", *grid, url)
    build = cli(src, "build", builder, "--json", env=env).check()
    if build.json()["counts"] != {"cached": jobs}:
        raise RuntimeError(f"{tag}: assemble gave {build.json()['counts']}")
    print(
        f"    {tag}: CPU of the plan {plan.cpu_s:.2f} s, of the assemble {build.cpu_s:.2f} s "
        f"(kernel {build.sys_s:.2f} s)"
    )
    return plan.wall_s, jobs / build.wall_s


def lean(root: Path, tag: str, url: str, plan: Path, env: dict[str, str]) -> float:
    """``lean_assemble.py`` copying the plan's shared images into a fresh folder, as a whole
    process (images/s): the floor of any assemble on this machine."""
    bucket, prefix = url.split("/")[2], url.split("/", 3)[3]
    into = root / f"lean-{tag}"
    args = [PYTHON, str(LEAN), "--bucket", bucket, "--root", f"{prefix}/{LAYOUT}"]
    args += ["--plan", str(plan), "--into", str(into)]
    copied = run(args, env=env, cwd=root, timeout=600)
    jobs = len(json.loads(plan.read_text(encoding="utf-8"))["jobs"])
    if copied.check().json() != {"copied": jobs}:
        raise RuntimeError(f"lean assemble: {copied.stdout[-300:]}")
    print(f"    lean-{tag}: CPU {copied.cpu_s:.2f} s (kernel {copied.sys_s:.2f} s)")
    return jobs / copied.wall_s


def in_process(
    src: Path, server: S3Server, endpoint: str, url: str, payloads: str, *, serial: bool
) -> str:
    """Lookups of every job through the proxy in another process, three ways (seconds);
    one at a time only with ``serial`` (at 100 ms that alone takes ~3 minutes)."""
    code = f"""
import sys, time, json
sys.path.insert(0, {str(src)!r})
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from pipeline.api.stores import open_remote
from pipeline.hashing import CacheRequest
from pipeline.store.shared_format import record_path, blob_path
from pipeline.store.prefetch import LOOKUPS_IN_FLIGHT
keys = json.loads(sys.stdin.read())
store = open_remote({url!r}, "read-only")
store.health()
requests = [CacheRequest(p) for p in keys]
def timed(f):
    t = time.perf_counter(); n = f(); return time.perf_counter() - t, n
one = (0.0, "not run")
if {serial!r}:
    one = timed(lambda: sum(store.lookup(r) is not None for r in requests))
with ThreadPoolExecutor(LOOKUPS_IN_FLIGHT) as pool:
    many = timed(lambda: sum(x is not None for x in pool.map(store.lookup, requests)))
def listed():
    records = {{p for p, _ in store._objects("records")}}
    blobs = {{p for p, _ in store._objects("blobs")}}
    wanted = [r for r in requests if f"{{store.root}}/{{record_path(r.key)}}" in records]
    with ThreadPoolExecutor(LOOKUPS_IN_FLIGHT) as pool:
        found = pool.map(lambda r: store._record(r.key), wanted)
        return sum(f is not None and f[0] is not None
                   and f"{{store.root}}/{{blob_path(f[0].blob)}}" in blobs for f in found)
lists = timed(listed)
print(f"one at a time {{one[0]:.2f}} s ({{one[1]}} hits); {{LOOKUPS_IN_FLIGHT}} at once "
      f"{{many[0]:.2f}} s ({{many[1]}}); listing records+blobs then reading records "
      f"{{lists[0]:.2f}} s ({{lists[1]}})")
"""
    env = {**clean_env(), **server.environ(), "AWS_ENDPOINT_URL": endpoint}
    done = subprocess.run(
        [PYTHON, "-c", code],
        check=False,
        input=payloads,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    return done.stdout.strip() or done.stderr.strip()[-500:]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20)
    parser.add_argument("--cols", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--delays", default="0.02,0.1", help="seconds each way, comma-separated")
    parser.add_argument("--before", type=Path, help="a folder holding the 'before' pipeline/")
    parser.add_argument("--after", type=Path, help="a folder holding the 'after' pipeline/")
    parser.add_argument("--skip-before", default="", help="delays at which 'before' is not run")
    parser.add_argument(
        "--shared-pixels", action="store_true", help="the stock fake: 32 pictures in all"
    )
    parser.add_argument(
        "--no-secret", action="store_true", help="no team secret: B decodes every image"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    jobs, grid = args.rows * args.cols, (args.rows, args.cols)
    delays = [float(d) for d in args.delays.split(",")]
    skip = {float(d) for d in args.skip_before.split(",") if d}
    script = FAKE_API if args.shared_pixels else FAKE_DISTINCT
    with temp_dir("far-bucket") as root, FakeServer(latency=0.0, script=script) as fake:
        sources = {
            "before": compiled(args.before) if args.before else snapshot(root / "before", True),
            "after": compiled(args.after) if args.after else snapshot(root / "after", False),
        }
        with run_seaweedfs(root / "weed") as server:
            url = server.url("bench")
            a = machine(root, "a", *grid, url)
            secret = not args.no_secret
            env_a = environ(fake, server, server.endpoint, secret=secret)
            paid = cli(sources["after"], "build", a, "--json", env=env_a).check()
            if paid.json()["counts"] != {"generated": jobs}:
                raise RuntimeError(f"machine A: {paid.json()['counts']}")
            billed = fake.stats()["billed_images"]
            payloads = _shared_requests(server, url)
            plan_file = root / "plan.json"
            planned = cli(
                sources["after"], "plan", machine(root, "planned", *grid, url), "--json", env=env_a
            )
            plan_file.write_text(planned.check().stdout, encoding="utf-8")
            results: dict[tuple[str, float], list[tuple[float, float]]] = {}
            lines: list[str] = []
            with LatencyProxy("127.0.0.1", int(server.endpoint.rsplit(":", 1)[1]), delay=0) as px:
                env = environ(fake, server, px.endpoint, secret=secret)
                for delay in delays:
                    px.set_delay(delay)
                    for n in range(args.rounds):
                        order = ["before", "after"] if n % 2 == 0 else ["after", "before"]
                        for variant in order:
                            if variant == "before" and delay in skip:
                                continue
                            tag = f"{variant}-{delay}-{n}"
                            figures = measure(sources[variant], root, tag, jobs, grid, url, env)
                            results.setdefault((variant, delay), []).append(figures)
                            print(
                                f"  {delay * 1e3:.0f} ms {variant:6} round {n + 1}: plan "
                                f"{figures[0]:.2f} s, assemble {figures[1]:.1f} images/s "
                                f"(load {os.getloadavg()[0]:.1f})",
                                flush=True,
                            )
                        floor = lean(root, f"{delay}-{n}", url, plan_file, env)
                        results.setdefault(("lean", delay), []).append((0.0, floor))
                        print(
                            f"  {delay * 1e3:.0f} ms lean   round {n + 1}: assemble "
                            f"{floor:.1f} images/s (load {os.getloadavg()[0]:.1f})",
                            flush=True,
                        )
                    lines.append(
                        f"  {delay * 1e3:.0f} ms, in-process lookups of {jobs} keys (after): "
                        + in_process(
                            sources["after"],
                            server,
                            px.endpoint,
                            url,
                            payloads,
                            serial=delay not in skip,
                        )
                    )
            if fake.stats()["billed_images"] != billed:
                raise RuntimeError("machines B paid for images machine A had shared")
    _table(jobs, delays, results)
    print("\n".join(lines))
    after = results.get(("after", JUDGED_DELAY), [])
    plan_s = statistics.median(f[0] for f in after) if after else float("inf")
    rate = statistics.median(f[1] for f in after) if after else 0.0
    return verdict(
        "bench_far_bucket",
        plan_s <= PLAN_TARGET_S and rate >= ASSEMBLE_TARGET,
        f"{jobs} jobs, bucket {JUDGED_DELAY * 1e3:.0f} ms away each way: plan {plan_s:.2f} s "
        f"(target <= {PLAN_TARGET_S} s), assemble {rate:.0f} images/s (target >= "
        f"{ASSEMBLE_TARGET:.0f}); load {os.getloadavg()[0]:.1f}",
    )


def _table(jobs: int, delays: list[float], results: dict[tuple[str, float], Any]) -> None:
    """The medians of every row, before, after and the lean copy beside each other."""
    print()
    print(
        f"| far bucket, {jobs} jobs | before plan | after plan | before assemble | after assemble "
        "| lean copy |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for delay in delays:
        cells = []
        for index, unit in ((0, "s"), (1, "img/s")):
            for variant in ("before", "after"):
                got = results.get((variant, delay))
                value = statistics.median(f[index] for f in got) if got else None
                cells.append("—" if value is None else f"{value:.2f} {unit}")
        floors = results.get(("lean", delay))
        cells.append(f"{statistics.median(f[1] for f in floors):.2f} img/s" if floors else "—")
        print(f"| {delay * 1e3:.0f} ms each way | " + " | ".join(cells) + " |")


def _shared_requests(server: S3Server, url: str) -> str:
    """The requests machine A shared, as a JSON list of payloads (from its records)."""
    import obstore

    raw = server.raw()
    prefix = url.split("/", 3)[3]
    payloads = []
    with ThreadPoolExecutor(16) as pool:
        paths = [
            item["path"]
            for chunk in obstore.list(raw, f"{prefix}/assetpipe-v1/records", chunk_size=1000)
            for item in chunk
        ]
        for body in pool.map(lambda p: bytes(obstore.get(raw, p).bytes()), paths):
            payloads.append(json.loads(body)["meta"]["request"])
    return json.dumps(payloads)


if __name__ == "__main__":
    started = time.perf_counter()
    code = main()
    print(f"(took {time.perf_counter() - started:.0f} s)", file=sys.stderr)
    sys.exit(code)
