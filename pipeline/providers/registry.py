"""The one list of image providers: what each is called, how to make it, what it owns.

A provider owns its models (a :class:`~pipeline.catalog.Catalog` of rules and prices),
its ``options:`` and how a request is worded on its wire (a
:class:`~pipeline.jobs.wire.RequestFormat`). Settings validate ``--provider`` against
this list, the CLI lists it, the planner takes the chosen provider's models and wording
from it, and the composition root builds the provider from it. Every provider, the
built-in ones included, is found through the ``assetpipe.providers`` entry point group,
the way ``llm`` takes plugins: each entry point names a :class:`ProviderEntry`, so a new
backend is a package of its own and no line here.

Factories import their backend lazily: importing the OpenAI SDK costs a quarter of a
second that ``plan``, ``check`` and preview builds have no use for.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline.catalog import Catalog, ModelPolicy
from pipeline.hashing import sha256_bytes
from pipeline.jobs.wire import RequestFormat
from pipeline.plugins import add_plugins, entry_points_of
from pipeline.providers.openai_catalog import openai_catalog
from pipeline.providers.openai_request import OPENAI_FORMAT

if TYPE_CHECKING:  # types only: `assetpipe --help` lists the names without loading these
    from importlib.metadata import EntryPoint

    from pipeline.jobs import Provider
    from pipeline.jobs.batch import BatchBackend

log = logging.getLogger("assetpipe.providers")

ENTRY_POINT_GROUP = "assetpipe.providers"
OWN_DISTRIBUTION = "assetpipe"
"""Entry points of this distribution are the built-ins: loaded first, never displaced."""


@dataclass(frozen=True, slots=True)
class ProviderOptions:
    """What a factory gets from the settings of one run."""

    timeout: float


@dataclass(frozen=True, slots=True)
class ProviderEntry:
    """One provider: its name, how to build it, what it costs and what it needs."""

    name: str
    summary: str
    factory: Callable[[ProviderOptions], Provider]
    free: bool = False
    """Whether its images cost nothing (estimates still show the real price)."""
    missing_credentials: Callable[[Mapping[str, str]], list[str]] = lambda _env: []
    """The environment variables it still needs, given the environment (empty: ready)."""
    model_policy: ModelPolicy = "catalog"
    auto: bool = False
    """Chosen without ``--provider`` when its credentials are present."""
    hint: str = ""
    """Said with a missing-credentials error: how to get going another way."""
    batch: Callable[[ProviderOptions], BatchBackend] | None = None
    """Its Batch API route (``build --batch``), when it has one."""
    models: Callable[[], Catalog] = openai_catalog
    """Its model table (rules, capabilities, prices); OpenAI's unless it has its own."""
    request_format: RequestFormat = OPENAI_FORMAT
    """How it words a request and which ``options:`` it takes; OpenAI's by default."""


def _openai_missing(env: Mapping[str, str]) -> list[str]:
    return [] if env.get("OPENAI_API_KEY") else ["OPENAI_API_KEY"]


def _azure_missing(env: Mapping[str, str]) -> list[str]:
    missing = [v for v in ("AZURE_OPENAI_ENDPOINT", "OPENAI_API_VERSION") if not env.get(v)]
    if not (env.get("AZURE_OPENAI_API_KEY") or env.get("AZURE_OPENAI_AD_TOKEN")):
        missing.insert(0, "AZURE_OPENAI_API_KEY")
    return missing


def _openai(options: ProviderOptions) -> Provider:
    from pipeline.providers.openai_provider import OpenAIProvider  # noqa: PLC0415

    return OpenAIProvider.openai(timeout=options.timeout)


def _openai_batch(options: ProviderOptions) -> BatchBackend:
    from pipeline.providers.openai_batch import OpenAIBatchClient  # noqa: PLC0415

    return OpenAIBatchClient.openai(timeout=options.timeout)


def _azure(options: ProviderOptions) -> Provider:
    from pipeline.providers.openai_provider import OpenAIProvider  # noqa: PLC0415

    return OpenAIProvider.azure(timeout=options.timeout)


def _preview(_options: ProviderOptions) -> Provider:
    from pipeline.providers.preview import PreviewProvider  # noqa: PLC0415

    return PreviewProvider()


OPENAI = ProviderEntry(
    "openai",
    "OpenAI's Images API through the official SDK",
    _openai,
    missing_credentials=_openai_missing,
    auto=True,
    batch=_openai_batch,
    hint="or use --provider preview to build offline placeholders",
)
AZURE = ProviderEntry(
    "azure",
    "Azure OpenAI; a spec's model is the deployment name",
    _azure,
    missing_credentials=_azure_missing,
    model_policy="deployment",
)
PREVIEW = ProviderEntry(
    "preview",
    "offline placeholders drawn locally; costs nothing",
    _preview,
    free=True,
)
BUILTIN: tuple[ProviderEntry, ...] = (OPENAI, AZURE, PREVIEW)
"""The providers this distribution registers under ``assetpipe.providers``; also what a
source tree run without installed metadata falls back to."""


_ORIGINS: dict[str, str] = {}
"""The distribution and version each provider was loaded from."""


@functools.cache
def providers() -> Mapping[str, ProviderEntry]:
    """Every provider by name: assetpipe's own entry points, then those of plugins.

    A plugin that fails to load, or that reuses a name already taken, is skipped with a
    warning rather than breaking every command.
    """

    def ours(point: EntryPoint) -> bool:
        return point.dist is not None and point.dist.name == OWN_DISTRIBUTION

    def accept(value: object) -> ProviderEntry | str:
        return value if isinstance(value, ProviderEntry) else "is not a ProviderEntry"

    order = {entry.name: i for i, entry in enumerate(BUILTIN)}
    points = sorted(
        entry_points_of(ENTRY_POINT_GROUP),
        key=lambda p: (not ours(p), order.get(p.name, len(order)), p.name),
    )
    found: dict[str, ProviderEntry] = {}
    _ORIGINS.update(add_plugins(found, points, accept, lambda e: e.name, what="provider", log=log))
    for entry in BUILTIN:  # a source tree run without its metadata installed
        found.setdefault(entry.name, entry)
    return found


def get(name: str) -> ProviderEntry | None:
    """The provider called ``name``, or None."""
    return providers().get(name)


@functools.cache
def fingerprint(entry: ProviderEntry) -> str:
    """What a plan made with ``entry`` depends on besides assetpipe's own code: its model
    table, its request wording, its options and the version of the package it came from,
    so upgrading a provider plugin plans afresh instead of reusing a stored plan."""
    fmt = entry.request_format
    schema = fmt.options.model_json_schema() if fmt.options is not None else None
    kind = type(fmt)
    facts = (entry.models(), kind.__module__, kind.__qualname__, schema, _ORIGINS.get(entry.name))
    return sha256_bytes(repr(facts).encode("utf-8"))
