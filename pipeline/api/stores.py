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

Which store serves a ``remote_cache`` URL is :data:`REMOTES`, one row per scheme (as dvc's
``get_cloud_fs`` and obstore's ``from_url`` choose by scheme): how the store is built,
the variables it needs, and what to say when the credentials it reads are not there.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import UsageError
from pipeline.settings import Settings
from pipeline.store import (
    CacheStats,
    LayeredStore,
    LocalStore,
    RemoteMode,
    ResultStore,
    TierStats,
    backends,
    open_layered,
)
from pipeline.store.backends import Backend, BackendUnusable
from pipeline.store.sealed_facts import TeamSeal
from pipeline.store.shared_format import SharedURL, parse_url
from pipeline.store.unusable import UnusableStore

log = logging.getLogger("assetpipe.cache")
EMPTY = CacheStats(entries=0, blobs=0, bytes=0)


@dataclass(frozen=True)
class Remote:
    """How the shared cache of one URL scheme is reached."""

    build: Callable[[SharedURL, Mapping[str, str]], Backend]
    credentials: tuple[str, ...]
    """Variables any one of which gives credentials; none set is said with ``missing``
    when the store then cannot be read (a role or a metadata server may still serve)."""
    missing: str | None
    needs: tuple[str, ...] = ()
    """Variables without which the store cannot be set up at all."""
    fix: str = ""
    """What to check when a required shared cache cannot be read."""


REMOTES: Mapping[str, Remote] = {
    "s3": Remote(
        backends.s3,
        credentials=(
            "AWS_ACCESS_KEY_ID",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        ),
        missing="no AWS credentials are set: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
        "(or a role's variables)",
        fix="its credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or endpoint "
        "(AWS_ENDPOINT_URL)",
    ),
    "gs": Remote(
        backends.gcs,
        credentials=(
            "GOOGLE_APPLICATION_CREDENTIALS",
            "GOOGLE_SERVICE_ACCOUNT",
            "GOOGLE_SERVICE_ACCOUNT_PATH",
            "GOOGLE_SERVICE_ACCOUNT_KEY",
            "GOOGLE_BEARER_TOKEN",
        ),
        missing="no Google credentials are set: GOOGLE_APPLICATION_CREDENTIALS (a key or "
        "workload identity file), GOOGLE_SERVICE_ACCOUNT_KEY or GOOGLE_SERVICE_ACCOUNT",
        fix="its credentials (GOOGLE_APPLICATION_CREDENTIALS or GOOGLE_SERVICE_ACCOUNT_KEY)",
    ),
    "az": Remote(
        backends.azure,
        credentials=(
            "AZURE_STORAGE_ACCOUNT_KEY",
            "AZURE_STORAGE_ACCESS_KEY",
            "AZURE_STORAGE_MASTER_KEY",
            "AZURE_STORAGE_SAS_KEY",
            "AZURE_STORAGE_SAS_TOKEN",
            "AZURE_STORAGE_TOKEN",
            "AZURE_CLIENT_SECRET",
            "AZURE_STORAGE_CLIENT_SECRET",
            "AZURE_FEDERATED_TOKEN_FILE",
            "AZURE_USE_AZURE_CLI",
        ),
        missing="no Azure credentials are set: AZURE_STORAGE_ACCOUNT_KEY, "
        "AZURE_STORAGE_SAS_TOKEN, or AZURE_CLIENT_ID with AZURE_CLIENT_SECRET and "
        "AZURE_TENANT_ID",
        needs=("AZURE_STORAGE_ACCOUNT_NAME",),
        fix="its account (AZURE_STORAGE_ACCOUNT_NAME) and credentials "
        "(AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_TOKEN)",
    ),
    "file": Remote(
        backends.folder,
        credentials=(),
        missing=None,
        fix="that the folder exists, is mounted and can be read",
    ),
}
"""The shared cache's stores by URL scheme (the URL forms are
``pipeline.store.shared_format.URL_FORMS``). Credentials come from each cloud's standard
environment, never from the URL or assetpipe.yaml."""


def _set(name: str, environ: Mapping[str, str]) -> bool:
    """Whether ``name`` is set here; obstore reads the process environment too."""
    return bool(environ.get(name) or os.environ.get(name))


def open_remote(
    url: str,
    mode: RemoteMode = "read-write",
    environ: Mapping[str, str] | None = None,
    *,
    cache_dir: Path | None = None,
) -> ResultStore:
    """The shared cache at ``url``, built by its scheme's row of :data:`REMOTES` from
    ``environ`` (the process environment by default), writable in ``read-write`` mode.

    No network is asked here. A store that cannot be set up (a variable it needs, a
    folder that is not there) is an :class:`UnusableStore` that says why; a folder inside
    this project's cache folder (``cache_dir``) is a UsageError: ``cache clear`` would
    delete it. S3SupportMissing without the ``s3`` extra."""
    parsed = parse_url(url)
    remote = REMOTES[parsed.scheme]
    env = os.environ if environ is None else environ
    if parsed.scheme == "file" and cache_dir is not None:
        folder, cache = Path(parsed.container).resolve(), cache_dir.resolve()
        if folder == cache or cache in folder.parents:
            raise UsageError(
                f"the shared cache {parsed} is inside this project's cache folder "
                f"({cache_dir}); a shared folder must be outside it, or `cache clear` "
                "would delete the team's cache"
            )
    absent = [name for name in remote.needs if not _set(name, env)]
    if absent:
        return UnusableStore(str(parsed), f"{' and '.join(absent)} is not set")
    try:
        backend = remote.build(parsed, env)
    except BackendUnusable as exc:
        return UnusableStore(str(parsed), str(exc))
    from pipeline.store.remote import ObjectStore  # noqa: PLC0415 - obstore is an optional extra

    anonymous = remote.missing
    if any(_set(name, env) for name in remote.credentials):
        anonymous = None
    return ObjectStore(backend, writable=mode == "read-write", anonymous=anonymous)


def _open_layered(
    settings: Settings, url: str, local: LocalStore, mode: RemoteMode
) -> LayeredStore:
    """``local`` over the shared cache at ``url``, sealing and opening the inspections
    that travel with its images with the team's secret when this machine holds it."""
    remote = open_remote(url, mode, cache_dir=settings.cache_dir)
    return open_layered(local, remote, mode, seal=TeamSeal.from_environ(os.environ))


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
    layered = _open_layered(settings, settings.remote_cache, local, mode)
    problem = layered.health()
    if problem is not None and settings.remote_cache_required:
        layered.close()
        fix = REMOTES[parse_url(settings.remote_cache).scheme].fix
        raise UsageError(
            f"{problem}. The shared cache is required here (remote_cache: {{required: true}} "
            "or ASSETPIPE_REMOTE_CACHE_REQUIRED=1), so nothing was planned or paid for: "
            f"check {fix}, then run again"
        )
    return layered


def stop_paying_when_lost(
    settings: Settings, store: ResultStore, stop: Callable[[str], object]
) -> list[str]:
    """With a required shared cache, ``stop`` paying (told why) once it is lost in the
    middle of a build: gone down, each image not copied from it yet would be paid for
    again; refusing writes, each image paid for here would be paid for again by the
    team (a CI assembly copies what the shards share). Requiring the cache is meant to
    prevent both. Cached results are still delivered and what is paid for already is
    kept. The list returned is filled with what went wrong (the build then exits 2)."""
    lost: list[str] = []
    if not settings.remote_cache_required or not isinstance(store, LayeredStore):
        return lost

    def stop_paying(what: str) -> None:
        lost.append(what)
        stop(
            f"stopped paying: the required shared cache {settings.remote_cache} {what}, so "
            "what is paid for now would be paid for twice; run the build again once it can "
            "be read and written"
        )

    store.when_lost(stop_paying)
    return lost


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
        layered = _open_layered(settings, settings.remote_cache, local, settings.remote_cache_mode)
        with layered:
            return tier, layered.tiers()[1]
