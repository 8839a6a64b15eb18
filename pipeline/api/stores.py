"""Which result store a command uses: this machine's cache, or it over the team's.

The one place that picks a concrete :class:`~pipeline.store.ResultStore`. Without
``remote_cache`` every command uses the local store (``.assetpipe/cache``). With one:

- ``build`` reads local, then shared, and in ``read-write`` mode shares what it pays for
  (:class:`~pipeline.store.LayeredStore`);
- ``plan`` and ``check`` look keys up in both tiers, so a result another machine shared
  shows as ``cached``; a lookup downloads no image and writes nothing anywhere;
- ``cache stats`` counts both tiers; ``cache gc`` and ``cache clear`` touch only the
  local one (a shared cache is pruned by the bucket's own lifecycle rules, never by one
  machine's idea of what is still used).

A free provider (``preview``) never uses the shared cache: its placeholders are worth
nothing to anyone else, and their keys name the provider, so they could never satisfy a
real build anyway. ``build --force`` reads the shared cache but shares nothing: a result
paid for again on purpose stays on this machine, and the shared cache keeps the first
result committed under the key, which is what every other machine delivers.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from pipeline.errors import UsageError
from pipeline.settings import Settings
from pipeline.store import (
    CacheStats,
    LayeredStore,
    LocalStore,
    RemoteMode,
    ResultStore,
    TierStats,
    open_layered,
)

log = logging.getLogger("assetpipe.cache")
EMPTY = CacheStats(entries=0, blobs=0, bytes=0)


def local_store(settings: Settings) -> LocalStore:
    """This machine's result cache (``<cache_dir>/cache``); opening it creates nothing."""
    return LocalStore(settings.cache_dir / "cache")


def _layered(settings: Settings, local: LocalStore, mode: RemoteMode) -> ResultStore:
    """``local`` over the shared cache the settings name, or ``local`` alone.

    The shared cache is asked at once whether it can be read: one that cannot (no
    credentials, refused, unreachable) is one loud warning now, before anything is planned
    or paid for, not a silent miss per job; with ``required`` it is exit 2."""
    if settings.remote_cache is None:
        return local
    if settings.provider_entry.free:
        log.info(
            "the shared cache is not used with the free %s provider: its images are "
            "placeholders no other machine needs",
            settings.provider,
        )
        return local
    layered = open_layered(local, settings.remote_cache, mode)
    problem = layered.health()
    if problem is not None and settings.remote_cache_required:
        layered.close()
        raise UsageError(
            f"{problem}. The shared cache is required here (remote_cache: {{required: true}} "
            "or ASSETPIPE_REMOTE_CACHE_REQUIRED=1), so nothing was planned or paid for: fix "
            "its credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or endpoint "
            "(AWS_ENDPOINT_URL), then run again"
        )
    return layered


def shared_cache_problem(store: ResultStore | None) -> str | None:
    """Why the shared tier of ``store`` cannot be relied on (None: it can, or there is
    none), for the ``--json`` documents."""
    return store.health() if isinstance(store, LayeredStore) else None


@contextlib.contextmanager
def build_store(
    settings: Settings, *, force: bool = False
) -> Iterator[tuple[LocalStore, ResultStore]]:
    """The local store (whose folders a build prepares and locks) and the store the build
    reads and commits through; both closed at the end."""
    local = local_store(settings)
    mode: RemoteMode = "read-only" if force else settings.remote_cache_mode
    store = _layered(settings, local, mode)
    try:
        yield local, store
    finally:
        store.close()
        local.close()


@contextlib.contextmanager
def lookup_store(settings: Settings) -> Iterator[ResultStore | None]:
    """The store ``plan`` and ``check`` look keys up in; None when there is none to read
    (no local cache yet and no shared one)."""
    local = local_store(settings)
    store = _layered(settings, local, "read-only")
    if store is local and not local.folder.exists():
        yield None
        return
    try:
        yield store
    finally:
        store.close()
        local.close()


def cache_tiers(settings: Settings) -> tuple[TierStats, ...]:
    """What ``cache stats`` shows: the local tier, and the shared one when configured
    (whatever the provider: the team's cache is counted here, not used)."""
    with local_store(settings) as local:
        stats = local.stats() if local.folder.exists() else EMPTY
        tier = TierStats("local", str(local.folder), "read-write", stats)
        if settings.remote_cache is None:
            return (tier,)
        layered = open_layered(local, settings.remote_cache, settings.remote_cache_mode)
        with layered:
            return tier, layered.tiers()[1]
