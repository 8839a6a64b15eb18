"""Compiling a project's templates once, and rendering them within their bounds.

One :class:`TemplateEngine` serves one load (a validate, plan or build): it compiles
each inline template and each file of ``templates/`` once, and every render it hands out
shares the load's rendering time. A :class:`Prompt` is one compiled template plus where
it came from, so that whatever its render raises can be reported at the right line.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Mapping
from pathlib import Path
from typing import Any

import jinja2

from pipeline.colors import color_name, nearest_color, rgb_text
from pipeline.errors import Location, SpecError, did_you_mean
from pipeline.templating.direct import DirectTemplate, direct_template
from pipeline.templating.failures import (
    SYNTAX_HINT,
    describe,
    render_failure,
    shift,
    syntax_error,
    syntax_hint,
    too_complex,
)
from pipeline.templating.limits import MAX_RENDER_SECONDS, MAX_RENDERED_CHARS, TemplateLimit
from pipeline.templating.loader import ContainedLoader, TemplateFileRefused
from pipeline.templating.meter import Meter, RenderClock, end_render, start_render
from pipeline.templating.sandbox import Sandbox
from pipeline.templating.unset import Unset

INLINE = "<inline>"
TEMPLATE_MARKERS = ("{{", "{%", "{#")


def is_template(text: str) -> bool:
    """Whether a string has any Jinja syntax; plain strings skip rendering entirely."""
    return "{" in text and any(marker in text for marker in TEMPLATE_MARKERS)


def palette(value: Any) -> str:
    """A brand's colors (or a name->hex mapping) as prose: ``primary #E4572E (orange red),
    ...``. The hex is there already, so a far name goes without ``color_name``'s hex."""
    colors = value.get("colors", value) if isinstance(value, Mapping) else value
    if not isinstance(colors, Mapping):
        raise TypeError("palette expects a brand or a mapping of color names to hex values")
    return ", ".join(f"{name} {hx} ({nearest_color(hx)[0]})" for name, hx in colors.items())


class Prompt:
    """A compiled template plus where it came from, so render errors can say where.

    ``used_at`` is the spec value that named a template file: an error at a line of the
    file also says which asset, of which spec, was rendering it (one file serves many
    assets, and only some of them may leave a value unset)."""

    __slots__ = ("direct", "display", "origin", "render_clock", "template", "used_at")

    def __init__(
        self,
        template: jinja2.Template,
        origin: Location,
        display: str,
        render_clock: RenderClock,
        used_at: Location | None = None,
        direct: DirectTemplate | None = None,
    ):
        self.template = template
        self.origin = origin
        self.display = display
        self.render_clock = render_clock
        self.used_at = used_at
        self.direct = direct
        """The same template rendered without a Jinja context, when it only prints values
        (:mod:`~pipeline.templating.direct`); it hands back to Jinja whenever unsure."""

    def used_by(self, used_at: Location) -> Prompt:
        """This compiled template, rendered for the spec value at ``used_at``."""
        return Prompt(
            self.template, self.origin, self.display, self.render_clock, used_at, self.direct
        )

    def render(self, context: Mapping[str, Any]) -> str:
        """Render; any failure becomes a SpecError at the template line that failed."""
        if self.direct is not None:
            text = self._direct(context)
            if text is not None:
                return text
        meter = Meter(self.render_clock)
        token = start_render(meter)
        started = self.render_clock.clock()
        try:
            meter.check_time()  # once the load's rendering time is spent, nothing renders
            return self._bounded(context)
        except Exception as exc:  # whatever a template raises is the spec's error
            raise render_failure(exc, context, self.origin, self.display, self.used_at) from None
        finally:
            end_render(token)
            self.render_clock.seconds_left -= self.render_clock.clock() - started

    def _direct(self, context: Mapping[str, Any]) -> str | None:
        """The text of a template that only prints values, rendered without Jinja's
        context and within the same bounds (:mod:`~pipeline.templating.direct`) and the
        load's clock; None when it is not sure (then Jinja renders afresh, with a meter
        of its own, and gives the same text or its own error)."""
        direct = self.direct
        clock = self.render_clock
        if direct is None or clock.seconds_left <= 0:
            return None  # the load's rendering time is spent: Jinja's path says so
        started = clock.clock()
        text = direct.render(context)
        clock.seconds_left -= clock.clock() - started
        return text if isinstance(text, str) else None

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
            undefined=Unset,
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
                message, line = syntax_error(exc, source, self.env)
                raise SpecError(message, shift(origin, line), syntax_hint(exc, self.env)) from None
            except (MemoryError, RecursionError):
                raise too_complex(origin) from None
            except Exception as exc:  # a number literal of 5,000 digits, say
                raise SpecError(
                    f"template syntax error: {describe(exc)}", origin, SYNTAX_HINT
                ) from None
            direct = direct_template(self.env, source)
            prompt = Prompt(template, origin, display, self.render_clock, direct=direct)
            self._inline[key] = prompt
        return prompt

    def _source(self, name: str | None) -> str | None:
        """The text of a template file, to locate a syntax error in it (None: unknown)."""
        if name is None or self.env.loader is None:
            return None
        try:
            return self.env.loader.get_source(self.env, name)[0]
        except Exception:  # a refused or vanished file: report the error as Jinja gave it
            return None

    def file(self, name: str, origin: Location) -> Prompt:
        """Load ``templates/<name>``; ``origin`` is the spec value that named it."""
        prompt = self._files.get(name)
        if prompt is not None:
            return prompt.used_by(origin)
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
            message, line = syntax_error(exc, exc.source or self._source(exc.name), self.env)
            where = Location(f"{self.display_dir}/{exc.name or name}", line, None)
            raise SpecError(message, where, syntax_hint(exc, self.env)) from None
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
            raise too_complex(Location(display, None, None)) from None
        except Exception as exc:  # a number literal of 5,000 digits, say
            raise SpecError(
                f"template syntax error: {describe(exc)}", Location(display), SYNTAX_HINT
            ) from None
        filename = template.filename or display
        prompt = Prompt(template, Location(display, 0, None), filename, self.render_clock)
        self._files[name] = prompt
        return prompt.used_by(origin)


def _listed(names: list[str], most: int = 20) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most:,} more" if len(names) > most else "")


def render_text(engine: TemplateEngine, text: str, origin: Location, ctx: Mapping[str, Any]) -> str:
    """Render one spec string as a template if it has Jinja syntax, else return it as is."""
    if not is_template(text):
        return text
    return engine.inline(text, origin).render(ctx)
