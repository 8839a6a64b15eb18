"""Prompt templates: a sandboxed Jinja environment with strict undefined variables.

Templates come from a project's ``templates/`` folder or inline from a spec. They render
in Jinja's sandbox (no attribute walks to ``__class__``, bounded ``range``), can only
include other files from ``templates/``, and fail loudly on a misspelt variable instead
of silently printing nothing. Errors point at the template's own line, or at the spec
value an inline template came from.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from pipeline.colors import color_name, rgb_text
from pipeline.errors import Location, SpecError, did_you_mean

INLINE = "<inline>"
SYNTAX_HINT = (
    "Jinja syntax: {{ variable }}, {% if x %}...{% endif %}, {% for x in xs %}...{% endfor %}, "
    "{# comment #}"
)
TEMPLATE_MARKERS = ("{{", "{%", "{#")


def is_template(text: str) -> bool:
    """Whether a string has any Jinja syntax; plain strings skip rendering entirely."""
    return "{" in text and any(marker in text for marker in TEMPLATE_MARKERS)


def palette(value: Any) -> str:
    """A brand's colors (or a name->hex mapping) as prose: ``primary #E4572E (tomato), ...``."""
    colors = value.get("colors", value) if isinstance(value, Mapping) else value
    if not isinstance(colors, Mapping):
        raise TypeError("palette expects a brand or a mapping of color names to hex values")
    return ", ".join(f"{name} {hx} ({color_name(hx)})" for name, hx in colors.items())


class Prompt:
    """A compiled template plus where it came from, so render errors can say where."""

    __slots__ = ("display", "origin", "template")

    def __init__(self, template: jinja2.Template, origin: Location, display: str):
        self.template = template
        self.origin = origin
        self.display = display

    def render(self, context: Mapping[str, Any]) -> str:
        """Render; any failure becomes a SpecError at the template line that failed."""
        try:
            return self.template.render(context)
        except jinja2.TemplateError as exc:
            line = _template_line(exc.__traceback__, self.display)
            raise self._error(exc, line, context) from None
        except (OverflowError, TypeError, ValueError, ArithmeticError) as exc:
            line = _template_line(exc.__traceback__, self.display)
            raise self._error(exc, line, context) from None

    def _error(self, exc: BaseException, line: int | None, context: Mapping[str, Any]) -> SpecError:
        message = str(exc) if not isinstance(exc, OverflowError) else "range too large"
        hint: str | None = None
        if isinstance(exc, jinja2.UndefinedError):
            undefined = UNDEFINED_NAME.match(message)
            close = did_you_mean(undefined[1], context) if undefined else None
            hint = close or "define it under 'vars:', in the matrix, or check its spelling"
        elif isinstance(exc, jinja2.exceptions.SecurityError):
            hint = "templates can only use the values they are given"
        elif isinstance(exc, jinja2.TemplateNotFound):
            message = f"included template '{exc.name}' not found"
            hint = "a template can include only other files in the templates folder"
        elif isinstance(exc, jinja2.TemplateSyntaxError):
            message = f"syntax error in an included template: {exc.message}"
            hint = SYNTAX_HINT
        return SpecError(f"template error: {message}", _shift(self.origin, line), hint)


UNDEFINED_NAME = re.compile(r"^'([^']+)' is undefined$")


def _syntax_hint(exc: jinja2.TemplateSyntaxError, env: jinja2.Environment) -> str:
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


def _shift(origin: Location, line: int | None) -> Location:
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


class TemplateEngine:
    """Compiles and caches prompt templates for one project."""

    def __init__(self, templates_dir: Path | None, display_dir: str = "templates"):
        loader = jinja2.FileSystemLoader(str(templates_dir)) if templates_dir else None
        self.env = SandboxedEnvironment(
            loader=loader,
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=False,
            auto_reload=False,
        )
        self.env.filters.update(color_name=color_name, rgb=rgb_text, palette=palette)
        self.templates_dir = templates_dir
        self.display_dir = display_dir
        self._inline: dict[tuple[str, Location], Prompt] = {}
        self._files: dict[str, Prompt] = {}

    def inline(self, source: str, origin: Location) -> Prompt:
        """Compile a template written in a spec value at ``origin``."""
        key = (source, origin)
        prompt = self._inline.get(key)
        if prompt is None:
            display = f"{origin.file}:{origin.line}:{INLINE}"
            try:
                code = self.env.compile(source, name=None, filename=display)
                template = self.env.template_class.from_code(
                    self.env, code, self.env.make_globals(None)
                )
            except jinja2.TemplateSyntaxError as exc:
                raise SpecError(
                    f"template syntax error: {exc.message}",
                    _shift(origin, exc.lineno),
                    _syntax_hint(exc, self.env),
                ) from None
            prompt = self._inline[key] = Prompt(template, origin, display)
        return prompt

    def file(self, name: str, origin: Location) -> Prompt:
        """Load ``templates/<name>``; ``origin`` is the spec value that named it."""
        prompt = self._files.get(name)
        if prompt is not None:
            return prompt
        display = f"{self.display_dir}/{name}"
        if self.env.loader is None:
            raise SpecError(
                f"template '{name}' not found: the project has no templates folder",
                origin,
                "create templates/ or write the prompt inline with 'prompt:'",
            )
        try:
            template = self.env.get_template(name)
        except jinja2.TemplateSyntaxError as exc:
            where = Location(f"{self.display_dir}/{exc.name or name}", exc.lineno, None)
            raise SpecError(
                f"template syntax error: {exc.message}", where, _syntax_hint(exc, self.env)
            ) from None
        except jinja2.TemplateNotFound as exc:
            known = self.env.list_templates() if self.env.loader else []
            hint = did_you_mean(name, known) or (
                f"templates are files in {self.display_dir}/"
                + (f"; there are: {', '.join(known)}" if known else "; there are none")
            )
            raise SpecError(f"template '{exc.name}' not found", origin, hint) from None
        filename = template.filename or display
        prompt = Prompt(template, Location(display, 0, None), filename)
        self._files[name] = prompt
        return prompt


def render_text(engine: TemplateEngine, text: str, origin: Location, ctx: Mapping[str, Any]) -> str:
    """Render one spec string as a template if it has Jinja syntax, else return it as is."""
    if not is_template(text):
        return text
    return engine.inline(text, origin).render(ctx)
