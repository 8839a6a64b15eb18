"""What a template may cost, and the checks that say so before the cost is paid.

Jinja's sandbox stops escapes, not work: its own docs say it bounds neither time nor
memory, and a spec may come from anyone who can open a pull request. Every operation
that can turn a few characters of template into a great deal of memory is checked
*before* it runs, from its arguments: a width or precision (``'%1000000000d' % 1``,
``'{:>1000000000}'.format(1)``, ``zfill``, ``center``, ``indent``), a repetition, a
concatenation (which doubles in a loop or a recursive macro), a join, a replace. Each
result must fit in :data:`MAX_RENDERED_CHARS`. A :class:`Meter` then bounds what one
render does in all — loop steps and calls, ``range()`` items, the text and list items it
creates — and a :class:`RenderClock` bounds the rendering time of one load.
"""

from __future__ import annotations

import contextvars
import itertools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
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


# -- the budget of one render, and of one load ---------------------------------------------


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


# -- operators -----------------------------------------------------------------------------


def check_power(left: Any, right: Any) -> None:
    """``left ** right`` stays under MAX_NUMBER_BITS."""
    if not (isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1):
        return
    if right * (abs(left).bit_length() - 1) > MAX_NUMBER_BITS:
        raise TemplateLimit(f"the number {short(left)} ** {short(right)} is too large", NUMBER_HINT)


def check_product(left: Any, right: Any) -> int:
    """``left * right`` on numbers or sequences stays small; returns the result's size."""
    if isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > MAX_NUMBER_BITS:
            raise TemplateLimit(
                f"the number {short(left)} * {short(right)} is too large", NUMBER_HINT
            )
        return 0
    seq, times = (left, right) if isinstance(right, int) else (right, left)
    if isinstance(seq, str | bytes | bytearray | list | tuple) and isinstance(times, int):
        size = len(seq) * times
        unit = "items" if isinstance(seq, list | tuple) else "characters"
        too_big(
            f"{short(seq)} * {times:,}",
            size,
            unit,
            f"a rendered template has at most {MAX_RENDERED_CHARS:,} characters, and a "
            "prompt at most 32,000; repeat less",
        )
        return max(size, 0)
    return 0


def check_sum(left: Any, right: Any) -> int:
    """``left + right``: numbers stay under MAX_NUMBER_BITS, text and lists under their
    limits (``s + s`` doubles in a loop); returns the result's size."""
    if isinstance(left, int) and isinstance(right, int):
        if max(left.bit_length(), right.bit_length()) >= MAX_NUMBER_BITS:
            raise TemplateLimit(
                f"the number {short(left)} + {short(right)} is too large", NUMBER_HINT
            )
        return 0
    for kinds, unit in (
        ((str,), "characters"),
        ((bytes, bytearray), "characters"),
        ((list, tuple), "items"),
    ):
        if isinstance(left, kinds) and isinstance(right, kinds):
            size = len(left) + len(right)
            too_big(f"{short(left)} + {short(right)}", size, unit)
            return size
    return 0


def check_concat(values: tuple[Any, ...]) -> int:
    """``a ~ b ~ ...`` (Jinja's text concatenation) stays under the output limit."""
    size = 0
    for value in values:
        size += check_text(value, "joining")
    too_big("joining text with ~", size)
    return size


_PRINTF = re.compile(
    r"%(?:\((?P<key>[^)]*)\))?[-#0 +]*(?P<width>\*|\d+)?(?:\.(?P<precision>\*|\d*))?[hlL]?"
    r"(?P<type>.?)",
    re.DOTALL,
)


def _digits(text: str) -> int:
    """A number written in a format, without int()'s 4,300-digit limit getting in the way
    (Python refuses widths past 19 digits itself)."""
    return int(text) if len(text) <= 19 else 10**19


def check_printf(template: str | bytes | bytearray, args: Any) -> int:
    """``template % args``: every width and precision, and the arguments' text, fit in the
    output limit. Returns an upper bound of the result's length."""
    text = template.decode("latin-1") if isinstance(template, bytes | bytearray) else template
    positional = args if isinstance(args, tuple) else (args,)
    index = 0
    size = len(text)
    for match in _PRINTF.finditer(text):
        if match["type"] == "%" and not match["width"] and match["precision"] is None:
            continue
        for part in ("width", "precision"):
            raw = match[part]
            if raw == "*":
                star = positional[index] if index < len(positional) else 0
                index += 1
                number = abs(star) if isinstance(star, int) else 0
            else:
                number = _digits(raw) if raw else 0
            if number > MAX_RENDERED_CHARS:
                raise TemplateLimit(
                    f"the format {short(match[0])} asks for {number:,} characters "
                    f"(at most {MAX_RENDERED_CHARS:,})",
                    SIZE_HINT,
                )
            size += number
        index += 1
    size += check_text(args, "formatting")
    too_big(f"formatting {short(template)}", size)
    return size


def spec_width(spec: str) -> int:
    """The largest number in a ``str.format`` spec (its width or precision)."""
    return max((_digits(d) for d in re.findall(r"\d+", spec)), default=0)


# -- methods of built-in values ------------------------------------------------------------


def check_method(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Refuse a call of a built-in method whose result would be too large, before it runs.

    Returns the positional arguments to call with: an iterator given to ``join`` or
    ``extend`` is read (at most one item past the limit) so it can be measured.
    """
    owner = getattr(obj, "__self__", None)
    name = getattr(obj, "__name__", "")
    if isinstance(owner, str | bytes | bytearray):
        return _text_method(owner, name, args, kwargs)
    if isinstance(owner, int) and name == "to_bytes":
        length = args[0] if args else kwargs.get("length", 1)
        count_width(length, "to_bytes")
    elif isinstance(owner, list) and name == "extend" and args:
        items = args[0] if isinstance(args[0], list | tuple | str) else _read(args[0])
        too_big(f"extending a list of {len(owner):,} items", len(owner) + len(items), "items")
        return (items, *args[1:])
    return args


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], i: int, name: str, default: Any) -> Any:
    return args[i] if len(args) > i else kwargs.get(name, default)


def _read(iterable: Any) -> list[Any]:
    return list(itertools.islice(iterable, MAX_ITEMS + 1))


def _text_method(
    owner: str | bytes | bytearray, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, ...]:
    what = f"{short(owner)}.{name}"
    if name in ("center", "ljust", "rjust", "zfill"):
        count_width(_arg(args, kwargs, 0, "width", 0), what)
    elif name == "expandtabs":
        tabsize = _arg(args, kwargs, 0, "tabsize", 8)
        if isinstance(tabsize, int):
            tabs = owner.count("\t") if isinstance(owner, str) else owner.count(b"\t")
            too_big(f"{what}({tabsize:,})", len(owner) + tabs * max(tabsize, 0))
    elif name == "replace":
        old, new = _arg(args, kwargs, 0, "old", ""), _arg(args, kwargs, 1, "new", "")
        count = _arg(args, kwargs, 2, "count", -1)
        kinds = str if isinstance(owner, str) else (bytes, bytearray)
        if isinstance(old, kinds) and isinstance(new, kinds):
            too_big(what, replaced_size(owner, old, new, count))
    elif name == "join" and args:
        items = args[0] if isinstance(args[0], list | tuple) else _read(args[0])
        too_big(f"{what} of {len(items):,} items", joined_size(owner, items))
        return (items, *args[1:])
    elif name == "translate" and args and isinstance(args[0], Mapping):
        longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
        too_big(what, len(owner) * max(longest, 1))
    return args


def replaced_size(text: Any, old: Any, new: Any, count: Any) -> int:
    """The length of ``text.replace(old, new, count)``, counted before it is made."""
    found = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * (len(new) - len(old))


def joined_size(separator: Any, items: list[Any] | tuple[Any, ...]) -> int:
    """The length of ``separator.join(items)`` (items as text), counted before it is made."""
    if len(items) > MAX_ITEMS:
        too_big("joining a list", len(items), "items")
    size = len(separator) * max(len(items) - 1, 0)
    too_big(f"joining {len(items):,} items with {short(separator)}", size)
    for item in items:
        size += check_text(item, "joining")
        if size > MAX_RENDERED_CHARS:
            break
    return size
