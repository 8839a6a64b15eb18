"""The object stores a shared cache can live in, one builder per URL scheme.

Each builder turns a checked :class:`~pipeline.store.shared_format.SharedURL` and the
environment into a :class:`Backend`: the ``obstore`` client, where the layout lives in it,
and how it is listed and guarded. :class:`~pipeline.store.remote.ObjectStore` does the
rest the same way for every scheme. Which builder serves which scheme, and which
variables it needs, is the table in ``pipeline.api.stores``.

Builders import ``obstore`` when called (:class:`S3SupportMissing` without it), so that
this module, and the table that names its builders, import on any install. Nothing here
makes a network call: a client connects on its first request, and the store's first
request is its probe.
"""

from __future__ import annotations

import os
import stat
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from pipeline.store.base import S3SupportMissing
from pipeline.store.s3_listing import Signer, list_page, signed_pages
from pipeline.store.shared_format import LAYOUT, SharedURL, reason

if TYPE_CHECKING:
    from obstore.store import ClientConfig, ObjectStore, RetryConfig, S3Config

Pages = Iterator[list[tuple[str, int]]]
"""Objects (name, size), a page at a time."""
_PAGE: Final = 1000
_RETRY: Final[RetryConfig] = {"max_retries": 2, "retry_timeout": timedelta(seconds=15)}


class BackendUnusable(Exception):
    """The store cannot even be set up (a folder that is not there, a credential file
    that cannot be read); the message says why, in the user's words."""


@dataclass(frozen=True)
class Backend:
    """One shared cache's object store, as :class:`~pipeline.store.remote.ObjectStore`
    uses it."""

    url: SharedURL
    client: ObjectStore
    root: str
    """Where the layout lives in ``client``: ``<prefix>/assetpipe-v1``."""
    absent: str
    """What a 404 for the whole store means, in words: ``no bucket 'x'``."""
    top: Callable[[], object]
    """List the top of ``root`` (a single small request): the store's probe."""
    pages: Callable[[str], Pages]
    """Every object under a prefix (``<root>/records/``), a page at a time."""
    check: Callable[[str], str | None] | None = None
    """Why an object path must not be used (a link planted in a folder); None: it may."""
    updates: bool = True
    """Whether a write can be conditional on the ETag it replaces (a damaged record is
    repaired only that way, so that two repairers agree)."""


def _obstore() -> types.ModuleType:
    """``obstore``, or S3SupportMissing naming the extra that installs it."""
    try:
        import obstore  # noqa: PLC0415 - an optional extra, imported on first use
    except ImportError:
        raise S3SupportMissing(
            "a shared cache (remote_cache) needs the obstore package: pip install 'assetpipe[s3]'"
        ) from None
    return obstore


def _client_options(endpoint: str | None) -> ClientConfig:
    """Short timeouts, so that a remote that does not answer costs a build seconds, not
    minutes; a plain ``http://`` endpoint is allowed as given (a server on the LAN)."""
    options: ClientConfig = {
        "connect_timeout": timedelta(seconds=5),
        "read_timeout": timedelta(seconds=20),
        "timeout": timedelta(seconds=120),
    }
    if endpoint:
        options["allow_http"] = endpoint.lower().startswith("http://")
    return options


def _build(url: SharedURL, make: Callable[[], ObjectStore]) -> ObjectStore:
    """``make()``, or BackendUnusable with obstore's reason."""
    try:
        return make()
    except Exception as exc:
        raise BackendUnusable(f"it cannot be set up: {reason(exc)}") from None


def _root(url: SharedURL) -> str:
    return f"{url.prefix}/{LAYOUT}" if url.prefix else LAYOUT


def _obstore_pages(client: ObjectStore) -> Callable[[str], Pages]:
    """Listing as obstore does it (each page parsed by the client)."""

    def pages(prefix: str) -> Pages:
        for chunk in _obstore().list(client, prefix.rstrip("/"), chunk_size=_PAGE):
            yield [(item["path"], int(item["size"])) for item in chunk]

    return pages


def _obstore_top(client: ObjectStore, root: str) -> Callable[[], object]:
    return lambda: _obstore().list_with_delimiter(client, root)


def _config(environ: Mapping[str, str], fields: Mapping[str, tuple[str, ...]]) -> dict[str, Any]:
    """Each config field from the first of its variables that ``environ`` sets. obstore
    reads the process environment itself too; this carries a given ``environ``."""
    config: dict[str, Any] = {}
    for field, names in fields.items():
        value = next((environ[n] for n in names if environ.get(n)), None)
        if value is not None:
            config[field] = value
    return config


# -- s3:// ---------------------------------------------------------------------------------


def aws_settings(environ: Mapping[str, str]) -> tuple[S3Config, ClientConfig]:
    """obstore's configuration from the standard ``AWS_*`` variables in ``environ``:
    credentials, region, and ``AWS_ENDPOINT_URL`` for MinIO, SeaweedFS or R2. Other ways
    to credentials (web identity, container roles) obstore reads from the process
    environment itself."""
    config: S3Config = {}
    for name, field in (
        ("AWS_ACCESS_KEY_ID", "access_key_id"),
        ("AWS_SECRET_ACCESS_KEY", "secret_access_key"),
        ("AWS_SESSION_TOKEN", "session_token"),
    ):
        if environ.get(name):
            config[field] = environ[name]  # type: ignore[literal-required]
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    if region:
        config["region"] = region
    endpoint = environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        config["endpoint"] = endpoint.rstrip("/")
    return config, _client_options(endpoint)


def s3(url: SharedURL, environ: Mapping[str, str]) -> Backend:
    """An S3-compatible bucket. Where the client signs with keys of its own settings (an
    endpoint and a key: MinIO, SeaweedFS, R2), listings are read by assetpipe, capped
    (:mod:`pipeline.store.s3_listing`); elsewhere obstore lists."""
    config, client_options = aws_settings(environ)
    stores = _obstore().store
    client = _build(
        url,
        lambda: stores.S3Store(
            url.container, config=config, client_options=client_options, retry_config=_RETRY
        ),
    )
    root = _root(url)
    signer = Signer.of(url.container, config)
    if signer is None:
        top, pages = _obstore_top(client, root), _obstore_pages(client)
    else:
        query = {"list-type": "2", "delimiter": "/", "prefix": f"{root}/", "max-keys": "1"}
        top = lambda: list_page(signer, query)  # noqa: E731
        pages = lambda prefix: signed_pages(signer, prefix)  # noqa: E731
    return Backend(url, client, root, f"no bucket {url.container!r}", top, pages)


# -- gs:// ---------------------------------------------------------------------------------

GOOGLE_FIELDS: Final = {
    "service_account": ("GOOGLE_SERVICE_ACCOUNT", "GOOGLE_SERVICE_ACCOUNT_PATH"),
    "service_account_key": ("GOOGLE_SERVICE_ACCOUNT_KEY",),
    "application_credentials": ("GOOGLE_APPLICATION_CREDENTIALS",),
    "bearer_token": ("GOOGLE_BEARER_TOKEN",),
    "base_url": ("GOOGLE_BASE_URL",),
}
"""The ``GOOGLE_*`` variables obstore's GCS client takes, by config field."""


def gcs(url: SharedURL, environ: Mapping[str, str]) -> Backend:
    """A Google Cloud Storage bucket; credentials as Google's application default
    credentials find them (a key file, a service account, or the metadata server on
    Google's own machines, asked on the first request)."""
    return _cloud(url, _config(environ, GOOGLE_FIELDS), "GCSStore", "base_url", "bucket")


# -- az:// ---------------------------------------------------------------------------------

AZURE_FIELDS: Final = {
    "account_name": ("AZURE_STORAGE_ACCOUNT_NAME",),
    "account_key": (
        "AZURE_STORAGE_ACCOUNT_KEY",
        "AZURE_STORAGE_ACCESS_KEY",
        "AZURE_STORAGE_MASTER_KEY",
    ),
    "sas_key": ("AZURE_STORAGE_SAS_KEY", "AZURE_STORAGE_SAS_TOKEN"),
    "token": ("AZURE_STORAGE_TOKEN",),
    "client_id": ("AZURE_STORAGE_CLIENT_ID", "AZURE_CLIENT_ID"),
    "client_secret": ("AZURE_STORAGE_CLIENT_SECRET", "AZURE_CLIENT_SECRET"),
    "tenant_id": ("AZURE_STORAGE_TENANT_ID", "AZURE_TENANT_ID"),
    "federated_token_file": ("AZURE_FEDERATED_TOKEN_FILE",),
    "endpoint": ("AZURE_STORAGE_ENDPOINT", "AZURE_ENDPOINT"),
}
"""The ``AZURE_*`` variables obstore's Azure client takes, by config field."""


def azure(url: SharedURL, environ: Mapping[str, str]) -> Backend:
    """An Azure Blob Storage container of the account ``AZURE_STORAGE_ACCOUNT_NAME``
    names; credentials from the ``AZURE_*`` variables (a key, a SAS token, a service
    principal, workload identity), else a managed identity, asked on the first request."""
    return _cloud(url, _config(environ, AZURE_FIELDS), "AzureStore", "endpoint", "container")


def _cloud(
    url: SharedURL, config: dict[str, Any], store: str, endpoint: str, container: str
) -> Backend:
    """A bucket of obstore's cloud store class ``store``, configured by ``config``
    (``endpoint`` names the field that points it at another host), listed by obstore."""
    make = getattr(_obstore().store, store)
    client = _build(
        url,
        lambda: make(
            url.container,
            config=config,
            client_options=_client_options(config.get(endpoint)),
            retry_config=_RETRY,
        ),
    )
    root = _root(url)
    top, pages = _obstore_top(client, root), _obstore_pages(client)
    return Backend(url, client, root, f"no {container} {url.container!r}", top, pages)


# -- file:// -------------------------------------------------------------------------------


def _link_or_odd(folder: Path, path: str, *, folder_at_end: bool = False) -> str | None:
    """Why ``path`` below ``folder`` must not be opened: a symbolic link on the way, a
    folder where a file belongs or the reverse, or something that is not a plain file (a
    FIFO would block a read forever). A path not there (yet) is fine."""
    parts = path.split("/")
    here = folder
    for depth, part in enumerate(parts, 1):
        here = here / part
        try:
            mode = os.lstat(here).st_mode
        except FileNotFoundError:
            return None
        except OSError as exc:
            return f"unreadable ({exc.strerror})"
        if stat.S_ISLNK(mode):
            return "a symbolic link"
        last = depth == len(parts) and not folder_at_end
        if (last and not stat.S_ISREG(mode)) or (not last and not stat.S_ISDIR(mode)):
            return "not a plain file" if last else "not a folder"
    return None


def folder_problem(folder: Path) -> str | None:
    """Why ``folder`` cannot hold a shared cache: not there (a drive not mounted), a
    link (followed, it could be anywhere), or not a folder."""
    try:
        mode = os.lstat(folder).st_mode
    except FileNotFoundError:
        return f"no folder {folder} (a shared folder must exist: is its drive mounted?)"
    except OSError as exc:
        return f"{folder} cannot be read ({exc.strerror})"
    if stat.S_ISLNK(mode):
        return f"{folder} is a symbolic link; name the folder it points to"
    if not stat.S_ISDIR(mode):
        return f"{folder} is not a folder"
    return None


def folder(url: SharedURL, environ: Mapping[str, str]) -> Backend:
    """A folder of this machine (a network drive, a mount shared by runners), through
    obstore's LocalStore. The folder must exist (it is never created: a drive that is not
    mounted must not become a folder on the local disk). obstore follows links, so every
    object path is checked first (:func:`_link_or_odd`) and folders are listed by
    assetpipe, without following any; a link planted between a check and its use is the
    one race left, and reads are verified against their sha256 all the same."""
    base = Path(url.container)
    problem = folder_problem(base)
    if problem is not None:
        raise BackendUnusable(problem)
    stores = _obstore().store
    client = _build(url, lambda: stores.LocalStore(base))

    def check(path: str, *, folder_at_end: bool = False) -> str | None:
        return folder_problem(base) or _link_or_odd(base, path, folder_at_end=folder_at_end)

    def top() -> object:
        why = check(LAYOUT, folder_at_end=True)
        if why is not None:
            raise BackendUnusable(why)
        return next(_folder_pages(base, LAYOUT), [])

    def pages(prefix: str) -> Pages:
        why = check(prefix.rstrip("/"), folder_at_end=True)
        if why is not None:
            raise BackendUnusable(f"{prefix.rstrip('/')} is {why}")
        return _folder_pages(base, prefix.rstrip("/"))

    return Backend(url, client, LAYOUT, str(base), top, pages, check, updates=False)


def _folder_pages(base: Path, prefix: str) -> Pages:
    """The plain files directly in ``base/prefix`` (the layout is flat), a page at a time;
    links and anything else are skipped, never followed."""
    try:
        entries = os.scandir(base / prefix)
    except FileNotFoundError:
        return
    with entries:
        page: list[tuple[str, int]] = []
        for entry in entries:
            if entry.is_file(follow_symlinks=False):
                page.append((f"{prefix}/{entry.name}", entry.stat(follow_symlinks=False).st_size))
            if len(page) == _PAGE:
                yield page
                page = []
        if page:
            yield page
