"""The naive baseline: what most scripts do to send many image requests at once.

Plain ``asyncio`` + ``asyncio.Semaphore(N)`` + ``AsyncOpenAI()`` with the SDK's default
retries (``max_retries`` left at its default, which honours ``Retry-After``), no pacing,
no rate limiter. Each image is decoded and written to a file, as such a script would.

It sends exactly the API jobs of an ``assetpipe plan --json`` document (same model,
prompt, size, quality, background and format), so the comparison is request for request:

    OPENAI_API_KEY=... OPENAI_BASE_URL=http://127.0.0.1:PORT/v1 \\
        .venv/bin/python benchmarks/naive_semaphore.py --plan plan.json --out DIR

Prints one JSON line: images, failures by error class, wall seconds, images per minute.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import openai
from openai import AsyncOpenAI


async def generate_one(
    client: AsyncOpenAI, slots: asyncio.Semaphore, job: dict[str, Any], out: Path
) -> str | None:
    """One request; returns the error class name on failure (the way a script logs it)."""
    async with slots:
        try:
            response = await client.images.generate(
                model=job["model"],
                prompt=job["prompt"],
                size=job["requested_size"],
                quality=job["quality"],
                background=job["background"],
                output_format=job["format"],
                n=1,
            )
        except openai.OpenAIError as exc:
            return type(exc).__name__
    data = base64.b64decode(response.data[0].b64_json or "") if response.data else b""
    name = job["id"].replace("/", "__") + "." + job["format"]
    (out / name).write_bytes(data)
    return None


async def run(jobs: list[dict[str, Any]], concurrency: int, out: Path) -> dict[str, Any]:
    client = AsyncOpenAI()  # default max_retries; key and base URL from the environment
    slots = asyncio.Semaphore(concurrency)
    start = time.perf_counter()
    try:
        errors = await asyncio.gather(*(generate_one(client, slots, j, out) for j in jobs))
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
        "concurrency": concurrency,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", type=Path, required=True, help="an assetpipe plan --json file")
    parser.add_argument("--out", type=Path, required=True, help="folder for the images")
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args(argv)
    plan = json.loads(args.plan.read_text(encoding="utf-8"))
    jobs = [j for j in plan["jobs"] if j["kind"] == "generate"]
    args.out.mkdir(parents=True, exist_ok=True)
    result = asyncio.run(run(jobs, args.concurrency, args.out))
    print(json.dumps(result))
    return 0 if result["images"] == result["jobs"] else 1


if __name__ == "__main__":
    sys.exit(main())
