"""The sandboxed Jinja environment, with the bounds of :mod:`pipeline.templating.limits`.

Every place where a template can make something large passes through here before it
runs: ``call`` (functions, macros and the methods of strings, lists and numbers),
``call_binop`` (``*``, ``**``, ``+``, ``%``), ``getitem`` (slices), ``str.format``,
``~`` and ``{% for %}`` (through a code generator that routes them here), the text each
``{{ ... }}`` prints, and the text a macro or block returns. Filters are wrapped by
:mod:`pipeline.templating.filters`; the checks themselves are in
:mod:`pipeline.templating.operations`, and the running budget in
:mod:`pipeline.templating.meter`.
"""

from __future__ import annotations

import functools
import itertools
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.runtime import Macro, markup_join, str_join
from jinja2.sandbox import SandboxedEnvironment, SandboxedFormatter
from markupsafe import EscapeFormatter, Markup

from pipeline.templating.filters import bounded_filter
from pipeline.templating.limits import (
    MAX_RANGE,
    MAX_RENDERED_CHARS,
    SIZE_HINT,
    TemplateLimit,
    check_text,
    short,
    sized,
    too_big,
)
from pipeline.templating.meter import created, current_meter
from pipeline.templating.operations import (
    check_concat,
    check_method,
    check_power,
    check_printf,
    check_product,
    check_sum,
    spec_width,
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
    slices (compiled to plain Python, out of the sandbox's reach) bounded, and an
    if-expression without ``else`` giving the empty string."""

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:  # noqa: N802
        for loop in node.find_all(nodes.For):
            guard = nodes.Filter(loop.iter, LOOP_GUARD, [], [], None, None)
            guard.set_lineno(loop.iter.lineno or loop.lineno)
            guard.set_environment(self.environment)
            loop.iter = guard
        for cond in node.find_all(nodes.CondExpr):
            _else_empty(cond, self.environment)
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
        super().__init__(finalize=printed, **kwargs)
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


def _else_empty(cond: nodes.CondExpr, environment: jinja2.Environment) -> None:
    """``{{ ", " ~ brand.style if brand.style }}`` prints nothing when the test fails.

    Jinja makes the missing ``else`` an undefined value, which strict undefined values
    turn into an error when printed: yet the template said exactly what to print, and
    nothing unset would reach the prompt."""
    if cond.expr2 is None:
        empty = nodes.Const("")
        empty.set_lineno(cond.lineno)
        empty.set_environment(environment)
        cond.expr2 = empty


LOOP_GUARD = "_loop_guard"
"""The filter the code generator puts around what every ``{% for %}`` loops over."""


@jinja2.pass_context  # which also keeps Jinja from running it at compile time
def _loop_guard(context: jinja2.runtime.Context, iterable: Iterable[Any]) -> Iterable[Any]:
    """What a ``{% for %}`` loops over: one step of the render's meter per item."""
    meter = current_meter()
    return iterable if meter is None else meter.iterate(iterable)


def printed(value: Any) -> Any:
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
