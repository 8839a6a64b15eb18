"""The running budget of a render and of a load: steps, ``range()`` items, what is made, time.

The checks in :mod:`pipeline.templating.operations` refuse one operation that would be
too large; a template can still do a great many small ones (a loop inside a loop, a
macro that calls itself, a list that grows a little per step). A :class:`Meter` counts
what the render in progress does in all, and a :class:`RenderClock` the rendering time
all the templates of one load may still spend. The render in progress finds its meter
through a context variable, so the sandbox's hooks need no reference to the render.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pipeline.templating.limits import (
    MAX_CREATED,
    MAX_RANGE_TOTAL,
    MAX_RENDER_SECONDS,
    MAX_STEPS,
    WORK_HINT,
    TemplateLimit,
)


class RenderClock:
    """The rendering time one load may still spend (a template engine has one)."""

    __slots__ = ("clock", "seconds", "seconds_left")

    def __init__(self, clock: Callable[[], float], seconds: float = MAX_RENDER_SECONDS):
        self.clock = clock
        self.seconds = seconds
        self.seconds_left = seconds


class Meter:
    """What the render in progress may still do: loop steps and calls, ``range()`` items,
    characters and list items created, and time (checked every 1,024 steps)."""

    __slots__ = ("created_left", "deadline", "range_left", "render_clock", "steps_left")

    def __init__(self, render_clock: RenderClock):
        self.render_clock = render_clock
        self.deadline = render_clock.clock() + render_clock.seconds_left
        self.range_left = MAX_RANGE_TOTAL
        self.steps_left = MAX_STEPS
        self.created_left = MAX_CREATED

    def step(self) -> None:
        """One loop iteration or call."""
        self.steps_left -= 1
        if self.steps_left < 0:
            raise TemplateLimit(
                f"the template takes over {MAX_STEPS:,} loop steps and calls", WORK_HINT
            )
        if not self.steps_left & 1023:
            self.check_time()

    def check_time(self) -> None:
        """Stop once the load's rendering time is spent."""
        if self.render_clock.clock() >= self.deadline:
            raise TemplateLimit(
                f"rendering the templates of this load took over "
                f"{self.render_clock.seconds:g} seconds in all",
                WORK_HINT,
            )

    def create(self, size: int) -> None:
        """Account for ``size`` characters or items this render made."""
        self.created_left -= size
        if self.created_left < 0:
            raise TemplateLimit(
                f"the template creates over {MAX_CREATED:,} characters and list items while "
                "rendering",
                WORK_HINT,
            )

    def take_range(self, size: int) -> None:
        """Account for a ``range()`` of ``size`` items."""
        self.range_left -= size
        if self.range_left < 0:
            raise TemplateLimit(
                f"range too large: the loops of this template go over {MAX_RANGE_TOTAL:,} "
                "range() items in all"
            )

    def iterate(self, iterable: Iterable[Any]) -> Iterator[Any]:
        """``iterable``, one step per item (every ``{% for %}`` loops through this)."""
        for item in iterable:
            self.step()
            yield item


_meter: contextvars.ContextVar[Meter | None] = contextvars.ContextVar(
    "assetpipe_template_meter", default=None
)


def current_meter() -> Meter | None:
    """The meter of the render in progress (None while compiling)."""
    return _meter.get()


def start_render(meter: Meter) -> contextvars.Token[Meter | None]:
    """Make ``meter`` the current one; pass the token to :func:`end_render`."""
    return _meter.set(meter)


def end_render(token: contextvars.Token[Meter | None]) -> None:
    """Restore the meter that was current before :func:`start_render`."""
    _meter.reset(token)


def created(size: int) -> None:
    """Account for ``size`` characters or items made by the render in progress."""
    meter = _meter.get()
    if meter is not None:
        meter.create(size)
