"""The floor of an assemble: a shared cache's records and images copied into a machine
with nothing else done, as lean as Python and obstore make it.

For each job of a plan (``cache_key`` and ``output`` from ``assetpipe plan --json``, the
file ``--plan``): read the record ``<root>/records/<key>.json``, then the image it names
``<root>/blobs/<sha256>``, check that the bytes hash to that name, and write them twice, as
an assemble must: into a cache folder and into the output tree (each a temporary file
renamed into place). One asyncio loop, obstore's async reads, ``--in-flight`` jobs at
once. No spec, no plan, no manifest, no inspection, no thumbnail, no verification of the
record beyond its JSON: what is left is the network and the files, which any assemble
pays. ``bench_far_bucket.py`` runs it as a whole process beside assetpipe, so its time says
how far this machine (its cores shared with the bucket and the latency proxy) lets an
assemble go at all.

    python lean_assemble.py --bucket NAME --root PREFIX/assetpipe-v1 --plan plan.json --into DIR

The bucket is reached through the ``AWS_*`` variables (endpoint, keys, region).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import secrets
import sys
from pathlib import Path

import obstore
from obstore.store import S3Store


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")  # two jobs, one image
    temporary.write_bytes(data)
    temporary.replace(path)


async def _read(store: S3Store, path: str) -> bytes:
    result = await obstore.get_async(store, path)
    return bytes(await result.bytes_async())


async def _copy(store: S3Store, root: str, key: str, output: str, into: Path) -> None:
    record = json.loads(await _read(store, f"{root}/records/{key}.json"))
    sha = record["blob"]
    data = await _read(store, f"{root}/blobs/{sha}")
    if hashlib.sha256(data).hexdigest() != sha:
        raise ValueError(f"image {sha[:12]} does not hash to its name")
    await asyncio.to_thread(_write, into / "cache" / sha[:2] / sha, data)
    await asyncio.to_thread(_write, into / "output" / output, data)


async def _main(args: argparse.Namespace, jobs: list[tuple[str, str]]) -> int:
    store = S3Store(
        args.bucket,
        endpoint=os.environ["AWS_ENDPOINT_URL"],
        access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        region=os.environ.get("AWS_REGION", "us-east-1"),
        client_options={"allow_http": True},
    )
    gate = asyncio.Semaphore(args.in_flight)

    async def one(key: str, output: str) -> None:
        async with gate:
            await _copy(store, args.root, key, output, args.into)

    await asyncio.gather(*(one(key, output) for key, output in jobs))
    return len(jobs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--root", required=True, help="the layout's root in the bucket")
    parser.add_argument("--plan", type=Path, required=True, help="assetpipe plan --json")
    parser.add_argument("--into", type=Path, required=True, help="the machine's folder")
    parser.add_argument("--in-flight", type=int, default=128)
    args = parser.parse_args()
    plan = json.loads(args.plan.read_text(encoding="utf-8"))
    jobs = [(job["cache_key"], job["output"]) for job in plan["jobs"]]
    copied = asyncio.run(_main(args, jobs))
    print(json.dumps({"copied": copied}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
