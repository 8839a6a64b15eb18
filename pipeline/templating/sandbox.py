"""The sandboxed Jinja environment, with the bounds of :mod:`pipeline.templating.limits`.

Every place where a template can make something large passes through here before it
runs: ``call`` (functions, macros and the methods of strings, lists and numbers),
``call_binop`` (``*``, ``**``, ``+``, ``%``), ``getitem`` (slices), ``str.format``,
``~`` and ``{% for %}`` (through a code generator that routes them here), every filter,
the text each ``{{ ... }}`` prints, and the text a macro or block returns.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.filters import make_attrgetter
from jinja2.runtime import Macro, markup_join, str_join
from jinja2.sandbox import SandboxedEnvironment, SandboxedFormatter
from markupsafe import EscapeFormatter, Markup

from pipeline.templating.limits import (
    MAX_ITEMS,
    MAX_RANGE,
    MAX_RENDERED_CHARS,
    SIZE_HINT,
    TemplateLimit,
    check_concat,
    check_method,
    check_power,
    check_printf,
    check_product,
    check_sum,
    check_text,
    count_width,
    created,
    current_meter,
    joined_size,
    replaced_size,
    short,
    sized,
    spec_width,
    text_size,
    too_big,
)

MACRO_STEPS = 20
"""A macro call counts as this many steps: it costs about as much as 20 loop iterations."""


def bounded_range(*args: int) -> range:
    """``range`` for templates: at most MAX_RANGE items, and MAX_RANGE_TOTAL per render."""
    rng = range(*args)
    # len() raises OverflowError past a C ssize_t; count the items the way range does.
    span = rng.stop - rng.start if rng.step > 0 else rng.start - rng.stop
    size = max(0, -(-span // abs(rng.step)))
    if size > MAX_RANGE:
        raise TemplateLimit(f"range too large: {size:,} items (at most {MAX_RANGE:,})")
    meter = current_meter()
    if meter is not None:
        meter.take_range(size)
    return rng


class _BoundedFormatter(SandboxedFormatter):
    """``str.format`` that refuses a width or precision past the output limit (the
    format ``{:>1000000000}`` would allocate a gigabyte) and counts what it makes."""

    def __init__(self, env: jinja2.Environment, **kwargs: Any):
        super().__init__(env, **kwargs)
        self.size = 0

    def vformat(self, format_string: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
        self.size = len(format_string)
        return super().vformat(format_string, args, kwargs)

    def format_field(self, value: Any, format_spec: str) -> Any:
        width = spec_width(format_spec)
        if width > MAX_RENDERED_CHARS:
            raise TemplateLimit(
                f"the format {short('{:' + format_spec + '}')} asks for {width:,} characters "
                f"(at most {MAX_RENDERED_CHARS:,})",
                SIZE_HINT,
            )
        self.size += max(width, check_text(value, "formatting"))
        too_big("formatting with str.format", self.size)
        return super().format_field(value, format_spec)


class _BoundedEscapeFormatter(_BoundedFormatter, EscapeFormatter):
    pass


class _CodeGenerator(CodeGenerator):
    """Jinja's code generator, with every ``{% for %}`` stepping the render's meter (a
    filter around what it loops over: Jinja allows no new kinds of node), ``~`` and
    slices (compiled to plain Python, out of the sandbox's reach) bounded."""

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:  # noqa: N802
        for loop in node.find_all(nodes.For):
            guard = nodes.Filter(loop.iter, LOOP_GUARD, [], [], None, None)
            guard.set_lineno(loop.iter.lineno or loop.lineno)
            guard.set_environment(self.environment)
            loop.iter = guard
        super().visit_Template(node, frame)

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:  # noqa: N802
        self.write("environment.bounded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("), context.eval_ctx.autoescape)")

    @optimizeconst
    def visit_Getitem(self, node: nodes.Getitem, frame: Frame) -> None:  # noqa: N802
        if not isinstance(node.arg, nodes.Slice):
            super().visit_Getitem(node, frame)
            return
        # Jinja writes ``obj[a:b]`` as Python; through getitem, the copy is counted.
        self.write("environment.getitem(")
        self.visit(node.node, frame)
        self.write(", slice(")
        for part in (node.arg.start, node.arg.stop, node.arg.step):
            if part is None:
                self.write("None")
            else:
                self.visit(part, frame)
            self.write(", ")
        self.write("))")


class Sandbox(SandboxedEnvironment):
    """Jinja's sandbox with the bounds of :mod:`pipeline.templating.limits`.

    ``*``, ``**``, ``+`` and ``%`` are intercepted, which also stops Jinja from folding
    them at compile time (``{{ 9 ** (9 ** 10) }}`` would otherwise hang in the
    compiler). ``lipsum`` is removed: filler Latin has no place in a prompt, and
    ``lipsum(10**6)`` takes minutes.
    """

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _CodeGenerator

    def __init__(self, **kwargs: Any):
        super().__init__(finalize=_printed, **kwargs)
        self.globals["range"] = bounded_range
        self.globals.pop("lipsum", None)
        self.filters = {name: bounded_filter(name, f) for name, f in self.filters.items()}
        self.filters[LOOP_GUARD] = _loop_guard

    def call_binop(
        self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any
    ) -> Any:
        """``left <operator> right`` once its result is known to be small enough."""
        size = 0
        if operator == "**":
            check_power(left, right)
        elif operator == "*":
            size = check_product(left, right)
        elif operator == "+":
            size = check_sum(left, right)
        elif operator == "%" and isinstance(left, str | bytes | bytearray):
            size = check_printf(left, right)
        result = super().call_binop(context, operator, left, right)
        created(size)
        return result

    def call(self, context: jinja2.runtime.Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Call ``obj`` from a template: one step, the checks of built-in methods first,
        and what the call makes counted."""
        meter = current_meter()
        if meter is not None:
            for _ in range(MACRO_STEPS if isinstance(obj, Macro) else 1):
                meter.step()
        if isinstance(obj, types.BuiltinMethodType):
            args = check_method(obj, args, kwargs)
        result = super().call(context, obj, *args, **kwargs)
        if meter is not None and not _is_input(result, obj, args, kwargs):
            meter.create(sized(result))
        return result

    def getitem(self, obj: Any, argument: Any) -> Any:
        """``obj[argument]``; a slice makes a copy, which is counted."""
        result = super().getitem(obj, argument)
        if isinstance(argument, slice):
            created(sized(result))
        return result

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``str.format`` and ``str.format_map`` through :class:`_BoundedFormatter`."""
        if not isinstance(value, types.MethodType | types.BuiltinMethodType) or (
            value.__name__ not in ("format", "format_map")
        ):
            return None
        owner = value.__self__
        if not isinstance(owner, str):
            return None
        is_format_map = value.__name__ == "format_map"

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                kwargs, args = args[0], ()
            formatter: _BoundedFormatter = (
                _BoundedEscapeFormatter(self, escape=owner.escape)
                if isinstance(owner, Markup)
                else _BoundedFormatter(self)
            )
            result = type(owner)(formatter.vformat(owner, args, kwargs))
            created(len(result))
            return result

        return functools.update_wrapper(wrapper, value)

    @staticmethod
    def bounded_concat(values: tuple[Any, ...], autoescape: bool = False) -> str:
        """``a ~ b``: refused past the output limit before the text is made."""
        created(check_concat(values))
        return markup_join(values) if autoescape else str_join(values)

    @staticmethod
    def concat(pieces: Iterable[str]) -> str:
        """The text of a macro or a ``{% set %}`` block, refused past the output limit
        before it is joined (a macro that calls itself twice doubles it at each level)."""
        parts = pieces if isinstance(pieces, list) else list(pieces)
        too_big("the text of a macro or block", sum(map(len, parts)))
        return "".join(parts)


LOOP_GUARD = "_loop_guard"
"""The filter the code generator puts around what every ``{% for %}`` loops over."""


@jinja2.pass_context  # which also keeps Jinja from running it at compile time
def _loop_guard(context: jinja2.runtime.Context, iterable: Iterable[Any]) -> Iterable[Any]:
    """What a ``{% for %}`` loops over: one step of the render's meter per item."""
    meter = current_meter()
    return iterable if meter is None else meter.iterate(iterable)


def _printed(value: Any) -> Any:
    """What ``{{ value }}`` prints: refused when its text would be too long to make (a
    list holding a list twice, thirty times over, prints billions of characters)."""
    kind = type(value)
    if kind is str:
        created(len(value))
    elif kind is not int and kind is not float and kind is not bool:
        created(check_text(value, "printing"))
    return value


def _is_input(result: Any, obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether a call gave back something it was given (and so made nothing new)."""
    inputs = itertools.chain((getattr(obj, "__self__", None),), args, kwargs.values())
    return any(result is item for item in inputs)


# -- filters -------------------------------------------------------------------------------

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
