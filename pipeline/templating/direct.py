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

from collections.abc import Callable, Mapping
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

MAX_LOOKUPS = 64
"""Values a direct template that does more than print bare names may print: its render is
compiled code (:func:`_printing`), about ten lines per value; a longer one is Jinja's.
Bare names have no such bound (they are put in without code of their own)."""

SPECIAL_NAMES = frozenset({"self", "loop", "super", "caller", "varargs", "kwargs"})
"""Names the Jinja compiler gives a meaning of its own rather than looking them up."""

_Lookup = tuple[str, tuple[str, ...], tuple[str, ...]]
"""A value to print: a name, the keys looked up from it, then the filters applied."""


class DirectTemplate:
    """A template that only prints values, rendered without a Jinja context.

    Its literal text is laid out once, with ``%s`` where each printed value goes, and its
    lookups are written out as one function (:func:`_printing`), so a render only looks
    up the values, filters them and puts their texts in at once: the literal parts are
    neither appended nor counted one by one."""

    __slots__ = ("environment", "layout", "literal_chars", "lookups", "names", "parts", "printing")

    def __init__(self, environment: jinja2.Environment, parts: tuple[str | _Lookup, ...]):
        self.environment = environment
        self.parts = parts
        """Literal text, or ``(name, keys, filters)``: a value to look up and print."""
        self.lookups: tuple[_Lookup, ...] = tuple(p for p in parts if not isinstance(p, str))
        """The values printed, in order (the ``%s`` of :attr:`layout`)."""
        names = [name for name, keys, filters in self.lookups if not keys and not filters]
        simple = len(names) == len(self.lookups)
        self.names: tuple[str, ...] | None = tuple(names) if simple else None
        """The names printed, when every value printed is a bare name (``tile-{{ x }}``)."""
        self.layout = "".join(p.replace("%", "%%") if isinstance(p, str) else "%s" for p in parts)
        """The literal text with ``%s`` where each value's text goes (for ``%``, which puts
        a ``str`` in as it is, and is quicker than ``str.format``)."""
        self.literal_chars = sum(len(p) for p in parts if isinstance(p, str))
        self.printing: _Printing | None = None
        """The render of :attr:`lookups` into :attr:`layout` (see :func:`_printing`), made
        for a template that prints more than bare names."""
        if self.names is None:
            self.printing = _printing(self.lookups, self.layout, self.literal_chars)

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
        if self.printing is None:
            return self._names(context)
        return self.printing(context, self.environment.filters)

    def _names(self, context: dict[str, Any]) -> str | object:
        """:meth:`render` of a template that prints bare names only: each value's text put
        into the literal text at once (a ``str`` as it is, the other
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
        text = self.layout % tuple(texts)
        return UNSURE if len(text) > MAX_RENDERED_CHARS else text


_Printing = Callable[[dict[str, Any], Mapping[str, Any]], object]

MAX_MAKERS = 256
"""Structures whose maker is kept at most (then all are forgotten at once): a bound for
long-lived processes (``watch``, the review server) that load many templates."""
_MAKERS: dict[tuple[tuple[int, int], ...], Callable[..., _Printing]] = {}
"""The compiled maker of :func:`_printing`'s functions by the template's structure (how
many keys and filters each printed value has): few, and each compiled once."""


def _printing(lookups: tuple[_Lookup, ...], layout: str, literal_chars: int) -> _Printing:
    """A function of the render's values and the environment's filters that prints each
    lookup, one after the other, into ``layout``, or answers :data:`UNSURE`.

    For each value, in order: the name looked up in the values; each key looked up in a
    plain ``dict`` (anything else: unsure); each filter, found in the environment's
    filters at each render, called on a printable value and its result counted as the
    bounded filters count it; the printed text (a ``str`` as it is and counted as
    ``finalize`` counts it, another printable type by ``str()``) added to the output's
    length, unsure past ``MAX_RENDERED_CHARS``. Any exception: unsure; past
    ``MAX_CREATED`` at the end: unsure.

    Written out as straight-line code (as ``dataclasses`` writes ``__init__``): a loop over
    the lookups costs half as much again per render. The code depends only on how many
    keys and filters each value has; it is compiled once per such structure, and each
    template's names, keys, filter names and layout are values it closes over. Its source
    holds generated names alone (``n0``, ``k0_1``, ``f0_0``): no text of a template is ever
    compiled."""
    structure = tuple((len(keys), len(applied)) for _, keys, applied in lookups)
    maker = _MAKERS.get(structure)
    if maker is None:
        if len(_MAKERS) >= MAX_MAKERS:
            _MAKERS.clear()
        maker = _MAKERS[structure] = _maker(structure)
    values: list[object] = [layout, literal_chars]
    for name, keys, applied in lookups:
        values += [name, *keys, *applied]
    return maker(*values)


def _maker(structure: tuple[tuple[int, int], ...]) -> Callable[..., _Printing]:
    """Compile the maker of the printing functions of templates of ``structure``."""
    params = ["layout", "literal_chars"]
    body = ["    def printing(context, filters):", "        created = 0"]
    body += ["        total = literal_chars", "        try:"]
    texts: list[str] = []
    for i, (keys, filters) in enumerate(structure):
        params.append(f"n{i}")
        body.append(f"            value = context[n{i}]")
        for j in range(keys):
            params.append(f"k{i}_{j}")
            body += [
                "            if value.__class__ is not dict:",
                "                return UNSURE",
                f"            value = value[k{i}_{j}]",
            ]
        for j in range(filters):
            params.append(f"f{i}_{j}")
            body += [
                f"            func = filters.get(f{i}_{j})",
                "            if func is None or value.__class__ not in PRINTABLE:",
                "                return UNSURE",
                "            result = func(value)",
                "            if result is value:",
                "                pass",
                "            elif result.__class__ is str:",
                "                created += len(result)",
                "            else:",
                "                created += sized(result)",
                "            value = result",
            ]
        body += [
            "            if value.__class__ is str:",
            "                created += len(value)",
            "            elif value.__class__ in PRINTABLE:",
            "                value = str(value)",
            "            else:",
            "                return UNSURE",
            "            total += len(value)",
            "            if total > MAX_CHARS:",
            "                return UNSURE",
            f"            t{i} = value",
        ]
        texts.append(f"t{i}")
    body += [
        "        except Exception:",
        "            return UNSURE",
        "        if created > MAX_CREATED:",
        "            return UNSURE",
        f"        return layout % ({''.join(t + ', ' for t in texts)})",
        "    return printing",
    ]
    source = "\n".join([f"def make({', '.join(params)}):", *body])
    namespace: dict[str, Any] = {
        "UNSURE": UNSURE,
        "PRINTABLE": PRINTABLE,
        "sized": sized,
        "MAX_CREATED": MAX_CREATED,
        "MAX_CHARS": MAX_RENDERED_CHARS,
    }
    exec(source, namespace)  # noqa: S102 - generated names only, see _printing
    maker: Callable[..., _Printing] = namespace["make"]
    return maker


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
    lookups = [p for p in parts if not isinstance(p, str)]
    calls = sum(len(p[2]) for p in lookups)
    if calls > MAX_FILTERS:
        return None
    if len(lookups) > MAX_LOOKUPS and any(keys or filters for _, keys, filters in lookups):
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
