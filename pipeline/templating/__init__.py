"""Prompt templates: a sandboxed Jinja environment with strict undefined variables.

Templates come from a project's ``templates/`` folder or inline from a spec. They render
in Jinja's sandbox (no attribute walks to ``__class__``), can only include other files
from ``templates/`` (not hidden ones, not through a link that leaves it), and fail loudly
on a misspelt variable instead of silently printing nothing. Errors point at the
template's own line, or at the spec value an inline template came from; whatever a
template raises while rendering is such an error, never a traceback.

The sandbox stops escapes, not work. A spec may come from anyone who can open a pull
request, so :mod:`pipeline.templating.sandbox` also bounds time and memory (see
:mod:`pipeline.templating.limits`), and running out of memory or stack is a spec error,
not a crash.
"""

from __future__ import annotations

import itertools
import os
import posixpath
import re
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import jinja2
from jinja2.loaders import split_template_path

from pipeline.colors import color_name, rgb_text
from pipeline.errors import Location, SpecError, did_you_mean
from pipeline.templating.limits import (
    LIMIT_HINT,
    MAX_RENDER_SECONDS,
    MAX_RENDERED_CHARS,
    NUMBER_HINT,
    Meter,
    RenderClock,
    TemplateLimit,
    end_render,
    start_render,
)
from pipeline.templating.sandbox import Sandbox

__all__ = [
    "MAX_RENDERED_CHARS",
    "Prompt",
    "TemplateEngine",
    "TemplateLimit",
    "is_template",
    "render_text",
]

INLINE = "<inline>"
MAX_TEMPLATE_BYTES = 1024 * 1024
SYNTAX_HINT = (
    "Jinja syntax: {{ variable }}, {% if x %}...{% endif %}, {% for x in xs %}...{% endfor %}, "
    "{# comment #}"
)
TEMPLATE_MARKERS = ("{{", "{%", "{#")
HIDDEN_HINT = (
    "hidden files and folders (.env, .git/) hold settings and secrets, not prompts; "
    "give the template a name that does not start with '.'"
)
RENDER_HINT = "check the values the template uses and the arguments it passes"


def is_template(text: str) -> bool:
    """Whether a string has any Jinja syntax; plain strings skip rendering entirely."""
    return "{" in text and any(marker in text for marker in TEMPLATE_MARKERS)


def palette(value: Any) -> str:
    """A brand's colors (or a name->hex mapping) as prose: ``primary #E4572E (tomato), ...``."""
    colors = value.get("colors", value) if isinstance(value, Mapping) else value
    if not isinstance(colors, Mapping):
        raise TypeError("palette expects a brand or a mapping of color names to hex values")
    return ", ".join(f"{name} {hx} ({color_name(hx)})" for name, hx in colors.items())


class TemplateFileRefused(Exception):
    """A template file that exists but may not be read (hidden, a link out of templates/,
    too large, unreadable, not UTF-8)."""

    def __init__(self, message: str, hint: str):
        super().__init__(message)
        self.hint = hint


class ContainedLoader(jinja2.FileSystemLoader):
    """Loads templates from one folder and nothing reached through it.

    FileSystemLoader already refuses ``..`` in names; a file that is a symbolic link out
    of the folder would still be read, so a template could pull ``~/.aws/credentials``
    into a prompt that is sent to the API and written to the manifest. Hidden files and
    folders are refused too: with ``templates: .`` the folder is the project, and
    ``{% include '.env' %}`` or ``.git/config`` would be read the same way. Files too
    large to be a prompt template, unreadable, or not UTF-8 are refused with their own
    message.
    """

    def __init__(self, folder: Path):
        super().__init__(str(folder))
        self.folder = folder

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        pieces = split_template_path(template)
        _refuse_hidden(template, pieces)
        filename = Path(posixpath.join(str(self.folder), *pieces))
        try:
            if filename.is_file():
                self._check_file(template, filename)
            return super().get_source(environment, template)
        except jinja2.TemplateNotFound:
            raise
        except UnicodeDecodeError as exc:
            raise TemplateFileRefused(
                f"template '{template}' is not UTF-8 text (byte {exc.start:,})",
                "save the file with the UTF-8 encoding",
            ) from None
        except OSError as exc:
            raise TemplateFileRefused(
                f"template '{template}' cannot be read: {exc.strerror or exc}",
                "check that the file is readable",
            ) from None

    def _check_file(self, template: str, filename: Path) -> None:
        real, base = filename.resolve(), self.folder.resolve()
        if not real.is_relative_to(base):
            raise TemplateFileRefused(
                f"template '{template}' is a symbolic link to a file outside the templates folder",
                "keep templates inside the templates folder; copy the file in rather than link it",
            )
        size = real.stat().st_size
        if size > MAX_TEMPLATE_BYTES:
            raise TemplateFileRefused(
                f"template '{template}' is {size:,} bytes; a template may have at most "
                f"{MAX_TEMPLATE_BYTES:,}",
                "a prompt is at most 32,000 characters; split the template or shorten it",
            )

    def list_templates(self) -> list[str]:
        """The templates a name may refer to, for a did-you-mean: no hidden file or
        folder, and at most MAX_LISTED (``templates: .`` makes it the whole project)."""
        return sorted(itertools.islice(self._walk(), MAX_LISTED))

    def _walk(self) -> Iterator[str]:
        for folder, dirs, files in os.walk(self.folder):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            rel = Path(folder).relative_to(self.folder)
            for name in sorted(files):
                if not name.startswith("."):
                    yield (rel / name).as_posix()


MAX_LISTED = 1_000


def _refuse_hidden(template: str, pieces: list[str]) -> None:
    """Refuse a template name with a part that starts with '.'."""
    for i, piece in enumerate(pieces):
        if piece.startswith("."):
            where = (
                "is a hidden file"
                if i == len(pieces) - 1
                else f"is inside the hidden folder '{'/'.join(pieces[: i + 1])}'"
            )
            raise TemplateFileRefused(
                f"template '{template}' {where}; templates never read hidden files or folders",
                HIDDEN_HINT,
            )


class Prompt:
    """A compiled template plus where it came from, so render errors can say where."""

    __slots__ = ("display", "origin", "render_clock", "template")

    def __init__(
        self,
        template: jinja2.Template,
        origin: Location,
        display: str,
        render_clock: RenderClock,
    ):
        self.template = template
        self.origin = origin
        self.display = display
        self.render_clock = render_clock

    def render(self, context: Mapping[str, Any]) -> str:
        """Render; any failure becomes a SpecError at the template line that failed."""
        meter = Meter(self.render_clock)
        token = start_render(meter)
        started = self.render_clock.clock()
        try:
            meter.check_time()  # once the load's rendering time is spent, nothing renders
            return self._bounded(context)
        except Exception as exc:  # whatever a template raises is the spec's error
            raise self._failure(exc, context) from None
        finally:
            end_render(token)
            self.render_clock.seconds_left -= self.render_clock.clock() - started

    def _bounded(self, context: Mapping[str, Any]) -> str:
        """Render piece by piece and stop past MAX_RENDERED_CHARS.

        ``render`` would join the whole output first: a loop in a loop printing one
        character runs 10**8 steps and builds 100 MB before any check. Throwing the
        limit into the generator raises it inside the template's frames, so the error
        names the template line that was printing.
        """
        pieces = self.template.generate(context)
        out: list[str] = []
        total = 0
        for piece in pieces:
            total += len(piece)
            if total > MAX_RENDERED_CHARS:
                limit = TemplateLimit(
                    f"the rendered text is over {MAX_RENDERED_CHARS:,} characters",
                    "a prompt takes at most 32,000 characters; look for a loop that "
                    "repeats too often",
                )
                if isinstance(pieces, Generator):
                    pieces.throw(limit)
                raise limit
            out.append(piece)
        return "".join(out)

    def _failure(self, exc: Exception, context: Mapping[str, Any]) -> SpecError:
        """The spec error for what a render raised, at the template line it came from."""
        where = _shift(self.origin, _template_line(exc.__traceback__, self.display))
        message = f"the template raised {_describe(exc)}"
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


def _describe(exc: Exception) -> str:
    """``IndexError: pop index out of range``: the kind of failure and Python's words."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


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
    """Compiles and caches prompt templates for one project.

    One engine serves one load: all its renders share :data:`MAX_RENDER_SECONDS` of
    rendering time, read from ``clock``.
    """

    def __init__(
        self,
        templates_dir: Path | None,
        display_dir: str = "templates",
        clock: Callable[[], float] = time.monotonic,
        render_seconds: float = MAX_RENDER_SECONDS,
    ):
        self.render_clock = RenderClock(clock, render_seconds)
        loader = ContainedLoader(templates_dir) if templates_dir else None
        self.env = Sandbox(
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
            except (MemoryError, RecursionError):
                raise _too_complex(origin) from None
            except Exception as exc:  # a number literal of 5,000 digits, say
                raise SpecError(
                    f"template syntax error: {_describe(exc)}", origin, SYNTAX_HINT
                ) from None
            prompt = Prompt(template, origin, display, self.render_clock)
            self._inline[key] = prompt
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
                + (f"; there are: {_listed(known)}" if known else "; there are none")
            )
            raise SpecError(f"template '{exc.name}' not found", origin, hint) from None
        except TemplateFileRefused as exc:
            raise SpecError(str(exc), origin, exc.hint) from None
        except (MemoryError, RecursionError):
            raise _too_complex(Location(display, None, None)) from None
        except Exception as exc:  # a number literal of 5,000 digits, say
            raise SpecError(
                f"template syntax error: {_describe(exc)}", Location(display), SYNTAX_HINT
            ) from None
        filename = template.filename or display
        prompt = Prompt(template, Location(display, 0, None), filename, self.render_clock)
        self._files[name] = prompt
        return prompt


def _listed(names: list[str], most: int = 20) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most:,} more" if len(names) > most else "")


def _too_complex(where: Location) -> SpecError:
    """Jinja's parser and compiler recurse: ``{{ ((((...)))) }}`` thousands deep would
    overflow the stack."""
    return SpecError(
        "template syntax error: the template nests too deeply to compile",
        where,
        "write expressions and blocks a few levels deep",
    )


def render_text(engine: TemplateEngine, text: str, origin: Location, ctx: Mapping[str, Any]) -> str:
    """Render one spec string as a template if it has Jinja syntax, else return it as is."""
    if not is_template(text):
        return text
    return engine.inline(text, origin).render(ctx)
