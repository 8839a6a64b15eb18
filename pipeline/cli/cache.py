"""``assetpipe cache``: inspect or clean the result cache without reading any spec.

A group of its own because its commands take only the project and cache folders (not
the spec, provider and output flags of the others) and never plan anything. ``stats``
also counts the team's shared cache when one is configured; ``gc`` and ``clear`` act on
this machine's cache only (a shared cache is pruned by the bucket's lifecycle rules).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from pipeline import api
from pipeline.cli.options import cache_options, cache_request, remote_options
from pipeline.cli.render import counted, out, shown

if TYPE_CHECKING:
    from pipeline.store import TierStats


@click.group()
def cache() -> None:
    """Inspect or clean the result cache (.assetpipe/cache)."""


def _with_remote(func: Any) -> Any:
    """The shared cache's flags, which only ``stats`` reads."""
    for option in reversed(remote_options()):
        func = option(func)
    return func


@cache.command("stats")
@cache_options
@_with_remote
def cache_stats(**kw: Any) -> None:
    """Entries, image blobs and bytes in the cache (and in the shared cache, if any)."""
    tiers = api.cache_tiers(cache_request(kw))
    if len(tiers) == 1:
        out.print(shown(_counts(tiers[0])))
        return
    for tier in tiers:
        mode = f" ({tier.mode})" if tier.tier == "shared" else ""
        out.print(f"{tier.tier:<7}{shown(tier.where)}{mode}: {shown(_counts(tier))}")


def _counts(tier: TierStats) -> str:
    if tier.stats is None:
        return f"cannot be counted ({tier.problem})"
    stats = tier.stats
    return (
        f"{counted(stats.entries, 'entry', 'entries')}, {counted(stats.blobs, 'blob')}, "
        f"{stats.bytes / 1e6:.1f} MB"
    )


@cache.command("gc")
@cache_options
def cache_gc(**kw: Any) -> None:
    """Drop broken entries and blobs no entry uses (this machine's cache only)."""
    dropped, removed = api.cache_gc(cache_request(kw))
    out.print(
        f"removed {counted(dropped, 'broken entry', 'broken entries')} and "
        f"{counted(removed, 'unused blob')}"
    )


@cache.command("clear")
@cache_options
@click.option("--yes", is_flag=True, help="Do not ask (paid results are deleted).")
def cache_clear(**kw: Any) -> None:
    """Delete every cached result on this machine (never the shared cache); the next
    build takes what output/ lacks from the shared cache, or pays again."""
    if not kw["yes"]:
        if not sys.stdin.isatty():  # nobody to ask: a script must say so
            raise click.UsageError("cache clear deletes paid results; pass --yes to confirm")
        if not click.confirm("Delete every cached (paid) result?", err=True):
            sys.exit(1)
    api.cache_clear(cache_request(kw))
    out.print("cache cleared")
