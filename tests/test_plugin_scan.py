"""Providers, exporters and operations find their plugins in one look at the packages."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator
from typing import Any

import pytest

from pipeline.exports import registry as exporters
from pipeline.ops import registry as operations
from pipeline.plugins import entry_points_of, forget_installed
from pipeline.providers import registry as providers


def _forget() -> None:
    forget_installed()
    providers.providers.cache_clear()
    exporters.exporters.cache_clear()
    operations.operations.cache_clear()


@pytest.fixture
def looks(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Each look at the installed packages' entry points, counted."""
    seen: list[Any] = []
    real = importlib.metadata.entry_points

    def counted(*args: Any, **kwargs: Any) -> Any:
        seen.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(importlib.metadata, "entry_points", counted)
    _forget()
    yield seen
    _forget()


def test_three_registries_read_the_installed_packages_once(looks: list[Any]) -> None:
    assert {"openai", "azure", "preview"} <= set(providers.providers())
    assert "gallery" in exporters.exporters()
    assert "fit" in operations.operations()
    assert len(looks) == 1
    ours = {p.name for p in entry_points_of(providers.ENTRY_POINT_GROUP)}
    assert {"openai", "azure", "preview"} <= ours, "assetpipe's own providers are entry points"
    assert entry_points_of("no.such.group") == ()
    assert len(looks) == 1


def test_forgetting_looks_again(looks: list[Any]) -> None:
    entry_points_of(providers.ENTRY_POINT_GROUP)
    forget_installed()
    entry_points_of(providers.ENTRY_POINT_GROUP)
    assert len(looks) == 2
