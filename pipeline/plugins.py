"""Finding plugins: the values that installed packages name under an entry point group.

Providers, image operations and exporters are all found this way, so all three behave
alike for a user: a plugin that fails to import, names the wrong kind of object, or
takes a name already taken is skipped with one warning naming its entry point, and every
other command keeps working.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, MutableMapping
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:  # importing importlib.metadata is for the commands that look plugins up
    from importlib.metadata import EntryPoint

T = TypeVar("T")


def entry_points_of(group: str) -> tuple[EntryPoint, ...]:
    """The entry points installed packages declare under ``group``.

    Every group comes from one look at the installed packages per process: each look
    reads every package's metadata (~10 ms in a small environment), and a build asks for
    three groups. Like the registries built from them, what a process found holds for
    its life; :func:`forget_installed` looks again."""
    return _installed().get(group, ())


def forget_installed() -> None:
    """Look at the installed packages again on the next :func:`entry_points_of`."""
    _installed.cache_clear()


@functools.cache
def _installed() -> dict[str, tuple[EntryPoint, ...]]:
    from importlib.metadata import entry_points  # noqa: PLC0415 - costly; once per run

    found = entry_points()
    return {group: tuple(found.select(group=group)) for group in found.groups}


def add_plugins(
    found: MutableMapping[str, T],
    points: Iterable[EntryPoint],
    accept: Callable[[object], T | str],
    name_of: Callable[[T], str],
    *,
    what: str,
    log: logging.Logger,
) -> dict[str, str]:
    """Add each entry point's value that loads and that ``accept`` takes (it returns the
    value to keep, or what is wrong with it) under ``name_of(value)`` unless that name is
    already in ``found``; returns, by name, the distribution and version each came from
    (what a stored plan must be remade for when a plugin is upgraded)."""
    origins: dict[str, str] = {}
    for point in points:
        try:
            loaded = point.load()
        except Exception as exc:  # a broken plugin must not break every command
            log.warning("%s plugin %s failed to load: %s", what, point.value, exc)
            continue
        value = accept(loaded)
        if isinstance(value, str):
            log.warning("%s plugin %s %s; skipped", what, point.value, value)
            continue
        name = name_of(value)
        if name in found:
            log.warning("%s plugin %s reuses the name %r; skipped", what, point.value, name)
            continue
        found[name] = value
        if point.dist is not None:
            origins[name] = f"{point.dist.name} {point.dist.version}"
    return origins
