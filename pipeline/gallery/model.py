"""The page as plain values: collections of assets, each asset's cards, before any HTML.

One model feeds both pages (the static ``output/index.html`` and the review server's), so
they group, order and label the same way: per asset, the delivered (picked) image first,
then each variant with its renditions under it, an edit's inputs beside it, and, when
``assetpipe watch`` rendered the current spec with ``preview``, those previews after the
built images they would replace. Everything from the manifest stays text here; the
template escapes it.

Each card shows one status, so that a card never says two things at once (``up-to-date``
beside ``older spec``). The first that holds wins:

1. ``failed``, ``blocked``, ``skipped``, ``pending``: no file of this build, whatever else;
2. ``approved`` or ``approved (older spec)``: the card shows the image the lock pins (the
   delivered pick, or the picked variant while its image is still the pinned one), made
   from the current spec or an older one;
3. ``chosen by judge``: the quality gate's best variant, delivered where no person picked;
   ``previous pick``: the delivered pick, which the lock no longer pins (picked again or
   unpicked since the last build: the next build replaces it);
4. ``older spec``: built from a request the spec no longer asks for;
5. what the build did: ``generated``, ``cached``, ``up-to-date``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote

from pipeline.gallery.review import AssetReview, ReviewData, request_text
from pipeline.gallery.thumbs import thumbnail_of, thumbnails_in
from pipeline.gallery.verdicts import Verdict, check_detail, verdict_of
from pipeline.output import THUMB_DIR, ManifestEntry, OutputTree

NOT_DELIVERED: Final = frozenset({"failed", "blocked", "skipped", "pending"})
"""Statuses whose file, if one exists, is not this build's: a placeholder is shown instead."""
_API_KINDS: Final = frozenset({"generate", "edit"})
_DIGITS: Final = re.compile(r"(\d+)")
_UNMADE: Final = frozenset({"failed", "blocked"})
"""Statuses of a delivered file the next build may not make either: no promise of it."""


@dataclass(slots=True)
class Card:
    """What one card shows, from one manifest entry, as plain strings."""

    job: str
    status: str
    kind: str
    variant: int
    path: str
    size: str
    format: str
    prompt: str
    cost: str
    checks: list[dict[str, Any]] = field(default_factory=list)
    thumb: str = ""
    href: str = ""
    problem: str = ""
    ref: str = ""
    """``collection/asset#K`` for a variant a person can pick or reject."""
    sha256: str = ""
    picked: bool = False
    """The lock's pick is this variant and pins the image it shows now."""
    pick_differs: bool = False
    """The lock's pick is this variant, but pins an older image than the one it shows (the
    variant was made again since): approving this one takes another pick."""
    approved: bool = False
    """The card shows the very image the lock pins (the delivered pick or its variant)."""
    superseded: bool = False
    """The delivered pick, but the lock now pins another image, or none."""
    judged: bool = False
    """The image the quality gate delivers at the asset's path (its best variant after
    rerolls), where no person picked: the judge's choice, not an approval."""
    rejected: bool = False
    stale: bool = False
    """Built from an older spec: the spec now asks for another request."""
    failed_checks: bool = False
    credentials: str = ""
    """The "Content Credentials" line: the API's manifest, and who signed the file ("" when
    nothing is known of either)."""
    credentials_ok: bool = True
    inputs: list[tuple[str, str]] = field(default_factory=list)
    """An edit's input images: (label, thumbnail src or "" when not in the tree)."""
    renditions: list[Card] = field(default_factory=list)
    verdict: Verdict | None = None
    """What the quality gate's judge said of this image (None: not judged)."""
    fails_gate: bool = False
    """The image failed its ``expect`` (the judge's verdict or the exact-text check)."""

    @property
    def label(self) -> str:
        """The one status the card shows (the precedence is in the module's docstring)."""
        if self.status in NOT_DELIVERED:
            return self.status
        if self.approved:
            return "approved (older spec)" if self.stale else "approved"
        if self.judged:
            return "chosen by judge"
        if self.superseded:
            return "previous pick"
        if self.stale:
            return "older spec"
        return self.status

    @property
    def tone(self) -> str:
        """:attr:`label` as a CSS class name."""
        return self.label.replace(" (", "-").replace(")", "").replace(" ", "-")


@dataclass(slots=True)
class Group:
    """One asset: its cards (sources, renditions nested) and its review facts."""

    collection: str
    asset: str
    cards: list[Card] = field(default_factory=list)
    previews: list[Card] = field(default_factory=list)
    review: AssetReview | None = None
    pending_delivery: bool = False
    """The lock pins an image the asset's own file is not yet: a pick changes only
    ``assetpipe.lock``, and the next build writes the file."""

    @property
    def name(self) -> str:
        """``collection/asset``."""
        return f"{self.collection}/{self.asset}"

    @property
    def fails_gate(self) -> bool:
        """Whether the image delivered at the asset's own path fails its ``expect`` (a
        variant that lost to a passing reroll does not count: it is not what ships)."""
        delivered = next((c for c in self.cards if c.job == self.name), None)
        return delivered is not None and delivered.fails_gate

    @property
    def failed_checks(self) -> bool:
        """Whether any card (or rendition) of the asset failed a check or its job."""
        return any(
            c.failed_checks or c.status in NOT_DELIVERED
            for card in self.cards
            for c in (card, *card.renditions)
        )


@dataclass(slots=True)
class PageModel:
    """Everything the template shows."""

    collections: list[tuple[str, list[Group]]]
    entries: int
    thumbnails: int
    count: dict[str, int]
    total_cost: float
    tags: list[str]
    review: ReviewData | None
    used_thumbnails: set[str]


def page_model(
    tree: OutputTree,
    entries: Sequence[ManifestEntry],
    *,
    review: ReviewData | None = None,
    previews: tuple[OutputTree, Sequence[ManifestEntry]] | None = None,
    base: str = "",
    preview_base: str = "",
) -> PageModel:
    """The page of ``entries`` (files of ``tree``, thumbnailed when missing).

    ``base`` prefixes every file's URL (``""``: relative, for the static page beside the
    files; ``/files/``: the review server's route). ``previews`` are ``assetpipe watch``'s
    tree and entries, shown (served from ``preview_base``) where they differ from the
    built images.
    """
    used: set[str] = set()
    cards: list[tuple[tuple[Any, ...], Card]] = []
    thumbs: dict[str, tuple[str, str]] = {}
    """(job, thumbnail src) by the sha256 of a delivered file: an edit's inputs."""
    present = thumbnails_in(tree)
    for entry in entries:
        card = _card(entry, tree, base, used, present)
        if entry.sha256 and card.thumb:
            thumbs.setdefault(entry.sha256, (card.job, card.thumb))
        key = (
            entry.collection,
            entry.asset,
            entry.kind != "pick",
            entry.variant,
            entry.kind == "rendition",
            _natural(entry.path),
            entry.job,
        )
        cards.append((key, card))
    cards.sort(key=lambda item: item[0])
    ordered = [c for _, c in cards]

    groups: dict[tuple[str, str], Group] = {}
    sources: dict[str, Card] = {}
    raw = {e.job: e for e in entries}
    for (collection, asset, *_), card in cards:
        group = groups.setdefault((collection, asset), Group(collection, asset))
        parent = sources.get(card.job.split("@", 1)[0]) if card.kind == "rendition" else None
        if parent is not None:
            parent.renditions.append(card)
            continue
        group.cards.append(card)
        sources[card.job] = card
    if review is not None:
        for name, facts in review.assets.items():
            collection, _, asset = name.rpartition("/")
            groups.setdefault((collection, asset), Group(collection, asset)).review = facts
        for group in groups.values():
            _mark(group, raw, review, thumbs)
        if previews is not None:
            _add_previews(groups, previews, preview_base)

    count = dict.fromkeys(sorted(NOT_DELIVERED), 0)
    for card in ordered:
        count[card.status] = count.get(card.status, 0) + 1
    collections: dict[str, list[Group]] = {}
    for where in sorted(groups, key=lambda w: (_natural(w[0]), _natural(w[1]), w)):
        collections.setdefault(where[0], []).append(groups[where])
    tags = sorted({t for g in groups.values() if g.review for t in g.review.tags})
    return PageModel(
        collections=list(collections.items()),
        entries=len(ordered),
        thumbnails=sum(1 for c in ordered if c.thumb),
        count=count,
        total_cost=sum(e.cost_usd for e in entries),
        tags=tags,
        review=review,
        used_thumbnails=used,
    )


def _card(
    entry: ManifestEntry,
    tree: OutputTree,
    base: str,
    used: set[str],
    present: Set[str] | None = None,
) -> Card:
    """The card of one entry (validated on load; free-form values still show as text);
    ``present``: the tree's thumbnails, listed once for the page (:func:`thumbnails_in`)."""
    width, height = entry.width, entry.height
    error = entry.error
    message = error.get("message") if error is not None else None
    card = Card(
        job=entry.job,
        status=entry.status or "unknown",
        kind=entry.kind,
        variant=entry.variant,
        path=entry.path,
        size=f"{width}x{height}" if width and height else entry.requested_size,
        format=entry.format,
        prompt=entry.prompt,
        cost=f"${entry.cost_usd:.4f}",
        sha256=entry.sha256 or "",
        checks=[
            {
                "name": _text(c.get("name")),
                "ok": c.get("ok") is True,
                "detail": check_detail(c),
            }
            for c in entry.checks or ()
            if c.get("name") != "qa"  # shown as the card's verdict
        ],
        problem=_text(message),
        failed_checks=bool(entry.failed_checks()),
        verdict=verdict_of(entry),
        fails_gate=any(
            c.get("name") in ("qa", "text") and c.get("ok") is not True for c in entry.checks or ()
        ),
    )
    card.credentials, card.credentials_ok = credentials_line(entry.provenance)
    if card.status not in NOT_DELIVERED:
        name, card.problem = thumbnail_of(tree, entry, present)
        if name:
            used.add(name)
            card.thumb = f"{base}{THUMB_DIR}/{name}"
            card.href = base + quote(card.path)
    elif not card.problem:
        card.problem = f"{card.status}: no file delivered"
    return card


def _mark(
    group: Group,
    raw: Mapping[str, ManifestEntry],
    review: ReviewData,
    thumbs: Mapping[str, tuple[str, str]],
) -> None:
    """Picks, rejections, stale variants and edit inputs, from the review facts."""
    facts = group.review
    for card in group.cards:
        entry = raw.get(card.job)
        if entry is None:
            continue
        if entry.inputs and card.kind in _API_KINDS:
            _add_inputs(card, entry, review.inputs.get(card.job, ()), thumbs)
        if facts is None:
            continue
        if card.kind in _API_KINDS:
            _mark_variant(card, entry, facts, group.name)
        elif card.kind == "pick":
            card.approved = _shows_pin(card, facts)
            card.judged = not facts.pinned and facts.judged == card.variant
            card.superseded = not card.approved and not card.judged
            card.stale = card.approved and facts.changed
    if facts is not None:
        group.pending_delivery = _pending_delivery(group, facts)


def _add_inputs(
    card: Card,
    entry: ManifestEntry,
    labels: Sequence[str],
    thumbs: Mapping[str, tuple[str, str]],
) -> None:
    """An edit's input images beside it: thumbnails where the tree has them."""
    for i, sha in enumerate(entry.inputs):
        job, src = thumbs.get(sha, ("", ""))
        label = labels[i] if i < len(labels) else job or sha[:12]
        card.inputs.append((label, src))


def _mark_variant(card: Card, entry: ManifestEntry, facts: AssetReview, name: str) -> None:
    """A variant's review state. The lock pins an image by its sha256: a variant made
    again since its pick is not "picked", though the lock still names its number."""
    card.ref = f"{name}#{card.variant}"
    chosen = facts.picked == card.variant
    card.picked = chosen and _shows_pin(card, facts)
    card.pick_differs = chosen and not card.picked
    card.approved = card.picked
    card.rejected = card.variant in facts.rejected
    current = facts.requests.get(card.variant)
    card.stale = current is not None and current != request_text(entry.prompt, entry.params)


def _shows_pin(card: Card, facts: AssetReview) -> bool:
    """Whether the card's file is the image the lock pins."""
    return bool(facts.pinned) and card.sha256 == facts.pinned and card.status not in NOT_DELIVERED


def _pending_delivery(group: Group, facts: AssetReview) -> bool:
    """Whether the asset's own file (job ``collection/asset``: the delivered pick, or
    variant 1 before any pick) is not yet the pinned image, and the next build will
    write it (not when that file failed: the card says why instead)."""
    if not facts.pinned:
        return False
    delivered = next((c for c in group.cards if c.job == group.name), None)
    if delivered is None:
        return True
    return delivered.sha256 != facts.pinned and delivered.status not in _UNMADE


def _add_previews(
    groups: dict[tuple[str, str], Group],
    previews: tuple[OutputTree, Sequence[ManifestEntry]],
    base: str,
) -> None:
    """Each watch preview of the current spec whose variant has no current built image."""
    tree, entries = previews
    for entry in entries:
        group = groups.get((entry.collection, entry.asset))
        if group is None or group.review is None or entry.kind not in _API_KINDS:
            continue
        wanted = group.review.requests.get(entry.variant)
        if wanted is None or wanted != request_text(entry.prompt, entry.params):
            continue  # an older preview: watch has not caught up yet
        if any(
            c.variant == entry.variant and c.kind in _API_KINDS and not c.stale for c in group.cards
        ):
            continue  # the real image of this request is built: nothing to preview
        card = _card(entry, tree, base, set())
        card.stale = False
        group.previews.append(card)
    for group in groups.values():
        group.previews.sort(key=lambda c: c.variant)


def _natural(name: str) -> tuple[str | int, ...]:
    """``name`` ordered as a person counts: ``icon-2`` before ``icon-10``, ``64x64``
    before ``128x128``. Split on digit runs, text and numbers alternate, so two keys
    always compare text with text and numbers with numbers."""
    return tuple(int(part) if i % 2 else part for i, part in enumerate(_DIGITS.split(name)))


def credentials_line(provenance: Mapping[str, Any] | None) -> tuple[str, bool]:
    """What a card says of a file's Content Credentials, and whether all is well: the
    API's manifest (valid, invalid, not verified) and the delivered file (the API's own,
    signed by whom, or not signed). The manifest is untrusted: anything else is ignored."""
    if not isinstance(provenance, Mapping):
        return "", True
    original, signed = provenance.get("original"), provenance.get("signed")
    parts, ok = [], True
    if isinstance(original, Mapping):
        valid = original.get("valid")
        if valid is True:
            parts.append(f"original valid (signed by {_text(original.get('signer')) or '?'})")
        elif valid is False:
            parts.append("original does not validate")
            ok = False
        else:
            parts.append(_text(original.get("detail")) or "original not verified")
    if isinstance(signed, Mapping):
        if signed.get("valid") is True:
            parts.append(f"delivered file signed by {_text(signed.get('signer')) or '?'}")
        else:
            parts.append("delivered file's signature does not validate")
            ok = False
    elif parts and provenance.get("reencoded") is True:
        parts.append("delivered file not signed")
    elif parts:
        parts.append("delivered file is the API's own")
    return "; ".join(parts), ok


def _text(value: Any) -> str:
    """A manifest value as display text ("" for missing)."""
    return "" if value is None else str(value)
