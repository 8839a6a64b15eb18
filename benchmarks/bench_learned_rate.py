"""Learned pacing: no ``--images-per-minute``, an account allowing 120 images/min.

The fake (``--ipm 120 --latency 1.0``) admits 2 images per one-second window and answers
the rest 429 with ``Retry-After`` and its ``x-ratelimit-*`` headers. assetpipe builds 120
jobs (one minute of the limit; 1024x1024, quality low) with no rate flag and its default
concurrency (8), so it must learn the limit from the answers. Side by side, in the same run
and each against a fresh fake: ``naive_semaphore.py`` at the same concurrency and
``skills_batch.py`` (the openai/skills ``generate-batch`` approach) at its default of 5.

Targets for assetpipe (median over rounds): >= 90% of the limit over the whole process,
<= 10% of requests answered 429, every image made.

    .venv/bin/python benchmarks/bench_learned_rate.py [--rounds 1] [--jobs 120]
"""

from __future__ import annotations

import argparse
import statistics
import sys

from common import verdict
from rate_clients import side_by_side

LIMIT_IPM = 120
LATENCY_S = 1.0
CONCURRENCY = 8
SKILLS_CONCURRENCY = 5
TARGET_SHARE = 0.90
TARGET_429 = 0.10


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=120, help="a multiple of 10")
    args = parser.parse_args(argv)
    jobs = args.jobs
    runs = side_by_side(
        "learned",
        jobs // 10,
        10,
        args.rounds,
        ipm=LIMIT_IPM,
        latency=LATENCY_S,
        options=[],
        concurrency=CONCURRENCY,
        skills_concurrency=SKILLS_CONCURRENCY,
    )
    ours = runs["assetpipe"]
    share = statistics.median(r.ratio(r.process_s, LIMIT_IPM) for r in ours)
    refused = statistics.median(r.share_429 for r in ours)
    ok = (
        all(r.exit == 0 and r.images == jobs for r in ours)
        and share >= TARGET_SHARE
        and refused <= TARGET_429
    )
    return verdict(
        "bench_learned_rate",
        ok,
        f"assetpipe without --images-per-minute: {share:.1%} of {LIMIT_IPM}/min over the "
        f"whole process, {refused:.1%} of requests 429 (median of {len(ours)}); "
        f"targets >= {TARGET_SHARE:.0%} and <= {TARGET_429:.0%} 429",
    )


if __name__ == "__main__":
    sys.exit(main())
