"""The cyclic collector waits while a command starts and runs again once it settles."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from pipeline import collecting
from pipeline.collecting import no_collections, settle, start_quietly


@pytest.fixture
def collector() -> Iterator[None]:
    """The test process's collector as it was, whatever a test does to it."""
    enabled = gc.isenabled()
    try:
        yield
    finally:
        collecting._QUIET.clear()
        gc.unfreeze()
        if enabled:
            gc.enable()
        else:
            gc.disable()


def test_a_quiet_start_holds_through_planning_blocks_until_it_settles(collector: None) -> None:
    gc.enable()
    start_quietly()
    assert not gc.isenabled()
    with no_collections():  # planning inside the quiet start
        assert not gc.isenabled()
    assert not gc.isenabled(), "a block inside the quiet start must not turn the collector on"
    made_at_start = [object() for _ in range(100)]
    settle()
    assert gc.isenabled()
    assert gc.get_freeze_count() >= len(made_at_start), "what the start made is frozen"
    frozen = gc.get_freeze_count()
    settle()  # once only
    assert gc.get_freeze_count() == frozen
    assert gc.isenabled()


def test_settling_without_a_quiet_start_changes_nothing(collector: None) -> None:
    gc.enable()
    settle()
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_a_collector_turned_off_by_the_embedding_program_stays_off(collector: None) -> None:
    gc.disable()
    start_quietly()
    settle()
    assert not gc.isenabled()
    assert gc.get_freeze_count() == 0
