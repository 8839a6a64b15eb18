"""A static contact sheet of the output tree: ``output/index.html``.

Reviewers look at a build's images in a browser, often straight from disk, so the page
works from ``file://`` with no server and no network: CSS and the few lines of JS are
inline, and a Content-Security-Policy forbids any other script or any remote load.
Everything from the manifest (prompts, errors, paths) is untrusted text and goes through
Jinja2 autoescaping; paths in links are also percent-quoted, so a path cannot become a
``javascript:`` URL.

Thumbnails (at most 256 px, WebP) live in ``output/.gallery/<sha256>.webp``, named by the
source file's content hash, so an unchanged file is never thumbnailed twice and a changed
one gets a new thumbnail; thumbnails no entry uses any more are removed.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import jinja2
from PIL import Image

from pipeline.fsutil import UnsafePathError
from pipeline.hashing import sha256_file
from pipeline.output import GALLERY_INDEX, THUMB_DIR, ManifestEntry, OutputTree
from pipeline.postprocess import DECODE_FORMATS

INDEX: Final = GALLERY_INDEX
THUMB_EDGE: Final = 256
THUMB_QUALITY: Final = 80
NOT_DELIVERED: Final = frozenset({"failed", "blocked", "skipped"})
"""Statuses whose file, if one exists, is not this build's: a placeholder is shown instead."""

LONG_PROMPT: Final = 160
_STATUS_CLASSES: Final = frozenset({"generated", "cached", "up-to-date", *NOT_DELIVERED})
_THUMB_NAME: Final = re.compile(r"[0-9a-f]{64}\.webp")

_SCRIPT: Final = """
window.addEventListener("load", function () {
  var loaded = 0, broken = 0, pending = 0;
  document.querySelectorAll("img").forEach(function (img) {
    if (!img.complete) { pending++; }
    else if (img.naturalWidth > 0) { loaded++; }
    else { broken++; img.closest(".card").classList.add("broken"); }
  });
  document.body.dataset.imagesLoaded = loaded;
  document.body.dataset.imagesBroken = broken;
  document.body.dataset.imagesPending = pending;
});
"""
_SCRIPT_HASH: Final = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()

_CSS: Final = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;background:#f6f6f4;color:#222}
h1{margin:0 0 .3rem}h2{margin:2rem 0 .5rem;border-bottom:2px solid #ccc}
h3{margin:0 0 .4rem;font-size:1rem;color:#555}.summary span{margin-right:1rem}
.assets{display:flex;flex-wrap:wrap;gap:1.2rem;align-items:flex-start}
.asset{display:flex;flex-wrap:wrap;gap:.8rem;align-items:flex-start}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.5rem;width:272px}
.card.broken{outline:3px solid #c0392b}
.thumb{display:flex;width:256px;height:256px;align-items:center;justify-content:center;
background:repeating-conic-gradient(#e8e8e8 0 25%,#fff 0 50%) 0 0/16px 16px}
.thumb img{max-width:256px;max-height:256px}
.placeholder{background:#fbeaea;color:#922;padding:.6rem;overflow:auto;
white-space:pre-wrap;word-break:break-word;font-size:12px}
.meta{margin:.3rem 0;font-size:12px;color:#555}.job{font-family:monospace;font-size:12px}
.status{font-weight:600;padding:0 .3rem;border-radius:3px;color:#fff;background:#777}
.s-generated{background:#2e8540}.s-cached{background:#2a6fb0}.s-up-to-date{background:#6c7a89}
.s-failed{background:#c0392b}.s-blocked{background:#d35400}.s-skipped{background:#999}
.prompt{white-space:pre-wrap;word-break:break-word;font-size:12px;margin:.3rem 0}
.checks{list-style:none;padding:0;margin:.3rem 0;font-size:12px}
.checks .ok{color:#2e8540}.checks .bad{color:#c0392b}
"""

_TEMPLATE: Final = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src 'self' file:; \
style-src 'unsafe-inline'; script-src 'sha256-{{ script_hash }}'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title><style>{{ css|safe }}</style>
<script>{{ script|safe }}</script></head>
<body data-entries="{{ cards|length }}" data-failed="{{ count.failed }}" \
data-blocked="{{ count.blocked }}" data-skipped="{{ count.skipped }}" \
data-thumbnails="{{ thumbnails }}" data-placeholders="{{ cards|length - thumbnails }}">
<h1>{{ title }}</h1>
<p class="summary"><span>{{ cards|length }} entries</span><span>{{ thumbnails }} images</span>
{%- for status, n in count|dictsort if n %}<span class="status s-{{ status|css }}">{{ status }}: \
{{ n }}</span>{% endfor %}<span>cost ${{ "%.4f"|format(total_cost) }}</span></p>
{%- for collection, assets in groups %}
<section class="collection" data-collection="{{ collection }}"><h2>{{ collection }}</h2>
<div class="assets">
{%- for asset, cards in assets %}
<div class="group" data-asset="{{ asset }}"><h3>{{ asset }}</h3><div class="asset">
{%- for c in cards %}
<article class="card" data-job="{{ c.job }}" data-status="{{ c.status }}">
{%- if c.thumb %}
<a class="thumb" href="{{ c.href }}"><img src="{{ c.thumb }}" alt="{{ c.path }}"></a>
{%- else %}
<div class="thumb placeholder">{{ c.problem }}</div>
{%- endif %}
<div class="job">{{ c.job }}</div>
<div class="meta"><span class="status s-{{ c.status|css }}">{{ c.status }}</span>
{{ c.kind }}{% if c.variant %} v{{ c.variant }}{% endif %} · {{ c.size }} {{ c.format }}
· {{ c.cost }}</div>
{%- if c.prompt|length > long_prompt %}
<details class="prompt"><summary>{{ c.prompt|truncate(120) }}</summary>{{ c.prompt }}</details>
{%- elif c.prompt %}
<p class="prompt">{{ c.prompt }}</p>
{%- endif %}
{%- if c.checks %}
<ul class="checks">{% for k in c.checks %}<li class="{{ 'ok' if k.ok else 'bad' }}">\
{{ '✓' if k.ok else '✗' }} {{ k.name }}: {{ k.detail }}</li>{% endfor %}</ul>
{%- endif %}
</article>
{%- endfor %}
</div></div>
{%- endfor %}
</div></section>
{%- endfor %}
</body></html>
"""


@dataclass(slots=True)
class _Card:
    """What one card shows, from one manifest entry, as plain strings."""

    job: str
    status: str
    kind: str
    variant: str
    path: str
    size: str
    format: str
    prompt: str
    cost: str
    checks: list[dict[str, Any]] = field(default_factory=list)
    thumb: str = ""
    href: str = ""
    problem: str = ""


def write_gallery(
    tree: OutputTree, entries: Sequence[ManifestEntry], *, title: str = "assetpipe"
) -> Path:
    """Write ``index.html`` in the tree for ``entries`` (manifest entries); returns its path.

    Cards are grouped by collection, then asset; an asset's variants and renditions sit
    side by side. Thumbnails are made only when missing, stale ones are removed, and the
    page is written atomically; the same entries always give the same bytes.
    """
    thumb_dir = tree.root / THUMB_DIR
    cards: list[tuple[tuple[str, str, int, bool, str], _Card]] = []
    used: set[str] = set()
    for entry in entries:
        card = _card(entry)
        if card.status not in NOT_DELIVERED:
            name, card.problem = _thumbnail(tree, entry)
            if name:
                used.add(name)
                card.thumb = f"{THUMB_DIR}/{name}"
                card.href = quote(card.path)
        elif not card.problem:
            card.problem = f"{card.status}: no file delivered"
        key = (
            entry.collection,
            entry.asset,
            entry.variant,
            card.kind == "rendition",
            card.path + "\0" + card.job,
        )
        cards.append((key, card))
    cards.sort(key=lambda item: item[0])

    groups: dict[str, dict[str, list[_Card]]] = {}
    for (collection, asset, *_), card in cards:
        groups.setdefault(collection, {}).setdefault(asset, []).append(card)
    count = dict.fromkeys(sorted(NOT_DELIVERED), 0)
    for _, card in cards:
        count[card.status] = count.get(card.status, 0) + 1
    total = sum(e.cost_usd for e in entries)

    html = (
        _environment()
        .from_string(_TEMPLATE)
        .render(
            title=title,
            css=_CSS,
            script=_SCRIPT,
            script_hash=_SCRIPT_HASH,
            cards=[card for _, card in cards],
            groups=[(c, list(assets.items())) for c, assets in groups.items()],
            count=count,
            thumbnails=sum(1 for _, card in cards if card.thumb),
            total_cost=total,
            long_prompt=LONG_PROMPT,
        )
    )
    index = tree.write(INDEX, html.encode("utf-8"), fsync=False)
    # Only now that no page refers to them: thumbnails of files no entry has any more.
    if thumb_dir.is_dir() and not thumb_dir.is_symlink():
        for stale in thumb_dir.iterdir():
            if _THUMB_NAME.fullmatch(stale.name) and stale.name not in used:
                stale.unlink(missing_ok=True)
    return index


def _environment() -> jinja2.Environment:
    """Autoescaping on, undefined names are errors, and a filter for safe class names."""
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["css"] = lambda status: status if status in _STATUS_CLASSES else "other"
    return env


def _card(entry: ManifestEntry) -> _Card:
    """The card for one entry (validated on load; free-form values still show as text)."""
    width, height = entry.width, entry.height
    error = entry.error
    message = error.get("message") if error is not None else None
    return _Card(
        job=entry.job,
        status=entry.status or "unknown",
        kind=entry.kind,
        variant=str(entry.variant),
        path=entry.path,
        size=f"{width}x{height}" if width and height else entry.requested_size,
        format=entry.format,
        prompt=entry.prompt,
        cost=f"${entry.cost_usd:.4f}",
        checks=[
            {
                "name": _text(c.get("name")),
                "ok": c.get("ok") is True,
                "detail": _text(c.get("detail")),
            }
            for c in entry.checks or ()
        ],
        problem=_text(message),
    )


def _thumbnail(tree: OutputTree, entry: ManifestEntry) -> tuple[str, str]:
    """``(thumbnail file name, "")`` for an entry's file, or ``("", why there is none)``."""
    rel = entry.path
    try:
        source = tree.path(rel)
        if not source.is_file():
            return "", f"file missing: {rel}"
        # The manifest's hash names the thumbnail only while the file is the one it
        # recorded (same check as a build's): otherwise hash the file as it is now.
        digest = entry.sha256 if tree.matches(entry) else None
        name = write_thumbnail(tree, digest or sha256_file(source), source)
    except UnsafePathError as exc:
        return "", str(exc)
    except Exception as exc:
        # Pillow reports a corrupt file through many exception types; the card says why.
        return "", f"cannot read {rel}: {exc}"
    return name, ""


def write_thumbnail(
    tree: OutputTree, sha256: str, source: Path | bytes | Image.Image, *, in_place: bool = False
) -> str:
    """Make the thumbnail of the file with this sha256 unless it exists; returns its name.

    Builds call this as each file lands (in worker threads, while other requests are in
    flight), so the gallery at the end of a build only writes its page. With ``in_place``
    a decoded image is shrunk instead of copied (the caller is done with it).
    """
    name = f"{sha256}.webp"
    if not tree.exists(f"{THUMB_DIR}/{name}"):
        if isinstance(source, Image.Image):
            thumbnail = _encode_thumbnail(source if in_place else source.copy())
        else:
            data = source if isinstance(source, bytes) else source.read_bytes()
            thumbnail = _render_thumbnail(data)
        tree.write(f"{THUMB_DIR}/{name}", thumbnail, fsync=False)
    return name


def _render_thumbnail(data: bytes) -> bytes:
    """A WebP at most :data:`THUMB_EDGE` px on its long side; transparency kept."""
    with Image.open(io.BytesIO(data), formats=DECODE_FORMATS) as image:
        return _encode_thumbnail(image)


def _encode_thumbnail(image: Image.Image) -> bytes:
    """Shrink ``image`` in place and encode it as the WebP thumbnail."""
    image.thumbnail((THUMB_EDGE, THUMB_EDGE), Image.Resampling.LANCZOS)
    bands = image.getbands()
    alpha = "A" in bands or "a" in bands or "transparency" in image.info
    small = image.convert("RGBA" if alpha else "RGB")
    buffer = io.BytesIO()
    small.save(buffer, format="WEBP", quality=THUMB_QUALITY, method=4)
    return buffer.getvalue()


def _text(value: Any) -> str:
    """A manifest value as display text ("" for missing)."""
    return "" if value is None else str(value)
