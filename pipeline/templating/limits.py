"""What a template may cost, and how the size of a value is found without building it.

Jinja's sandbox stops escapes, not work: its own docs say it bounds neither time nor
memory, and a spec may come from anyone who can open a pull request. This module holds
the bounds themselves (one place to read what a template may do), the error that names
the bound a template went past, and the measures every check compares with them: the
text a value would print, the size of what a call made, a width argument. The checks
that use them live beside it: :mod:`pipeline.templating.operations` (operators and
built-in methods), :mod:`pipeline.templating.filters` (filters) and
:mod:`pipeline.templating.meter` (what one render and one load spend in all).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from jinja2.runtime import Undefined
from jinja2.utils import Namespace

MAX_RANGE = 10_000
"""Items one ``range()`` may have (Jinja's sandbox allows 100,000)."""
MAX_RANGE_TOTAL = 100_000
"""Items all the ``range()`` calls of one render may have together: a loop inside a loop
calls ``range`` once per outer step, so this bounds nested loops that print nothing."""
MAX_RENDERED_CHARS = 200_000
"""The longest text a template may produce, or compute on the way; a prompt takes at most
32,000 characters, so nothing legitimate comes near it."""
MAX_ITEMS = 200_000
"""Items a list built in a template may have (by ``*``, ``+`` or ``extend``)."""
MAX_NUMBER_BITS = 10_000
"""Integers a template computes stay under this many bits (about 3,000 digits)."""
MAX_STEPS = 1_000_000
"""Loop iterations and calls (of macros, functions, methods, filters) in one render."""
MAX_CREATED = 2_000_000
"""Characters and list items one render may create in all: what it prints, and what its
strings, lists, filters and macros make along the way. It stops a loop that keeps what
it makes (appending a fresh 200,000-character string 10,000 times)."""
MAX_RENDER_SECONDS = 60.0
"""Rendering time of all the templates of one load (one validate, plan or build)."""

LIMIT_HINT = (
    f"templates are sandboxed: range() takes at most {MAX_RANGE:,} items "
    f"({MAX_RANGE_TOTAL:,} per template), and the rendered text at most "
    f"{MAX_RENDERED_CHARS:,} characters; loop over a list from vars or the matrix instead"
)
SIZE_HINT = (
    f"a rendered template has at most {MAX_RENDERED_CHARS:,} characters, and a prompt at "
    "most 32,000; ask for less"
)
NUMBER_HINT = f"numbers in templates stay under {MAX_NUMBER_BITS:,} bits"
WORK_HINT = (
    "look for loops inside loops over long lists, text or lists that grow in a loop, or a "
    "macro that calls itself more often than it needs"
)


class TemplateLimit(Exception):
    """A template went past one of the sandbox's bounds; says which, and what to do."""

    def __init__(self, message: str, hint: str = LIMIT_HINT):
        super().__init__(message)
        self.hint = hint


def short(value: Any) -> str:
    """A value's repr, cut to 40 characters, for a message."""
    text = repr(value) if isinstance(value, str | bytes | int) else f"a {type(value).__name__}"
    return text if len(text) <= 40 else text[:37] + "..."


def too_big(what: str, size: int, unit: str = "characters", hint: str = SIZE_HINT) -> None:
    """Refuse ``what`` when it would make more than the limit for ``unit``."""
    limit = MAX_ITEMS if unit == "items" else MAX_RENDERED_CHARS
    if size > limit:
        raise TemplateLimit(f"{what} would make {size:,} {unit} (at most {limit:,})", hint)


# -- sizes ---------------------------------------------------------------------------------


def text_size(value: Any, limit: int = MAX_RENDERED_CHARS) -> int:
    """About ``len(str(value))`` (never much less), found without building the text.

    Stops once past ``limit``, so a list holding itself, or a list of a list repeated a
    thousand times a thousand times deep, costs no more than ``limit`` steps to measure.
    """
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str | bytes | bytearray):
            total += len(item) + 3
        elif isinstance(item, bool) or item is None:
            total += 5
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 2
        elif isinstance(item, float):
            total += 24
        elif isinstance(item, Mapping):
            total += 2 + 4 * len(item)
            if total <= limit:
                stack.extend(itertools.chain.from_iterable(item.items()))
        elif isinstance(item, list | tuple | set | frozenset):
            total += 2 + 2 * len(item)
            if total <= limit:
                stack.extend(item)
        elif isinstance(item, Namespace):
            total += 12
            stack.append(object.__getattribute__(item, "_Namespace__attrs"))
        elif not isinstance(item, Undefined):
            total += 80  # a range, a macro, a cycler: their text is a short description
        if total > limit:
            return total
    return total


def check_text(value: Any, what: str) -> int:
    """The text size of ``value``; refused when its text would be too long to make."""
    if isinstance(value, str):
        return len(value)
    size = text_size(value)
    if size > MAX_RENDERED_CHARS:
        raise TemplateLimit(
            f"{what} {short(value)} would make over {MAX_RENDERED_CHARS:,} characters",
            SIZE_HINT,
        )
    return size


def sized(value: Any) -> int:
    """Characters or items in a value a call or filter made (0 for anything else)."""
    if isinstance(value, str | bytes | bytearray | list | tuple | dict | set | frozenset):
        return len(value)
    return 0


def count_width(value: Any, what: str) -> int:
    """A width, length or count argument, refused past the output limit."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, int) and value > MAX_RENDERED_CHARS:
        raise TemplateLimit(
            f"{what}({value:,}) asks for more than {MAX_RENDERED_CHARS:,} characters",
            SIZE_HINT,
        )
    return value if isinstance(value, int) else 0
