"""Prompt templates: a sandboxed Jinja environment where nothing unset reaches a prompt.

Templates come from a project's ``templates/`` folder or inline from a spec. They render
in Jinja's sandbox (no attribute walks to ``__class__``), can only include other files
from ``templates/`` (not hidden ones, not through a link that leaves it), and fail loudly
on a misspelt variable instead of silently printing nothing. A value that is optional
(``brand.style``, ``asset.aspect``) is false when tested and an error only when printed
(:mod:`~pipeline.templating.unset`). Errors point at the template's own line, or at the
spec value an inline template came from; whatever a template raises while rendering is
such an error, never a traceback.

The sandbox stops escapes, not work. A spec may come from anyone who can open a pull
request, so :mod:`pipeline.templating.sandbox` also bounds time and memory (see
:mod:`pipeline.templating.limits`), and running out of memory or stack is a spec error,
not a crash.

This package's public API is what it exports here; the modules behind it:

- :mod:`~pipeline.templating.engine`: the engine that compiles and caches a project's
  templates, and the compiled :class:`Prompt` that renders one;
- :mod:`~pipeline.templating.loader`: reading template files, contained in ``templates/``;
- :mod:`~pipeline.templating.unset`: values a template may test for but not print;
- :mod:`~pipeline.templating.failures`: what a template raised, as a located spec error;
- :mod:`~pipeline.templating.sandbox`, :mod:`~pipeline.templating.filters`,
  :mod:`~pipeline.templating.operations`, :mod:`~pipeline.templating.meter` and
  :mod:`~pipeline.templating.limits`: the bounds on what a template may cost.
"""

from __future__ import annotations

from pipeline.templating.engine import Prompt, TemplateEngine, is_template, render_text
from pipeline.templating.limits import MAX_RENDERED_CHARS, TemplateLimit

__all__ = [
    "MAX_RENDERED_CHARS",
    "Prompt",
    "TemplateEngine",
    "TemplateLimit",
    "is_template",
    "render_text",
]
