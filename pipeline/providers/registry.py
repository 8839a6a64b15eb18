"""The one list of image providers: what each is called, how to make it, what it needs.

Settings validate ``--provider`` against it, the CLI lists it, the composition root builds
the chosen provider from it, and the planner gets its model policy from it, so a new
backend is one module plus one entry here. Third-party packages add providers through
the ``assetpipe.providers`` entry point group, the way ``llm`` takes plugins: each entry
point names a :class:`ProviderEntry`.

Factories import their backend lazily: importing the OpenAI SDK costs a quarter of a
second that ``plan``, ``check`` and preview builds have no use for.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline.catalog import ModelPolicy

if TYPE_CHECKING:  # types only: `assetpipe --help` lists the names without loading these
    from pipeline.jobs import Provider
    from pipeline.jobs.batch import BatchBackend

log = logging.getLogger("assetpipe.providers")

ENTRY_POINT_GROUP = "assetpipe.providers"


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


BUILTIN: tuple[ProviderEntry, ...] = (
    ProviderEntry(
        "openai",
        "OpenAI's Images API through the official SDK",
        _openai,
        missing_credentials=_openai_missing,
        auto=True,
        batch=_openai_batch,
        hint="or use --provider preview to build offline placeholders",
    ),
    ProviderEntry(
        "azure",
        "Azure OpenAI; a spec's model is the deployment name",
        _azure,
        missing_credentials=_azure_missing,
        model_policy="deployment",
    ),
    ProviderEntry(
        "preview",
        "offline placeholders drawn locally; costs nothing",
        _preview,
        free=True,
    ),
)


@functools.cache
def providers() -> Mapping[str, ProviderEntry]:
    """Every provider by name: the built-in ones, then those of installed plugins.

    A plugin that fails to load, or that reuses a built-in name, is skipped with a warning
    rather than breaking every command.
    """
    found = {entry.name: entry for entry in BUILTIN}
    from importlib.metadata import entry_points  # noqa: PLC0415 - costly; once per run

    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            entry = point.load()
        except Exception as exc:  # a broken plugin must not break every command
            log.warning("provider plugin %s failed to load: %s", point.value, exc)
            continue
        if not isinstance(entry, ProviderEntry):
            log.warning("provider plugin %s is not a ProviderEntry; skipped", point.value)
            continue
        if entry.name in found:
            log.warning("provider plugin %s reuses the name %r; skipped", point.value, entry.name)
            continue
        found[entry.name] = entry
    return found


def get(name: str) -> ProviderEntry | None:
    """The provider called ``name``, or None."""
    return providers().get(name)
