"""The quality gate's verdict on a card, as plain text for the page.

The manifest's ``qa`` check (score, pass or fail, reasons, and on a rerolled asset's
delivered image which variant won and why) becomes a :class:`Verdict` each card shows,
and an exact-text check that read other words says which. The manifest is untrusted: a
value of the wrong type shows as text or not at all, never breaks the page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.output import ManifestEntry


@dataclass(frozen=True, slots=True)
class Verdict:
    """The judge's verdict on one card, as text: ``state`` is ``pass``, ``fail`` or
    ``error`` (no verdict: the judge's outage or refusal, said in ``reasons``)."""

    state: str
    score: str = ""
    reasons: tuple[str, ...] = ()
    judge: str = ""
    winner: str = ""
    """Why this image is the one delivered, when rerolls made others ("" otherwise)."""


def verdict_of(entry: ManifestEntry) -> Verdict | None:
    """The card's verdict from the entry's ``qa`` check (untrusted: anything off shows as
    text or not at all)."""
    check = next((c for c in entry.checks or () if c.get("name") == "qa"), None)
    if check is None:
        return None
    state = check.get("verdict")
    state = state if state in ("pass", "fail") else "error"
    score = check.get("score")
    shown = _score(score) if score is not None else ""
    reasons = check.get("reasons")
    said = tuple(_text(r) for r in reasons[:5]) if isinstance(reasons, list) else ()
    if state == "error" and check.get("detail"):
        said = (_text(check.get("detail")),)
    winner = check.get("winner")
    table = check.get("variants")
    why = ""
    if isinstance(winner, Mapping) and isinstance(table, list):
        scores = ", ".join(
            f"v{_text(v.get('variant'))} {_score(v.get('score'))}"
            for v in table
            if isinstance(v, Mapping)
        )
        why = f"v{_text(winner.get('variant'))} won: {_text(winner.get('why'))} ({scores})"
    return Verdict(state, shown, said, _text(check.get("judge")), why)


def _score(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) and not isinstance(value, bool) else "?"


def check_detail(check: Mapping[str, Any]) -> str:
    """A check's detail line; an exact-text check that read something else says what."""
    detail = _text(check.get("detail"))
    if detail or check.get("name") != "text" or check.get("ok") is True:
        return detail
    return f"reads {_text(check.get('read'))!r}, not {_text(check.get('expected'))!r}"


def _text(value: Any) -> str:
    return "" if value is None else str(value)
