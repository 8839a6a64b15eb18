"""The review page: one template for the static ``output/index.html`` and for the page
``assetpipe review`` serves.

Reviewers look at a build's images in a browser, often straight from disk, so the static
page works from ``file://`` with no server and no network: CSS and the script are inline,
and a Content-Security-Policy forbids any other script or any remote load. The served
page is the same markup with the interactive controls switched on (pick, reject, reroll)
and a per-session token the script sends with each POST; the script is one file for both,
allowed by its hash. Everything from specs and the manifest (prompts, errors, paths) is
untrusted text and goes through Jinja2 autoescaping (a card, printed by
:mod:`~pipeline.gallery.cards` for speed, through the same :func:`markupsafe.escape`);
paths in links are also percent-quoted, so a path cannot become a ``javascript:`` URL.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Final

import jinja2
from jinja2.filters import do_truncate

from pipeline.gallery.cards import card_html
from pipeline.gallery.model import NOT_DELIVERED, PageModel, page_model
from pipeline.gallery.review import ReviewData
from pipeline.gallery.thumbs import remove_stale_thumbnails
from pipeline.output import GALLERY_INDEX, ManifestEntry, OutputTree

INDEX: Final = GALLERY_INDEX
_STATUS_CLASSES: Final = frozenset(
    {
        "generated",
        "cached",
        "up-to-date",
        "approved",
        "approved-older-spec",
        "previous-pick",
        "older-spec",
        *NOT_DELIVERED,
    }
)
_FILES = resources.files("pipeline.gallery")
SCRIPT: Final = _FILES.joinpath("page.js").read_text("utf-8")
SCRIPT_HASH: Final = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
_CSS: Final = _FILES.joinpath("page.css").read_text("utf-8")
_TEMPLATE: Final = _FILES.joinpath("page.html").read_text("utf-8")

STATIC_CSP: Final = (
    f"default-src 'none'; img-src 'self' file:; style-src 'unsafe-inline'; "
    f"script-src 'sha256-{SCRIPT_HASH}'"
)
LIVE_CSP: Final = (
    f"default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
    f"script-src 'sha256-{SCRIPT_HASH}'; connect-src 'self'; base-uri 'none'; "
    "form-action 'none'"
)
"""The served page's policy; the server also sends it as a header, with
``frame-ancestors 'none'`` (which counts only there)."""


@dataclass(frozen=True, slots=True)
class Live:
    """What turns the page interactive: the review server's session token and state."""

    token: str
    version: str
    poll_ms: int = 1000


def render_page(model: PageModel, *, title: str, live: Live | None = None, error: str = "") -> str:
    """The page's HTML: read-only without ``live``, with the review controls with it."""
    review = model.review
    needs = sum(1 for a in review.assets.values() if a.problem) if review else 0

    def cost(usd: float) -> str:
        if review is not None and review.free:
            return f"free on {review.provider}"
        return f"est. ${usd:.4f}"

    template = _template()
    env = template.environment
    card = functools.partial(
        card_html,
        live=live is not None,
        css=env.filters["css"],
        truncate=lambda text, length: do_truncate(env, text, length),
    )
    return template.render(
        title=title,
        csp=LIVE_CSP if live else STATIC_CSP,
        css=_CSS,
        script=SCRIPT,
        live=live is not None,
        token=live.token if live else "",
        version=live.version if live else "",
        poll_ms=live.poll_ms if live else 0,
        m=model,
        needs_review=needs,
        cost=cost,
        card=card,
        error=error,
    )


def write_gallery(
    tree: OutputTree,
    entries: Sequence[ManifestEntry],
    *,
    title: str = "assetpipe",
    review: ReviewData | None = None,
) -> Path:
    """Write ``index.html`` in the tree for ``entries`` (manifest entries); returns its path.

    Cards are grouped by collection, then asset; an asset's variants sit side by side,
    each with its renditions under it. ``review`` (from the plan and ``assetpipe.lock``)
    marks picks, rejections and assets that need review, read-only. Thumbnails are made
    only when missing, stale ones are removed, and the page is written atomically; the
    same inputs always give the same bytes.
    """
    model = page_model(tree, entries, review=review)
    index = tree.write(INDEX, render_page(model, title=title).encode("utf-8"), fsync=False)
    # Only now that no page refers to them: thumbnails of files no entry has any more.
    remove_stale_thumbnails(tree, model.used_thumbnails)
    return index


_ENV: list[jinja2.Template] = []
_COMPILING = threading.Lock()


def _template() -> jinja2.Template:
    """The compiled template (autoescaping on, undefined names are errors), made once,
    by whichever thread asks first (a build compiles it while its requests are out:
    :func:`prepare_page`)."""
    with _COMPILING:
        if not _ENV:
            env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
            env.filters["css"] = _css_class
            _ENV.append(env.from_string(_TEMPLATE))
        return _ENV[0]


def _css_class(status: str) -> str:
    """A status as a class name the stylesheet knows (any other: ``other``)."""
    return status if status in _STATUS_CLASSES else "other"


def prepare_page() -> None:
    """Compile the page's template now (~25 ms) rather than when the page is written."""
    _template()
