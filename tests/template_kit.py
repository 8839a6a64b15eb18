"""Template engines with and without the direct renderer, to compare what each gives."""

from __future__ import annotations

from typing import Any

from pipeline.errors import Location, SpecError
from pipeline.templating import TemplateEngine

HERE = Location("specs/a.yaml", 3, 7)
"""Where the templates under test are written (their errors point there)."""


def engine(direct: bool) -> TemplateEngine:
    """A template engine; without ``direct``, every template renders through Jinja."""
    made = TemplateEngine(None)
    if not direct:
        original = made.inline

        def inline(source: str, origin: Location) -> Any:
            prompt = original(source, origin)
            prompt.direct = None
            return prompt

        made.inline = inline  # type: ignore[method-assign]
    return made


def outcome(made: TemplateEngine, source: str, ctx: dict[Any, Any]) -> tuple[str, str]:
    """``("text", rendered)`` or ``("error", the spec error as a user reads it)``."""
    try:
        return "text", made.inline(source, HERE).render(ctx)
    except SpecError as exc:
        return "error", exc.render()
