"""Memory: peak RSS of ``assetpipe build`` for 2,000 images at 1024x1024.

The fake API answers in 0.05 s with a 1024x1024 PNG (base64 in JSON, as the real API
does); the build runs with ``--concurrency 32``. The peak resident set size of the
assetpipe process is taken from ``ru_maxrss`` of that one child (``os.wait4``) and from
polling ``/proc/<pid>/status`` VmHWM; the larger is reported. Target: under 300 MB.

Two payloads, both judged against the target:

- ``stock``: ``tests/fakeapi.py`` as is — flat-colour PNGs of about 17 KB each;
- ``real``: ``fake_heavy.py`` — the same fake serving noisy PNGs of about 2.5 MB, the size
  of real gpt-image output, so the bodies in flight weigh what they would in production.
  It moves ~5 GB through the cache and output folder, so it runs ``--real-jobs`` (default
  600) jobs; peak memory is set by what is in flight, not by the job count.

    .venv/bin/python benchmarks/bench_memory.py [--jobs 2000] [--real-jobs 600] [--only stock]
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from common import (
    FAKE_API,
    FAKE_HEAVY,
    FakeServer,
    assetpipe,
    make_project,
    matrix_spec,
    temp_dir,
    verdict,
)

LATENCY_S = 0.05
CONCURRENCY = 32
TARGET_MB = 300.0
PAYLOADS = {"stock": FAKE_API, "real": FAKE_HEAVY}


def measure(payload: str, jobs: int) -> dict[str, Any]:
    cols = 50 if jobs % 50 == 0 else jobs
    rows = jobs // cols
    with temp_dir(f"memory-{payload}") as root:
        with FakeServer(latency=LATENCY_S, script=PAYLOADS[payload]) as fake:
            spec = matrix_spec(rows, cols, prompt="A simple flat icon, tile {{ x }}-{{ y }}")
            make_project(root, {"tiles": spec})
            options = ["--provider", "openai", "--concurrency", str(CONCURRENCY), "--json"]
            env = fake.env()
            result = assetpipe("build", root, *options, env=env, timeout=600, poll_memory=True)
            stats = fake.stats()
        sample = next((root / "output" / "tiles").glob("*.png"), None)
        image_bytes = sample.stat().st_size if sample else 0
    summary = result.json() if result.stdout.strip() else {}
    if result.returncode != 0:
        print(result.stderr[-2000:], file=sys.stderr)
    return {
        "payload": payload,
        "jobs": jobs,
        "exit": result.returncode,
        "generated": summary.get("counts", {}).get("generated", 0),
        "wall_s": result.wall_s,
        "peak_mb": result.peak_rss_mb,
        "maxrss_mb": result.maxrss_kb / 1024,
        "hwm_mb": result.vm_hwm_kb / 1024,
        "image_kb": image_bytes / 1024,
        "peak_in_flight": stats["peak_in_flight"],
    }


def describe(m: dict[str, Any]) -> str:
    return (
        f"[{m['payload']}] {m['generated']}/{m['jobs']} images at 1024x1024 "
        f"(~{m['image_kb']:.0f} KB each) in {m['wall_s']:.1f} s; peak RSS {m['peak_mb']:.0f} MB "
        f"(ru_maxrss {m['maxrss_mb']:.0f}, VmHWM {m['hwm_mb']:.0f}); "
        f"peak_in_flight {m['peak_in_flight']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000, help="jobs with the stock fake")
    parser.add_argument("--real-jobs", type=int, default=600, help="jobs with real-size images")
    parser.add_argument("--only", choices=sorted(PAYLOADS))
    args = parser.parse_args(argv)
    runs = []
    if args.only in (None, "stock"):
        runs.append(measure("stock", args.jobs))
    if args.only in (None, "real"):
        runs.append(measure("real", args.real_jobs))
    ok = all(m["exit"] == 0 and m["generated"] == m["jobs"] for m in runs)
    ok = ok and all(m["peak_mb"] < TARGET_MB for m in runs)
    return verdict(
        "bench_memory",
        ok,
        "; ".join(describe(m) for m in runs)
        + f"; load {os.getloadavg()[0]:.1f}; target < {TARGET_MB:g} MB",
    )


if __name__ == "__main__":
    sys.exit(main())
