"""Wiring the runner in tests the way the composition root does, with injected fakes."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from pipeline.jobs import Provider
from pipeline.output import Manifest, OutputTree
from pipeline.progress import QuietReporter
from pipeline.runner.budget import CatalogPricing
from pipeline.runner.deps import RunConfig, RunDeps, StopSignal
from pipeline.runner.dispatch import DirectDispatcher
from pipeline.runner.engine import Runner
from pipeline.runner.freshness import assess
from pipeline.runner.limiter import RateLimiter
from pipeline.runner.retry import RetryPolicy
from pipeline.testing import FakeClock


def direct_runner(
    ws: Any,
    store: Any,
    provider: Provider,
    clock: FakeClock,
    *,
    root: Path,
    concurrency: int = 1,
    max_attempts: int = 6,
) -> Runner:
    """A runner over ``ws.plan`` with a direct dispatcher on the fake ``clock``, free
    pricing, an empty manifest and output under ``root/output``."""
    output = root / "output"
    stop = StopSignal()
    reporter = QuietReporter()
    dispatcher = DirectDispatcher(
        provider,
        RateLimiter(None, None, clock=clock, sleep=clock.sleep),
        RetryPolicy(max_attempts=max_attempts),
        concurrency=concurrency,
        stopped=stop.__bool__,
        on_retry=reporter.retrying,
        sleep=clock.sleep,
        rng=random.Random(0),
    )
    deps = RunDeps(
        store=store,
        dispatcher=dispatcher,
        pricing=CatalogPricing(ws.catalog, 0.0),
        output=OutputTree(output),
        project_root=root,
        manifest=Manifest.empty(),
        reporter=reporter,
        stop=stop,
        clock=clock,
        sleep=clock.sleep,
    )
    states = assess(ws.plan, Manifest.empty(), store, OutputTree(output))
    return Runner(ws.plan, states, deps, RunConfig(concurrency=concurrency))
