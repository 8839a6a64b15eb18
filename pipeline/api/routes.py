"""How a build's paid requests travel: one call each, or through the Batch API.

The one place that picks the dispatcher and its prices. A direct build sends each request
at once (paced and retried) at the model table's prices, and leaves alone the requests an
earlier ``build --batch`` has open (they are collected, never paid twice); a batch build
journals and submits waves of requests at half the price, and collects what earlier batch
builds left open.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pipeline.catalog import Catalog
from pipeline.errors import UsageError
from pipeline.jobs import ImageRequest, ImageResult, Provider
from pipeline.providers.registry import ProviderOptions
from pipeline.runner.budget import CatalogPricing
from pipeline.runner.deps import Reporter, StopSignal
from pipeline.runner.dispatch import DirectDispatcher, Dispatcher, SplitDispatcher
from pipeline.runner.journal import Journal
from pipeline.runner.limiter import RateLimiter
from pipeline.runner.retry import RetryPolicy
from pipeline.settings import Settings
from pipeline.store import ResultStore

BATCH_PRICE_FACTOR = 0.5
"""The Batch API bills images at half the synchronous price (openai-images.md section 7)."""


@dataclass(frozen=True, slots=True)
class Route:
    """The dispatcher of one build, its prices, and the requests it must not pay for."""

    dispatcher: Dispatcher
    pricing: CatalogPricing
    pending: Mapping[str, str]
    prepare: Callable[[], None] | None = None
    """Makes now what the first paid request needs (the provider), for a build known to
    pay: then it is not made while requests wait. None when there is nothing to make."""


def price_factor(settings: Settings, batch: bool) -> float:
    """What the route pays of the model table's prices: 0 on a free provider, half on the
    Batch API, else all of it."""
    if settings.provider_entry.free:
        return 0.0
    return BATCH_PRICE_FACTOR if batch else 1.0


def direct_models(catalog: Catalog) -> frozenset[str]:
    """The models whose requests a batch build sends directly, at the full price: those
    the model table says the Batch API does not take (``batch = false``)."""
    return frozenset(name for name, info in catalog.models.items() if not info.batch)


def make_provider(settings: Settings) -> Provider:
    """The provider the settings ask for, built by its registry entry."""
    return settings.provider_entry.factory(ProviderOptions(timeout=settings.timeout))


class DeferredProvider:
    """The settings' provider, made on the build's first request: making it imports its
    SDK (most of a second for ``openai``), which a build whose every file is up to date
    or in the cache (``rm -rf output/`` and build) never needs."""

    def __init__(self, settings: Settings):
        self.name = settings.provider
        self._settings = settings
        self._made: Provider | None = None
        self._making = asyncio.Lock()

    def make_now(self) -> None:
        """Make the provider at once (before the build's event loop runs)."""
        if self._made is None:
            self._made = make_provider(self._settings)

    async def make(self) -> Provider:
        """The provider, made once (in a worker thread: the SDK's import is long)."""
        if self._made is None:
            async with self._making:
                if self._made is None:
                    self._made = await asyncio.to_thread(make_provider, self._settings)
        return self._made

    async def ready(self) -> None:
        """Make the provider now (the dispatcher calls this before pacing a request)."""
        await self.make()

    async def generate(self, request: ImageRequest) -> ImageResult:
        """Run the request on the provider (made first if need be)."""
        return await (await self.make()).generate(request)

    async def aclose(self) -> None:
        """Close the provider if it was made."""
        if self._made is not None:
            await self._made.aclose()


def direct_route(
    settings: Settings,
    catalog: Catalog,
    stop: StopSignal,
    reporter: Reporter,
    provider: Provider | None = None,
) -> Route:
    """Each request sent at once, within the rate limits; open batches left pending."""
    ready = prepare = None
    if provider is None:
        deferred = DeferredProvider(settings)
        provider, ready, prepare = deferred, deferred.ready, deferred.make_now
    dispatcher = DirectDispatcher(
        provider,
        RateLimiter(
            settings.images_per_minute,
            settings.requests_per_minute,
            sharers=settings.limit_sharers,
            share=settings.shard_share,
            shared=settings.shared_limit,
        ),
        RetryPolicy(max_attempts=settings.max_attempts),
        concurrency=settings.concurrency,
        stopped=stop.__bool__,
        on_retry=reporter.retrying,
        ready=ready,
    )
    pending = Journal(settings.cache_dir).pending_keys()
    pricing = CatalogPricing(catalog, price_factor(settings, False))
    return Route(dispatcher, pricing, pending, prepare)


def batch_route(
    settings: Settings,
    catalog: Catalog,
    store: ResultStore,
    stop: StopSignal,
    reporter: Reporter,
    *,
    wait: bool,
) -> Route:
    """Waves of requests through the provider's Batch API, at batch prices; the requests
    of models it does not take go directly, at the full price (``direct_models``)."""
    entry = settings.provider_entry
    if entry.batch is None:
        raise UsageError(
            f"the {entry.name} provider has no Batch API; build --batch needs --provider openai"
        )
    direct = direct_models(catalog)
    pricing = CatalogPricing(catalog, price_factor(settings, True), direct)
    # Only ``build --batch`` loads the batch machinery: a plain build's start leaves it out.
    from pipeline.runner.batching import BatchDispatcher, BatchOptions  # noqa: PLC0415

    dispatcher: Dispatcher = BatchDispatcher(
        entry.batch(ProviderOptions(timeout=settings.timeout)),
        Journal(settings.cache_dir),
        store,
        pricing,
        RetryPolicy(max_attempts=settings.max_attempts),
        options=BatchOptions(
            wait=wait,
            max_lines=settings.batch_max_lines,
            poll_s=settings.batch_poll_seconds,
            max_poll_s=10 * settings.batch_poll_seconds,
        ),
        stopped=stop.__bool__,
        on_retry=reporter.retrying,
        note=reporter.note,
    )
    if direct:
        alone = direct_route(settings, catalog, stop, reporter)
        dispatcher = SplitDispatcher(dispatcher, alone.dispatcher, direct)
    return Route(dispatcher, pricing, {})
