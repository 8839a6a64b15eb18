"""The openai/skills-style baseline: ``image_gen.py generate-batch`` as that script does it.

Modelled on ``skills/.curated/imagegen/scripts/image_gen.py`` of github.com/openai/skills
(commit 8dee6f3), its ``generate-batch`` subcommand, as read there (not copied):

- one ``AsyncOpenAI()`` with the SDK's default retries (``max_retries`` 2, which waits a
  ``retry-after-ms`` / ``Retry-After`` of up to 120 s exactly, else 0.5 s doubling);
- a fixed ``asyncio.Semaphore(--concurrency)`` (default 5, at most 25), held across a job's
  retries and their sleeps;
- per job up to ``--max-attempts`` calls (default 3): a rate-limit, timeout or connection
  error sleeps the ``retry after`` it can find on the exception or in its message, else
  ``min(60, 2 ** attempt)`` seconds, and tries again (the SDK's errors carry no such
  attribute or text, so in practice it sleeps 2 s, then 4 s); any other error fails the job;
- no pacing and no reading of the rate-limit headers; each image is decoded and written
  after the semaphore is released; exit 1 when any job failed.

It sends exactly the API jobs of an ``assetpipe plan --json`` document, like
``naive_semaphore.py``, so the comparison is request for request:

    OPENAI_API_KEY=... OPENAI_BASE_URL=http://127.0.0.1:PORT/v1 \\
        .venv/bin/python benchmarks/skills_batch.py --plan plan.json --out DIR

Prints one JSON line: images, failures by error class, wall seconds, images per minute.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import openai
from openai import AsyncOpenAI

DEFAULT_CONCURRENCY = 5
DEFAULT_ATTEMPTS = 3


def retry_after_in(exc: Exception) -> float | None:
    """The script's best effort: a ``retry_after`` attribute, or ``retry-after: N`` text."""
    for name in ("retry_after", "retry_after_seconds"):
        value = getattr(exc, name, None)
        if isinstance(value, int | float) and value >= 0:
            return float(value)
    found = re.search(r"retry[- ]after[:= ]+([0-9]+(?:\.[0-9]+)?)", str(exc), re.IGNORECASE)
    return float(found.group(1)) if found else None


def transient(exc: Exception) -> bool:
    """What the script retries: rate limits, timeouts, dropped connections."""
    text = f"{type(exc).__name__} {exc}".lower()
    markers = ("ratelimit", "rate limit", "429", "too many requests", "timeout", "timed out")
    return any(m in text for m in (*markers, "connection reset"))


async def generate_with_retries(client: AsyncOpenAI, payload: dict[str, Any], attempts: int) -> Any:
    """Up to ``attempts`` calls, sleeping between them as the script does."""
    for attempt in range(1, attempts + 1):
        try:
            return await client.images.generate(**payload)
        except openai.OpenAIError as exc:
            if not transient(exc) or attempt == attempts:
                raise
            wait = retry_after_in(exc)
            await asyncio.sleep(wait if wait is not None else min(60.0, 2.0**attempt))
    raise AssertionError("unreachable")


async def run_job(
    client: AsyncOpenAI, slots: asyncio.Semaphore, job: dict[str, Any], out: Path, attempts: int
) -> str | None:
    """One job; returns the error class name on failure (the script prints and goes on)."""
    payload = {
        "model": job["model"],
        "prompt": job["prompt"],
        "n": 1,
        "size": job["requested_size"],
        "quality": job["quality"],
        "background": job["background"],
        "output_format": job["format"],
    }
    try:
        async with slots:
            result = await generate_with_retries(client, payload, attempts)
    except openai.OpenAIError as exc:
        return type(exc).__name__
    data = base64.b64decode(result.data[0].b64_json or "") if result.data else b""
    (out / (job["id"].replace("/", "__") + "." + job["format"])).write_bytes(data)
    return None


async def run(
    jobs: list[dict[str, Any]], concurrency: int, attempts: int, out: Path
) -> dict[str, Any]:
    client = AsyncOpenAI()  # default max_retries; key and base URL from the environment
    slots = asyncio.Semaphore(concurrency)
    start = time.perf_counter()
    try:
        errors = await asyncio.gather(*(run_job(client, slots, j, out, attempts) for j in jobs))
    finally:
        await client.close()
    wall = time.perf_counter() - start
    failures = Counter(e for e in errors if e is not None)
    images = len(jobs) - sum(failures.values())
    return {
        "jobs": len(jobs),
        "images": images,
        "failures": dict(failures),
        "wall_s": round(wall, 3),
        "images_per_minute": round(images / wall * 60, 1),
        "max_retries": client.max_retries,
        "max_attempts": attempts,
        "concurrency": concurrency,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", type=Path, required=True, help="an assetpipe plan --json file")
    parser.add_argument("--out", type=Path, required=True, help="folder for the images")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    parser.add_argument("--max-attempts", type=int, default=DEFAULT_ATTEMPTS)
    args = parser.parse_args(argv)
    plan = json.loads(args.plan.read_text(encoding="utf-8"))
    jobs = [j for j in plan["jobs"] if j["kind"] == "generate"]
    args.out.mkdir(parents=True, exist_ok=True)
    result = asyncio.run(run(jobs, args.concurrency, args.max_attempts, args.out))
    print(json.dumps(result))
    return 0 if result["images"] == result["jobs"] else 1


if __name__ == "__main__":
    sys.exit(main())
