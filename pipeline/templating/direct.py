"""Rendering the simplest templates without building a Jinja context for each render.

Most templates in specs only print values: ``tile-{{ x }}-{{ y }}``, or ``{{ brand.name }}``
and ``{{ brand.colors.primary | color_name }}`` between literal text. Jinja renders each
one by making a fresh :class:`jinja2.runtime.Context` (a copy of the globals and of every
value passed in) and a generator: most of the cost of a 100,000-combination matrix.

A :class:`DirectTemplate` is made only for a template whose whole body is literal text and
``{{ ... }}`` of a variable name, its keys (``a.b.c``) and filters without arguments. It
does what the compiled template would do, step for step, on the values it can be sure
of: a name found in the render's values (never a global), a key of a plain ``dict`` that
no ``dict`` attribute shadows (the sandbox's ``getattr`` falls back to the key exactly
then), a filter of the environment called as the compiled code calls it (through its
bounds), and a printed value of type ``str``, ``int``, ``float`` or ``bool`` passed
through the environment's ``finalize`` (which counts it against the render's budget)
before ``str()``. Anything else (a missing name or key, another type, an exception, text
near the output limit) answers :data:`UNSURE`, and the caller renders with Jinja, which
then gives its own answer or error: the same text, or the same failure, either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import jinja2
from jinja2 import nodes
from jinja2.utils import _PassArg

from pipeline.templating.limits import MAX_CREATED, MAX_RENDERED_CHARS, sized
from pipeline.templating.sandbox import printed

UNSURE: Final = object()
"""What :meth:`DirectTemplate.render` answers when only Jinja can say what to print."""

PRINTABLE = (str, int, float, bool)
"""Types whose ``str()`` is what Jinja prints (exact types: a subclass may print otherwise)."""

MAX_FILTERS = 64
"""Filter calls a direct template may make: each is a step of Jinja's meter, which looks
at the clock first after 576 steps (:class:`~pipeline.templating.meter.Meter`)."""

SPECIAL_NAMES = frozenset({"self", "loop", "super", "caller", "varargs", "kwargs"})
"""Names the Jinja compiler gives a meaning of its own rather than looking them up."""

_Lookup = tuple[str, tuple[str, ...], tuple[str, ...]]
"""A value to print: a name, the keys looked up from it, then the filters applied."""
_MISSING: Final = object()


class DirectTemplate:
    """A template that only prints values, rendered without a Jinja context."""

    __slots__ = ("environment", "layout", "names", "parts")

    def __init__(self, environment: jinja2.Environment, parts: tuple[str | _Lookup, ...]):
        self.environment = environment
        self.parts = parts
        """Literal text, or ``(name, keys, filters)``: a value to look up and print."""
        lookups = [p for p in parts if not isinstance(p, str)]
        names = [name for name, keys, filters in lookups if not keys and not filters]
        simple = len(names) == len(lookups)
        self.names: tuple[str, ...] | None = tuple(names) if simple else None
        """The names printed, when every value printed is a bare name (``tile-{{ x }}``)."""
        self.layout = "".join(
            p.replace("{", "{{").replace("}", "}}") if isinstance(p, str) else "{}" for p in parts
        )
        """The literal text with ``{}`` where each name's text goes (for ``str.format``)."""

    def render(self, context: Mapping[str, Any]) -> str | object:
        """The text the template renders with ``context``, or :data:`UNSURE`.

        It runs with no meter in place. What the render's meter would count, this counts:
        each filter's result (as the bounded filters count it; an unbounded one counts
        nothing under Jinja, so this only errs towards handing back) and each printed
        text (as the environment's ``finalize`` counts it), and it hands back past
        ``MAX_CREATED`` or ``MAX_RENDERED_CHARS``, so Jinja raises that bound. The meter's
        other bounds cannot be reached: no loop, and at most :data:`MAX_FILTERS` filter
        calls, each one step, fewer than the steps before its first look at the clock."""
        if type(context) is not dict:
            return UNSURE
        try:
            "".join(context)  # Jinja passes the values as **keywords: text keys only
        except TypeError:
            return UNSURE
        if self.names is not None:
            return self._names(context)
        filters = self.environment.filters
        out: list[str] = []
        total = created = 0
        try:
            for part in self.parts:
                if isinstance(part, str):
                    out.append(part)
                    total += len(part)
                    continue
                name, keys, applied = part
                value = context.get(name, _MISSING)
                if value is _MISSING:
                    return UNSURE  # undefined, or a global: Jinja's to say
                for key in keys:
                    if value.__class__ is not dict:
                        return UNSURE
                    value = value.get(key, _MISSING)
                    if value is _MISSING:
                        return UNSURE
                for filter_name in applied:
                    func = filters.get(filter_name)
                    if func is None or value.__class__ not in PRINTABLE:
                        return UNSURE
                    result = func(value)
                    if result is not value:
                        created += len(result) if result.__class__ is str else sized(result)
                    value = result
                printable = value.__class__
                if printable is str:
                    text = value
                    created += len(text)
                elif printable in PRINTABLE:
                    text = str(value)
                else:
                    return UNSURE
                total += len(text)
                out.append(text)
                if total > MAX_RENDERED_CHARS:
                    return UNSURE  # Jinja raises the limit at the line that printed it
        except Exception:  # whatever it is, Jinja reports it at its line
            return UNSURE
        if total > MAX_RENDERED_CHARS or created > MAX_CREATED:
            return UNSURE
        return "".join(out)

    def _names(self, context: dict[str, Any]) -> str | object:
        """:meth:`render` of a template that prints bare names only: each value's text put
        into the literal text in one ``str.format`` (a ``str`` as it is, the other
        printable types by ``str()``, as Jinja prints them)."""
        texts: list[str] = []
        try:
            for name in self.names or ():
                value = context[name]
                kind = type(value)
                if kind is str:
                    texts.append(value)
                elif kind in PRINTABLE:
                    texts.append(str(value))
                else:
                    return UNSURE
        except Exception:  # a missing name (Jinja's undefined error), an int too long
            return UNSURE
        text = self.layout.format(*texts)
        return UNSURE if len(text) > MAX_RENDERED_CHARS else text


def direct_template(environment: jinja2.Environment, source: str) -> DirectTemplate | None:
    """A :class:`DirectTemplate` for ``source`` when it only prints values, else None.

    Only an environment that prints with ``str()`` (no autoescape) and whose filters take
    the value alone qualifies; the template's own text is read as the environment's lexer
    reads it (whitespace control, the trailing newline), from its parsed tree."""
    if environment.autoescape is not False or environment.finalize is not printed:
        return None
    if getattr(environment, "is_async", False):
        return None
    try:
        tree = environment.parse(source)
    except Exception:  # the compiler reports it
        return None
    parts: list[str | _Lookup] = []
    for node in tree.body:
        if not isinstance(node, nodes.Output):
            return None
        for child in node.nodes:
            if isinstance(child, nodes.TemplateData):
                if child.data:
                    parts.append(child.data)
                continue
            lookup = _lookup(environment, child)
            if lookup is None:
                return None
            parts.append(lookup)
    calls = sum(len(p[2]) for p in parts if not isinstance(p, str))
    if calls > MAX_FILTERS:
        return None
    return DirectTemplate(environment, tuple(parts))


def _lookup(environment: jinja2.Environment, node: nodes.Node) -> _Lookup | None:
    """``(name, keys, filters)`` for ``name.key.key | filter | filter``, else None."""
    filters: list[str] = []
    while isinstance(node, nodes.Filter):
        if node.node is None or node.args or node.kwargs or node.dyn_args or node.dyn_kwargs:
            return None
        func = environment.filters.get(node.name)
        if func is None or _PassArg.from_obj(func) is not None:
            return None
        filters.append(node.name)
        node = node.node
    keys: list[str] = []
    while isinstance(node, nodes.Getattr):
        # The sandbox's getattr tries the attribute first: a key a dict method shadows
        # (``items``, ``keys``) is not the key.
        if node.ctx != "load" or hasattr(dict, node.attr):
            return None
        keys.append(node.attr)
        node = node.node
    if not isinstance(node, nodes.Name) or node.ctx != "load" or node.name in SPECIAL_NAMES:
        return None
    return node.name, tuple(reversed(keys)), tuple(reversed(filters))
