"""One card's HTML, written in Python rather than as a Jinja macro.

A page has a card per image, and a build writes its page after the last one, on its
clock. As a Jinja macro, each card cost a macro call and ~60 attribute look-ups through
the environment (two thirds of rendering a 400-image page), and the macro was nearly
half of what the page's template took to compile. This module prints exactly what the
macro printed (the same escaping, byte for byte) with plain string building.

Escaping stays the rule, not a choice made per value: every value printed goes through
:func:`markupsafe.escape`, the function Jinja's autoescaping calls, via ``_e``; only
literal markup and numbers are joined unescaped, and the result is :class:`Markup`, so
the page's template prints it as it is. Everything in a card is untrusted text from the
manifest (jobs, prompts, errors, check details, paths).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from markupsafe import Markup
from markupsafe import escape as _e

from pipeline.gallery.model import Card

_DIFFERS_TITLE: Final = (
    "assetpipe.lock pins the image this variant had when it was picked; pick it again to "
    "approve the one shown (assetpipe pick "
)
_STALE_TITLE: Final = "built from an older spec: the spec now asks for another request"

Truncate = Callable[[str, int], str]
"""Jinja's ``truncate`` filter as the page's environment applies it (same leeway)."""


def card_html(
    c: Card,
    preview: bool = False,
    *,
    live: bool,
    css: Callable[[str], str],
    truncate: Truncate,
) -> Markup:
    """The ``<article>`` of one card; ``preview``: a watch preview (never pickable)."""
    out: list[str] = []
    _head(out, c, preview, live)
    _meta(out, c, live, css)
    if live and c.pick_differs and c.thumb and not preview:
        out.append(
            '\n<div class="card-actions"><button type="button" class="pick repick" '
            f'data-ref="{_e(c.ref)}">pick this image</button></div>'
        )
    if c.renditions:
        out.append('\n<div class="renditions"><span>renditions</span>')
        out.extend(f" {_chip(rc, c)}" for rc in c.renditions)
        out.append("</div>")
    if c.inputs:
        out.append('\n<div class="inputs"><span>inputs</span>')
        for label, src in c.inputs:
            if src:
                out.append(f'<img src="{_e(src)}" alt="{_e(label)}" title="{_e(label)}">')
            else:
                out.append(f'<span class="chip">{_e(label)}</span>')
        out.append("</div>")
    _prompt(out, c.prompt, truncate)
    _verdict(out, c)
    if c.checks:
        out.append('\n<ul class="checks">')
        for k in c.checks:
            mark = 'ok">✓' if k["ok"] else 'bad">✗'
            out.append(f'<li class="{mark} {_e(k["name"])}: {_e(k["detail"])}</li>')
        out.append("</ul>")
    if c.credentials:
        state = "ok" if c.credentials_ok else "bad"
        out.append(f'\n<p class="credentials {state}">Content Credentials: {_e(c.credentials)}</p>')
    out.append("\n</article>")
    return Markup("".join(out))  # noqa: S704 - every value above went through _e


def _head(out: list[str], c: Card, preview: bool, live: bool) -> None:
    """The article's opening tag, its thumbnail (or why there is none) and its id line."""
    pickable = bool(c.ref) and not preview
    out += (
        '<article class="card',
        " rendition" if c.kind == "rendition" else "",
        " picked" if c.picked else "",
        " differs" if c.pick_differs else "",
        " rejected" if c.rejected else "",
        " stale" if c.stale else "",
        " preview" if preview else "",
        f'" data-job="{_e(c.job)}" data-status="{_e(c.status)}"',
    )
    if pickable:
        out.append(f' data-ref="{_e(c.ref)}" data-variant="{_e(c.variant)}"')
        if live:
            out.append(' tabindex="0"')
    out.append(">")
    if not c.thumb:
        out.append(f'\n<div class="thumb placeholder">{_e(c.problem)}</div>')
    elif live and pickable:
        out.append(
            f'\n<button type="button" class="thumb pick" data-ref="{_e(c.ref)}" '
            f'title="pick {_e(c.ref)}"><img src="{_e(c.thumb)}" alt="{_e(c.path)}"></button>'
        )
    else:
        out.append(
            f'\n<a class="thumb" href="{_e(c.href)}"><img src="{_e(c.thumb)}" '
            f'alt="{_e(c.path)}"></a>'
        )
    out.append(f'\n<div class="job" title="{_e(c.job)}">{_e(c.job)}')
    if c.pick_differs:
        out.append(
            f' <span class="badge differs" title="{_DIFFERS_TITLE}{_e(c.ref)})">'
            "picked image differs (older)</span>"
        )
    if c.rejected:
        out.append(' <span class="badge rejected">rejected</span>')
    if preview:
        out.append(' <span class="badge stale">preview</span>')
    out.append("</div>")


def _meta(out: list[str], c: Card, live: bool, css: Callable[[str], str]) -> None:
    """The status, kind, variant, size, format and cost line."""
    out.append(f'\n<div class="meta"><span class="status s-{_e(css(c.tone))}"')
    if c.stale:
        out.append(f' title="{_STALE_TITLE}"')
    out.append(f">{_e(c.label)}</span>\n{_e(c.kind)}")
    if c.variant:
        out.append(f" v{_e(c.variant)}")
    out.append(f" · {_e(c.size)} {_e(c.format)}\n· {_e(c.cost)}")
    if live and c.href:
        out.append(f' · <a href="{_e(c.href)}">full size</a>')
    out.append("</div>")


LONG_PROMPT: Final = 160
"""A prompt longer than this is folded: its first 120 characters, the rest on a click."""


def _prompt(out: list[str], prompt: str, truncate: Truncate) -> None:
    if len(prompt) > LONG_PROMPT:
        out.append(
            f'\n<details class="prompt"><summary>{_e(truncate(prompt, 120))}</summary>'
            f"{_e(prompt)}</details>"
        )
    elif prompt:
        out.append(f'\n<p class="prompt">{_e(prompt)}</p>')


def _verdict(out: list[str], c: Card) -> None:
    v = c.verdict
    if v is None:
        return
    out.append(f'\n<div class="verdict v-{_e(v.state)}" data-verdict="{_e(v.state)}"')
    if v.judge:
        out.append(f' title="judged by {_e(v.judge)}"')
    out.append(f'><span class="v-badge">{_e(v.state)}')
    if v.score:
        out.append(f" {_e(v.score)}")
    out.append("</span>")
    if v.winner:
        out.append(f' <span class="winner">{_e(v.winner)}</span>')
    if v.reasons:
        out.append('<ul class="reasons">')
        out.extend(f"<li>{_e(why)}</li>" for why in v.reasons)
        out.append("</ul>")
    out.append("</div>")


def _chip(rc: Card, parent: Card) -> str:
    """A rendition as a chip on its source's card: its size (and format when it differs),
    linking to the file, with why it failed (if it did) in its title."""
    label = rc.size + (f" {rc.format}" if rc.format != parent.format else "")
    why = [f"{_e(rc.job)}: {_e(rc.problem or rc.label)}"]
    why.extend(f"; ✗ {_e(k['name'])}: {_e(k['detail'])}" for k in rc.checks if not k["ok"])
    if rc.credentials:
        why.append(f"; Content Credentials: {_e(rc.credentials)}")
    common = f'data-job="{_e(rc.job)}" data-status="{_e(rc.status)}" title="{"".join(why)}"'
    if rc.href:
        bad = " bad" if rc.failed_checks else ""
        return f'<a class="chip rendition{bad}" href="{_e(rc.href)}" {common}>{_e(label)}</a>'
    return f'<span class="chip rendition bad" {common}>{_e(label)}</span>'
