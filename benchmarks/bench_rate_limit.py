"""Rate-limit pacing: 200 images against a 1,200 images/min limit, versus two baselines.

The fake API (``--ipm 1200 --latency 0.3``) admits 20 images per one-second window and
answers the rest 429 with ``Retry-After``. assetpipe builds 200 jobs (1024x1024, quality
low) with ``--images-per-minute 1200 --concurrency 32``; side by side, in the same run and
each against a fresh fake with the same settings, the same 200 requests go through
``naive_semaphore.py`` (asyncio.Semaphore(32) + AsyncOpenAI, SDK default retries) and
``skills_batch.py`` (the openai/skills ``generate-batch`` approach at its default
concurrency of 5).

Achieved images/min is reported three ways (see ``rate_clients.py``): over the build phase
(``build --json`` ``elapsed_s``), over the whole process (start-up, planning, manifest
and gallery included: the target is judged on this one), and from the first request the
fake saw to the last image it billed. Targets for assetpipe (median over rounds): >= 92% of
the limit over the whole process, < 5% of requests answered 429, every image made.

    .venv/bin/python benchmarks/bench_rate_limit.py [--rounds 3] [--rows 10] [--cols 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys

from common import verdict
from rate_clients import side_by_side

LIMIT_IPM = 1200
LATENCY_S = 0.3
CONCURRENCY = 32
SKILLS_CONCURRENCY = 5
TARGET_SHARE = 0.92
TARGET_429 = 0.05


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=10)
    parser.add_argument("--cols", type=int, default=20)
    args = parser.parse_args(argv)
    jobs = args.rows * args.cols
    runs = side_by_side(
        "ratelimit",
        args.rows,
        args.cols,
        args.rounds,
        ipm=LIMIT_IPM,
        latency=LATENCY_S,
        options=["--images-per-minute", str(LIMIT_IPM), "--concurrency", str(CONCURRENCY)],
        concurrency=CONCURRENCY,
        skills_concurrency=SKILLS_CONCURRENCY,
    )
    ours = runs["assetpipe"]
    share = statistics.median(r.ratio(r.process_s, LIMIT_IPM) for r in ours)
    build = statistics.median(r.ratio(r.work_s, LIMIT_IPM) for r in ours)
    refused = statistics.median(r.share_429 for r in ours)
    ok = (
        all(r.exit == 0 and r.images == jobs for r in ours)
        and share >= TARGET_SHARE
        and refused < TARGET_429
    )
    return verdict(
        "bench_rate_limit",
        ok,
        f"assetpipe --images-per-minute {LIMIT_IPM}: {share:.1%} of the limit over the whole "
        f"process ({build:.1%} over the build phase), {refused:.1%} of requests 429 (median "
        f"of {len(ours)}); targets >= {TARGET_SHARE:.0%} whole process and < {TARGET_429:.0%} "
        "429",
    )


if __name__ == "__main__":
    sys.exit(main())
