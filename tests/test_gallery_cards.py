"""A card's HTML is printed by Python (pipeline.gallery.cards), not by the template's
autoescaping: every text a card shows must still come out escaped, in every place a
card can print it, on the static page and on the review server's."""

from __future__ import annotations

import dataclasses
import re

import pytest

from pipeline.gallery import Card, Group, Live, PageModel, render_page
from pipeline.gallery.verdicts import Verdict

EVIL = "\"'><script>alert(1)</script>&"
ESCAPED = "&#34;&#39;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&amp;"


def evil_card(**fields: object) -> Card:
    """A card whose every text field (and every text inside it) is hostile."""
    text = {f.name: EVIL for f in dataclasses.fields(Card) if f.type == "str"}
    card = Card(**{**text, "variant": 2})  # type: ignore[arg-type]
    card.checks = [
        {"name": EVIL, "ok": False, "detail": EVIL},
        {"name": EVIL, "ok": True, "detail": EVIL},
    ]
    card.inputs = [(EVIL, EVIL), (EVIL, "")]
    card.verdict = Verdict(EVIL, EVIL, (EVIL, EVIL), EVIL, EVIL)
    card.pick_differs = card.stale = card.rejected = card.failed_checks = True
    for name, value in fields.items():
        setattr(card, name, value)
    return card


def page_of(cards: list[Card], previews: list[Card], live: Live | None) -> str:
    group = Group("set", "asset", cards=cards, previews=previews)
    model = PageModel(
        collections=[("set", [group])],
        entries=len(cards),
        thumbnails=0,
        count=dict.fromkeys(("blocked", "failed", "pending", "skipped"), 0),
        total_cost=0.0,
        tags=[],
        review=None,
        used_thumbnails=set(),
    )
    return render_page(model, title="cards", live=live)


def cards_of(html: str) -> str:
    """The cards' markup only (the page's own script and header are not cards)."""
    return "".join(re.findall(r"<article.*?</article>", html, re.DOTALL))


@pytest.mark.parametrize("live", [None, Live(token="t", version="v")], ids=["static", "live"])
def test_every_text_a_card_prints_is_escaped(live: Live | None) -> None:
    rendition = evil_card(kind="rendition", format="other")
    unlinked = evil_card(kind="rendition", href="")
    long_prompt = evil_card(prompt=f"{EVIL} " * 30)  # folded at a space: whole values
    placeholder = evil_card(thumb="")
    card = evil_card(renditions=[rendition, unlinked])
    html = cards_of(page_of([card, long_prompt, placeholder], [evil_card()], live))

    assert html.count("<article") == 4
    assert "<script" not in html
    shown = html.replace(ESCAPED, "")
    assert "alert" not in shown and "&#34;" not in shown, "every value printed escaped, whole"
    assert html.count(ESCAPED) > 100  # each text of each card, chip, check, input, verdict
    for piece in ('<li class="bad">✗ ', '<li class="ok">✓ ', '<details class="prompt">'):
        assert piece in html
    assert ('data-ref="' + ESCAPED) in html
    if live:
        assert ('<button type="button" class="pick repick" data-ref="' + ESCAPED) in html
