"""The page as plain values: collections of assets, each asset's cards, before any HTML.

One model feeds both pages (the static ``output/index.html`` and the review server's), so
they group, order and label the same way: per asset, the delivered (picked) image first,
then each variant with its renditions under it, an edit's inputs beside it, and, when
``assetpipe watch`` rendered the current spec with ``preview``, those previews after the
built images they would replace. Everything from the manifest stays text here; the
template escapes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote

from pipeline.gallery.review import AssetReview, ReviewData, request_text
from pipeline.gallery.thumbs import thumbnail_of
from pipeline.output import THUMB_DIR, ManifestEntry, OutputTree

NOT_DELIVERED: Final = frozenset({"failed", "blocked", "skipped", "pending"})
"""Statuses whose file, if one exists, is not this build's: a placeholder is shown instead."""
_API_KINDS: Final = frozenset({"generate", "edit"})


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
    picked: bool = False
    rejected: bool = False
    stale: bool = False
    """Built from an older spec: the spec now asks for another request."""
    failed_checks: bool = False
    inputs: list[tuple[str, str]] = field(default_factory=list)
    """An edit's input images: (label, thumbnail src or "" when not in the tree)."""
    renditions: list[Card] = field(default_factory=list)


@dataclass(slots=True)
class Group:
    """One asset: its cards (sources, renditions nested) and its review facts."""

    collection: str
    asset: str
    cards: list[Card] = field(default_factory=list)
    previews: list[Card] = field(default_factory=list)
    review: AssetReview | None = None

    @property
    def name(self) -> str:
        """``collection/asset``."""
        return f"{self.collection}/{self.asset}"

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
    for entry in entries:
        card = _card(entry, tree, base, used)
        if entry.sha256 and card.thumb:
            thumbs.setdefault(entry.sha256, (card.job, card.thumb))
        key = (
            entry.collection,
            entry.asset,
            entry.kind != "pick",
            entry.variant,
            entry.kind == "rendition",
            entry.path + "\0" + entry.job,
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
    for where in sorted(groups):
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


def _card(entry: ManifestEntry, tree: OutputTree, base: str, used: set[str]) -> Card:
    """The card of one entry (validated on load; free-form values still show as text)."""
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
        checks=[
            {
                "name": _text(c.get("name")),
                "ok": c.get("ok") is True,
                "detail": _text(c.get("detail")),
            }
            for c in entry.checks or ()
        ],
        problem=_text(message),
        failed_checks=bool(entry.failed_checks()),
    )
    if card.status not in NOT_DELIVERED:
        name, card.problem = thumbnail_of(tree, entry)
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
            labels = review.inputs.get(card.job, ())
            for i, sha in enumerate(entry.inputs):
                job, src = thumbs.get(sha, ("", ""))
                label = labels[i] if i < len(labels) else job or sha[:12]
                card.inputs.append((label, src))
        if facts is None or card.kind not in _API_KINDS:
            continue
        card.ref = f"{group.name}#{card.variant}"
        card.picked = facts.picked == card.variant
        card.rejected = card.variant in facts.rejected
        current = facts.requests.get(card.variant)
        card.stale = current is not None and current != request_text(entry.prompt, entry.params)


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


def _text(value: Any) -> str:
    """A manifest value as display text ("" for missing)."""
    return "" if value is None else str(value)
