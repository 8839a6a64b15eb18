"""``assetpipe cache``: inspect or clean the result cache without reading any spec.

A group of its own because its commands take only the project and cache folders (not
the spec, provider and output flags of the others) and never plan anything.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from pipeline import api
from pipeline.cli.options import cache_options, cache_request
from pipeline.cli.render import out


@click.group()
def cache() -> None:
    """Inspect or clean the result cache (.assetpipe/cache)."""


@cache.command("stats")
@cache_options
def cache_stats(**kw: Any) -> None:
    """Entries, image blobs and bytes in the cache."""
    stats = api.cache_stats(cache_request(kw))
    out.print(f"{stats.entries} entries, {stats.blobs} blobs, {stats.bytes / 1e6:.1f} MB")


@cache.command("gc")
@cache_options
def cache_gc(**kw: Any) -> None:
    """Drop broken entries and blobs no entry uses."""
    dropped, removed = api.cache_gc(cache_request(kw))
    out.print(f"removed {dropped} broken entries and {removed} unused blobs")


@cache.command("clear")
@cache_options
@click.option("--yes", is_flag=True, help="Do not ask (paid results are deleted).")
def cache_clear(**kw: Any) -> None:
    """Delete every cached result; the next build pays again for what output/ lacks."""
    if not kw["yes"] and not click.confirm("Delete every cached (paid) result?", err=True):
        sys.exit(1)
    api.cache_clear(cache_request(kw))
    out.print("cache cleared")
