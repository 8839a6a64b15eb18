"""What a template raised, as a spec error at the line it came from and with what would be right.

A template is part of a spec, so whatever it raises (a misspelt variable, a syntax
error, a sandbox refusal, a bound of :mod:`pipeline.templating.limits`, even a
``MemoryError`` or ``RecursionError``) is the spec's error and is reported the way the
loader reports one: the file and line of the template (or of the spec value an inline
template came from), what is wrong, and a hint. Never a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import jinja2

from pipeline.errors import Location, SpecError, did_you_mean
from pipeline.templating.limits import LIMIT_HINT, NUMBER_HINT, TemplateLimit
from pipeline.templating.loader import TemplateFileRefused

SYNTAX_HINT = (
    "Jinja syntax: {{ variable }}, {% if x %}...{% endif %}, {% for x in xs %}...{% endfor %}, "
    "{# comment #}"
)
RENDER_HINT = "check the values the template uses and the arguments it passes"


def render_failure(
    exc: Exception,
    context: Mapping[str, Any],
    origin: Location,
    display: str,
    used_at: Location | None = None,
) -> SpecError:
    """The spec error for what a render raised, at the template line it came from.

    A value a template file does not find depends on who renders it (the asset's brand,
    vars, size or aspect), so that error also names the asset and the spec value that
    used the file (``used_at``): the file's line alone does not say which of the assets
    sharing it to fix. Other failures are the file's own, and are said once."""
    error = _render_error(exc, context, origin, display)
    if used_at is None or not isinstance(exc, jinja2.UndefinedError):
        return error
    return SpecError(f"{error.message} ({_user(context, used_at)})", error.location, error.hint)


def _user(context: Mapping[str, Any], used_at: Location) -> str:
    """``asset 'hero' at specs/a.yaml:4:15``: who rendered a template file, so an error
    in a file many assets share says which one to look at."""
    asset = context.get("asset")
    asset_id = asset.get("id") if isinstance(asset, Mapping) else None
    if isinstance(asset_id, str):
        return f"asset '{asset_id}' at {used_at}"
    return f"used at {used_at}"


def _render_error(
    exc: Exception, context: Mapping[str, Any], origin: Location, display: str
) -> SpecError:
    """What went wrong, at the template line, with the hint that fits the failure."""
    where = shift(origin, _template_line(exc.__traceback__, display))
    message = f"the template raised {describe(exc)}"
    hint: str | None = RENDER_HINT
    if isinstance(exc, TemplateLimit | TemplateFileRefused):
        message, hint = str(exc), exc.hint
    elif isinstance(exc, MemoryError):  # the process survives it
        message, hint = "the template needs too much memory", LIMIT_HINT
    elif isinstance(exc, RecursionError):
        message = "the template recurses too deeply"
        hint = "a macro that calls itself needs a condition that stops it"
    elif isinstance(exc, OverflowError):
        message, hint = "a number is too large", NUMBER_HINT
    elif isinstance(exc, jinja2.UndefinedError):
        message = str(exc)
        undefined = UNDEFINED_NAME.match(message)
        close = did_you_mean(undefined[1], context) if undefined else None
        hint = close or _undefined_hint(undefined[1] if undefined else None)
        unset = _unset_field(message, context)
        if unset is not None:
            message, hint = unset
    elif isinstance(exc, jinja2.exceptions.SecurityError):
        message, hint = str(exc), "templates can only use the values they are given"
    elif isinstance(exc, jinja2.TemplateNotFound):
        message = f"included template '{exc.name}' not found"
        hint = "a template can include only other files in the templates folder"
    elif isinstance(exc, jinja2.TemplateSyntaxError):
        message, hint = f"syntax error in an included template: {exc.message}", SYNTAX_HINT
    elif isinstance(exc, jinja2.TemplateError):
        message, hint = str(exc), None
    return SpecError(f"template error: {message}", where, hint)


def _undefined_hint(name: str | None) -> str:
    """For a name nothing defines: where to define it, and how to test for it when it is
    optional (a bare ``{% if name %}`` on a name nothing defines is taken as a typo)."""
    hint = "define it under 'vars:', in the matrix, or check its spelling"
    if name is None:
        return hint
    return f"{hint}; to test for an optional value: {{% if {name} is defined %}}"


UNDEFINED_NAME = re.compile(r"^'([^']+)' is undefined$")
MISSING_ATTRIBUTE = re.compile(r"^'dict object' has no attribute '([^']+)'$")
OPTIONAL_FIELDS = {
    "brand": (
        ("style", "voice", "logo"),
        "add it to the brand kit, or test for it: {{% if brand.{0} %}}...{{% endif %}}",
    ),
    "asset": (
        ("size", "aspect"),
        "an asset has a size or an aspect, not both: test for it with "
        "{{% if asset.{0} %}}...{{% endif %}}",
    ),
}
"""Fields a template may name that are not always set: a missing one is said by name."""


def _unset_field(message: str, context: Mapping[str, Any]) -> tuple[str, str] | None:
    """For ``brand.style`` or ``asset.aspect`` when it is not set: what is missing, by
    name, and how to write the template (rather than Jinja's "'dict object' has no
    attribute")."""
    match = MISSING_ATTRIBUTE.match(message)
    if match is None:
        return None
    name = match[1]
    for owner, (fields, hint) in OPTIONAL_FIELDS.items():
        values = context.get(owner)
        if name in fields and isinstance(values, Mapping) and name not in values:
            return f"'{owner}.{name}' is not set here", hint.format(name)
    brand = context.get("brand")
    if not isinstance(brand, Mapping):
        return None
    colors = brand.get("colors")
    if isinstance(colors, Mapping) and name not in colors and name not in brand:
        known = ", ".join(sorted(colors)) or "none"
        return f"no value '{name}' here", f"the brand's colors are: {known}"
    return None


def describe(exc: Exception) -> str:
    """``IndexError: pop index out of range``: the kind of failure and Python's words."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def syntax_hint(exc: jinja2.TemplateSyntaxError, env: jinja2.Environment) -> str:
    """What would be right for a template syntax error: the closest filter or test name
    when one is unknown, else a reminder of the syntax."""
    message = exc.message or ""
    for kind, known in (("filter", env.filters), ("test", env.tests)):
        unknown = re.match(rf"^No {kind} named '([^']+)'", message)
        if unknown:
            return did_you_mean(unknown[1], known) or (
                f"the {kind}s here are Jinja's built-ins"
                + (" and color_name, rgb, palette" if kind == "filter" else "")
            )
    return SYNTAX_HINT


BLOCK_TAGS = frozenset({"if", "for", "macro", "call", "filter", "block", "with", "autoescape"})


def unclosed_block(source: str, env: jinja2.Environment) -> tuple[str, int] | None:
    """The innermost ``{% if %}``/``{% for %}``/... that is never closed, and its line.

    Jinja reports a missing ``{% endif %}`` at the end of the template, where nothing is
    wrong; the place to fix is the tag that opened the block."""
    stack: list[tuple[str, int]] = []
    after_begin = False
    try:
        for lineno, kind, value in env.lex(source):
            if kind == "block_begin":
                after_begin = True
                continue
            if kind == "whitespace":
                continue
            if after_begin and kind == "name":
                if value in BLOCK_TAGS:
                    stack.append((value, lineno))
                elif value.startswith("end") and stack and stack[-1][0] == value[3:]:
                    stack.pop()
            after_begin = False
    except jinja2.TemplateSyntaxError:
        return None
    return stack[-1] if stack else None


def syntax_error(
    exc: jinja2.TemplateSyntaxError, source: str | None, env: jinja2.Environment
) -> tuple[str, int | None]:
    """The message and the (1-based) template line of a syntax error: an unclosed block
    is reported at the tag that opened it."""
    if source is not None and "Unexpected end of template" in (exc.message or ""):
        found = unclosed_block(source, env)
        if found is not None:
            tag, line = found
            return (
                f"template syntax error: this {{% {tag} %}} is never closed (add {{% end{tag} %}})",
                line,
            )
    return f"template syntax error: {exc.message}", exc.lineno


def shift(origin: Location, line: int | None) -> Location:
    """The location of ``line`` of a template that starts at ``origin``."""
    if line is None or origin.line is None:
        return origin
    if origin.file.endswith(".j2") or origin.line == 0:
        return Location(origin.file, line, None)
    if line == 1:
        return origin
    return Location(origin.file, origin.line + line - 1, None)


def _template_line(tb: TracebackType | None, filename: str) -> int | None:
    """The last line of ``filename`` on the (Jinja-rewritten) traceback."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def too_complex(where: Location) -> SpecError:
    """Jinja's parser and compiler recurse: ``{{ ((((...)))) }}`` thousands deep would
    overflow the stack."""
    return SpecError(
        "template syntax error: the template nests too deeply to compile",
        where,
        "write expressions and blocks a few levels deep",
    )
