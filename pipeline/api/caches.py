"""``assetpipe cache stats|gc|clear``: the local result cache, and the shared one's counts.

``cache gc`` and ``cache clear`` act on this machine's cache only.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.api.stores import cache_tiers as tiers_of
from pipeline.api.workspace import Request
from pipeline.settings import resolve_settings
from pipeline.store import CacheStats, LocalStore, TierStats


def cache_folder(req: Request) -> Path:
    """Where the project's result cache lives."""
    settings = resolve_settings(req.project, dict(req.flags or {}))
    return settings.cache_dir / "cache"


def cache_stats(req: Request) -> CacheStats:
    """Entries, blobs and bytes in the cache."""
    folder = cache_folder(req)
    if not folder.exists():
        return CacheStats(entries=0, blobs=0, bytes=0)
    with LocalStore(folder) as cache:
        return cache.stats()


def cache_tiers(req: Request) -> tuple[TierStats, ...]:
    """The local cache's counts, and the shared cache's when one is configured."""
    return tiers_of(resolve_settings(req.project, dict(req.flags or {})))


def cache_gc(req: Request) -> tuple[int, int]:
    """Drop broken entries and unreferenced blobs."""
    folder = cache_folder(req)
    if not folder.exists():
        return (0, 0)
    with LocalStore(folder) as cache:
        return cache.gc()


def cache_clear(req: Request) -> None:
    """Delete the whole cache (paid results too: the next build pays again)."""
    LocalStore(cache_folder(req)).clear()
