"""Jinja's built-in filters, bounded: each filter's arguments checked before it runs.

A filter is a function the template hands its own values to, so ``center(10**9)``,
``indent`` on a long text, ``join`` over a huge list or ``tojson(indent=...)`` on a
deep value would allocate before the sandbox's other hooks see a thing. Every filter
of the environment is wrapped by :func:`bounded_filter`: one step of the render's meter
(:mod:`pipeline.templating.meter`), a check of its arguments against the bounds of
:mod:`pipeline.templating.limits`, and what it made counted.
"""

from __future__ import annotations

import functools
import inspect
import itertools
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from jinja2.filters import make_attrgetter
from jinja2.runtime import Undefined

from pipeline.templating.limits import (
    MAX_ITEMS,
    MAX_RENDERED_CHARS,
    check_text,
    count_width,
    short,
    sized,
    text_size,
    too_big,
)
from pipeline.templating.meter import current_meter
from pipeline.templating.operations import check_printf, joined_size, replaced_size

STRINGIFYING = frozenset(
    {
        "capitalize", "center", "e", "escape", "forceescape", "format", "indent", "lower",
        "pprint", "replace", "safe", "string", "striptags", "title", "tojson", "trim",
        "truncate", "upper", "urlencode", "urlize", "wordcount", "wordwrap",
    }
)  # fmt: skip
"""Filters that turn their whole input into text first."""


def _text(value: Any) -> str:
    """A filter argument as the text the filter will make of it, once it is known to fit."""
    if isinstance(value, str):
        return value
    check_text(value, "the text of")
    return str(value)


def _center(a: dict[str, Any]) -> None:
    count_width(a["width"], "center")


def _indent(a: dict[str, Any]) -> None:
    width = count_width(a["width"], "indent")
    text = _text(a["s"])
    too_big(f"indent({short(a['width'])})", len(text) + (text.count("\n") + 1) * width)


def _wordwrap(a: dict[str, Any]) -> None:
    count_width(a["width"], "wordwrap")
    text, wrap = _text(a["s"]), a["wrapstring"]
    too_big("wordwrap", len(text) + (len(text) + 1) * len(wrap if isinstance(wrap, str) else "\n"))


def _truncate(a: dict[str, Any]) -> None:
    count_width(a["length"], "truncate")


def _replace(a: dict[str, Any]) -> None:
    text, old, new = _text(a["s"]), _text(a["old"]), _text(a["new"])
    count = -1 if a["count"] is None else a["count"]
    too_big(f"replace({short(old)}, {short(new)})", replaced_size(text, old, new, count))


def _join(a: dict[str, Any]) -> None:
    items: Iterable[Any] = a["value"]
    if a["attribute"] is not None:
        items = map(make_attrgetter(a["eval_ctx"].environment, a["attribute"]), items)
        a["attribute"] = None
    listed = list(itertools.islice(items, MAX_ITEMS + 1))
    too_big(f"join({short(a['d'])})", joined_size(_text(a["d"]), listed))
    a["value"] = listed


def _sum(a: dict[str, Any]) -> None:
    if not isinstance(a["start"], list | tuple | str):
        return
    items: Iterable[Any] = a["iterable"]
    if a["attribute"] is not None:
        items = map(make_attrgetter(a["environment"], a["attribute"]), items)
        a["attribute"] = None
    listed = list(itertools.islice(items, MAX_ITEMS + 1))
    total = len(a["start"]) + sum(len(i) for i in listed if isinstance(i, list | tuple | str))
    too_big("sum of lists", total, "items")
    a["iterable"] = listed


def _count(name: str, key: str) -> Callable[[dict[str, Any]], None]:
    def check(a: dict[str, Any]) -> None:
        if isinstance(a[key], int):
            too_big(f"{name}({a[key]:,})", a[key], "items")

    return check


def _tojson(a: dict[str, Any]) -> None:
    indent = a["indent"]
    step = len(indent) if isinstance(indent, str) else indent if isinstance(indent, int) else 0
    too_big("tojson", indented_size(a["value"], max(step, 0)))


def _pprint(a: dict[str, Any]) -> None:
    too_big("pprint", indented_size(a["value"], 1))


def _urlize(a: dict[str, Any]) -> None:
    text = _text(a["value"])
    extra = sum(len(v) for v in (a["target"], a["rel"]) if isinstance(v, str)) + 64
    words = text.count(" ") + text.count("\n") + 1
    too_big("urlize", 3 * len(text) + words * extra)


def _format(a: dict[str, Any]) -> None:
    check_printf(_text(a["value"]), a["kwargs"] or a["args"])


def _xmlattr(a: dict[str, Any]) -> None:
    too_big("xmlattr", 6 * text_size(a["d"]))


FILTER_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "center": _center,
    "indent": _indent,
    "wordwrap": _wordwrap,
    "truncate": _truncate,
    "replace": _replace,
    "join": _join,
    "sum": _sum,
    "batch": _count("batch", "linecount"),
    "slice": _count("slice", "slices"),
    "tojson": _tojson,
    "pprint": _pprint,
    "urlize": _urlize,
    "format": _format,
    "xmlattr": _xmlattr,
}
"""Checks on a filter's arguments (by parameter name) before it runs; a check may
replace an argument (an iterator, read once to measure it)."""


def bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` as a template filter: one step, its input and arguments checked before it
    runs, what it makes counted."""
    check = FILTER_CHECKS.get(name)
    stringify = name in STRINGIFYING
    skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0
    # Jinja's async-aware filters take an eval context their signature does not show.
    wrapped = getattr(func, "__wrapped__", func)
    lead = skip if getattr(wrapped, "jinja_pass_arg", None) is None else 0
    try:
        signature: inspect.Signature | None = inspect.signature(func)
    except (TypeError, ValueError):  # pragma: no cover - every built-in filter has one
        signature = None

    @functools.wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        meter = current_meter()
        if meter is not None:
            meter.step()
        value = args[skip] if len(args) > skip else None
        if stringify and not isinstance(value, str):
            if isinstance(value, Undefined):
                str(value)  # an unset value made text: the undefined error, not the filter's
            check_text(value, f"the {name} filter on")
        if check is not None and signature is not None:
            try:
                bound = signature.bind(*args[lead:], **kwargs)
            except TypeError:
                pass  # the filter itself says what is wrong with its arguments
            else:
                bound.apply_defaults()
                check(bound.arguments)
                args, kwargs = (*args[:lead], *bound.args), bound.kwargs
        result = func(*args, **kwargs)
        if meter is not None and result is not value:
            meter.create(sized(result))
        return result

    return bounded


def indented_size(value: Any, step: int) -> int:
    """About the length of ``value`` written one item per line, each line indented
    ``step`` characters per level of nesting (``tojson(indent=...)``, ``pprint``)."""
    total = text_size(value)
    if step == 0 or total > MAX_RENDERED_CHARS:
        return total
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack and total <= MAX_RENDERED_CHARS:
        item, depth = stack.pop()
        children: Iterable[Any] = ()
        if isinstance(item, Mapping):
            children = item.values()
        elif isinstance(item, list | tuple | set | frozenset):
            children = item
        for child in children:
            total += (depth + 1) * step + 1
            stack.append((child, depth + 1))
        total += depth * step
    return total
