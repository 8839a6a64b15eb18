"""Prompt templates: a sandboxed Jinja environment with strict undefined variables.

Templates come from a project's ``templates/`` folder or inline from a spec. They render
in Jinja's sandbox (no attribute walks to ``__class__``), can only include other files
from ``templates/`` (not through a link that leaves it), and fail loudly on a misspelt
variable instead of silently printing nothing. Errors point at the template's own line,
or at the spec value an inline template came from.

The sandbox stops escapes, not work: Jinja's own docs say it does not bound time or
memory. A spec may come from anyone who can open a pull request, so :class:`Sandbox`
also bounds what is cheap to bound — ``range`` per call and per render, ``*`` and
``**`` on large operands, the rendered length (a nested loop fails after 200,000
characters, not after minutes) — and running out of memory or stack is a spec error,
not a crash.
"""

from __future__ import annotations

import contextvars
import posixpath
import re
from collections.abc import Callable, Generator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import jinja2
from jinja2.loaders import split_template_path
from jinja2.sandbox import SandboxedEnvironment

from pipeline.colors import color_name, rgb_text
from pipeline.errors import Location, SpecError, did_you_mean

INLINE = "<inline>"
MAX_RANGE = 10_000
"""Items one ``range()`` may have (Jinja's sandbox allows 100,000)."""
MAX_RANGE_TOTAL = 100_000
"""Items all the ``range()`` calls of one render may have together: a loop inside a loop
calls ``range`` once per outer step, so this bounds nested loops that print nothing."""
MAX_RENDERED_CHARS = 200_000
"""Rendering stops here; a prompt takes at most 32,000 characters, so nothing legitimate
comes near it."""
MAX_NUMBER_BITS = 10_000
"""Integers a template computes stay under this many bits (about 3,000 digits)."""
MAX_TEMPLATE_BYTES = 1024 * 1024
LIMIT_HINT = (
    f"templates are sandboxed: range() takes at most {MAX_RANGE:,} items "
    f"({MAX_RANGE_TOTAL:,} per template), and the rendered text at most "
    f"{MAX_RENDERED_CHARS:,} characters; loop over a list from vars or the matrix instead"
)
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


class TemplateLimit(Exception):
    """A template went past one of the sandbox's bounds; says which, and what to do."""

    def __init__(self, message: str, hint: str = LIMIT_HINT):
        super().__init__(message)
        self.hint = hint


class TemplateFileRefused(Exception):
    """A template file that exists but may not be read (a link out of templates/, too
    large, not UTF-8)."""

    def __init__(self, message: str, hint: str):
        super().__init__(message)
        self.hint = hint


_range_budget: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "assetpipe_range_budget", default=None
)
"""The range() items the render in progress may still use (a one-item list, mutable)."""


def bounded_range(*args: int) -> range:
    """``range`` for templates: at most MAX_RANGE items, and MAX_RANGE_TOTAL per render."""
    rng = range(*args)
    # len() raises OverflowError past a C ssize_t; count the items the way range does.
    span = rng.stop - rng.start if rng.step > 0 else rng.start - rng.stop
    size = max(0, -(-span // abs(rng.step)))
    if size > MAX_RANGE:
        raise TemplateLimit(f"range too large: {size:,} items (at most {MAX_RANGE:,})")
    budget = _range_budget.get()
    if budget is not None:
        budget[0] -= size
        if budget[0] < 0:
            raise TemplateLimit(
                f"range too large: the loops of this template go over {MAX_RANGE_TOTAL:,} "
                "range() items in all"
            )
    return rng


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class Sandbox(SandboxedEnvironment):
    """Jinja's sandbox with the bounds above (see the module docstring).

    ``*`` and ``**`` are intercepted, which also stops Jinja from folding them at compile
    time (``{{ 9 ** (9 ** 10) }}`` would otherwise hang in the compiler). ``lipsum`` is
    removed: filler Latin has no place in a prompt, and ``lipsum(10**6)`` takes minutes.
    """

    intercepted_binops = frozenset({"*", "**"})

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.globals["range"] = bounded_range
        self.globals.pop("lipsum", None)

    def call_binop(
        self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any
    ) -> Any:
        """``left <operator> right`` once its result is known to be small enough."""
        if operator == "**":
            _check_power(left, right)
        elif operator == "*":
            _check_product(left, right)
        return super().call_binop(context, operator, left, right)


def _check_power(left: Any, right: Any) -> None:
    if not (isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1):
        return
    if right * (abs(left).bit_length() - 1) > MAX_NUMBER_BITS:
        raise TemplateLimit(
            f"the number {_short(left)} ** {_short(right)} is too large",
            f"numbers in templates stay under {MAX_NUMBER_BITS:,} bits",
        )


def _check_product(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > MAX_NUMBER_BITS:
            raise TemplateLimit(
                f"the number {_short(left)} * {_short(right)} is too large",
                f"numbers in templates stay under {MAX_NUMBER_BITS:,} bits",
            )
        return
    seq, times = (left, right) if isinstance(right, int) else (right, left)
    if isinstance(seq, str | list | tuple) and isinstance(times, int):
        size = len(seq) * times
        if size > MAX_RENDERED_CHARS:
            unit = "characters" if isinstance(seq, str) else "items"
            raise TemplateLimit(
                f"{_short(seq)} * {times:,} would make {size:,} {unit} "
                f"(at most {MAX_RENDERED_CHARS:,})",
                f"a rendered template has at most {MAX_RENDERED_CHARS:,} characters, and a "
                "prompt at most 32,000; repeat less",
            )


class ContainedLoader(jinja2.FileSystemLoader):
    """Loads templates from one folder and nothing reached through it.

    FileSystemLoader already refuses ``..`` in names; a file that is a symbolic link out
    of the folder would still be read, so a template could pull ``~/.aws/credentials``
    into a prompt that is sent to the API and written to the manifest. Files too large
    to be a prompt template, or not UTF-8, are refused with their own message.
    """

    def __init__(self, folder: Path):
        super().__init__(str(folder))
        self.folder = folder

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        filename = Path(posixpath.join(str(self.folder), *split_template_path(template)))
        if filename.is_file():
            real, base = filename.resolve(), self.folder.resolve()
            if not real.is_relative_to(base):
                raise TemplateFileRefused(
                    f"template '{template}' is a symbolic link to a file outside the "
                    "templates folder",
                    "keep templates inside the templates folder; copy the file in rather "
                    "than link it",
                )
            size = real.stat().st_size
            if size > MAX_TEMPLATE_BYTES:
                raise TemplateFileRefused(
                    f"template '{template}' is {size:,} bytes; a template may have at most "
                    f"{MAX_TEMPLATE_BYTES:,}",
                    "a prompt is at most 32,000 characters; split the template or shorten it",
                )
        try:
            return super().get_source(environment, template)
        except UnicodeDecodeError as exc:
            raise TemplateFileRefused(
                f"template '{template}' is not UTF-8 text (byte {exc.start:,})",
                "save the file with the UTF-8 encoding",
            ) from None


class Prompt:
    """A compiled template plus where it came from, so render errors can say where."""

    __slots__ = ("display", "origin", "template")

    def __init__(self, template: jinja2.Template, origin: Location, display: str):
        self.template = template
        self.origin = origin
        self.display = display

    def render(self, context: Mapping[str, Any]) -> str:
        """Render; any failure becomes a SpecError at the template line that failed."""
        token = _range_budget.set([MAX_RANGE_TOTAL])
        try:
            return self._bounded(context)
        except jinja2.TemplateError as exc:
            line = _template_line(exc.__traceback__, self.display)
            raise self._error(exc, line, context) from None
        except (TemplateLimit, TemplateFileRefused) as exc:
            line = _template_line(exc.__traceback__, self.display)
            raise SpecError(f"template error: {exc}", _shift(self.origin, line), exc.hint) from None
        except (TypeError, ValueError, ArithmeticError) as exc:
            line = _template_line(exc.__traceback__, self.display)
            raise self._error(exc, line, context) from None
        except MemoryError as exc:
            # The process survives it; report it like any other template mistake.
            line = _template_line(exc.__traceback__, self.display)
            raise SpecError(
                "template error: the template needs too much memory",
                _shift(self.origin, line),
                LIMIT_HINT,
            ) from None
        except RecursionError as exc:
            line = _template_line(exc.__traceback__, self.display)
            raise SpecError(
                "template error: the template recurses too deeply",
                _shift(self.origin, line),
                "a macro that calls itself needs a condition that stops it",
            ) from None
        finally:
            _range_budget.reset(token)

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

    def _error(self, exc: BaseException, line: int | None, context: Mapping[str, Any]) -> SpecError:
        message = str(exc) if not isinstance(exc, OverflowError) else "a number is too large"
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
        except TemplateFileRefused as exc:
            raise SpecError(str(exc), origin, exc.hint) from None
        except (MemoryError, RecursionError):
            raise _too_complex(Location(display, None, None)) from None
        filename = template.filename or display
        prompt = Prompt(template, Location(display, 0, None), filename)
        self._files[name] = prompt
        return prompt


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
