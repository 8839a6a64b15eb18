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
    exc: Exception, context: Mapping[str, Any], origin: Location, display: str
) -> SpecError:
    """The spec error for what a render raised, at the template line it came from."""
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
        hint = close or "define it under 'vars:', in the matrix, or check its spelling"
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


UNDEFINED_NAME = re.compile(r"^'([^']+)' is undefined$")


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
