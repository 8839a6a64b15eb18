"""What the quality gate decided per asset: how many rerolls it spent, and which won.

A failing asset gets more variants (``qa.rerolls``), and the best-scoring one is
delivered at the asset's own path. That outcome must survive to the next build (which
plans the same variants and delivers the same winner, paying nothing), yet it is not a
person's decision, so it does not belong in ``assetpipe.lock``, which a team commits and
reviews. It is kept in ``.assetpipe/judged.json`` instead, one small record per asset:
``{rerolls, winner, score, sha256, cache_key, format}``.

When the gate is on, planning merges the records into the lock it reads
(:func:`with_judged`): the rerolls are added to the lock's reroll count, and a winner
other than variant 1 becomes a :class:`~pipeline.spec.lock.Pick` by ``"judge"``, unless a
person picked the asset, whose pick always wins. ``check --require-review`` and the
review page read ``assetpipe.lock`` itself, so a judge's pick never counts as approval.

The file lives under ``.assetpipe/`` and is untrusted like the rest: it is sealed with
this user's key (:mod:`pipeline.api.sealing`), read without following a link, bounded,
and validated field by field; anything wrong is no record (the asset is judged as if
never rerolled, which costs at most the rerolls again, never a wrong image: a winner is
delivered only when the plan's variant still has the recorded cache key).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pipeline.api.sealing import Sealer
from pipeline.fsutil import read_regular, write_atomic
from pipeline.hashing import sha256_bytes
from pipeline.jobs import EXTENSIONS, ApiJob, Plan
from pipeline.output import ManifestEntry
from pipeline.reads import note_read
from pipeline.spec.lock import MAX_REROLLS, Lock, LockEntry, Pick

log = logging.getLogger("assetpipe.qa")

JUDGED_FILE = "judged.json"
MAX_JUDGED_BYTES = 16 * 1000 * 1000
MAX_RECORDS = 100_000
JUDGE = "judge"
"""``Pick.by`` of a winner the judge chose (never written to ``assetpipe.lock``)."""
_PURPOSE = "judged assets"
_VERSION = 1
_ASSET = re.compile(r"[^\s/#@]+(?:/[^\s/#@]+)*/[a-z0-9][a-z0-9._-]*")
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class JudgedAsset:
    """One asset's rerolls and the variant that won them (its bytes and request)."""

    rerolls: int
    winner: int = 1
    score: float | None = None
    sha256: str = ""
    cache_key: str = ""
    format: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The record as stored."""
        return {
            "rerolls": self.rerolls,
            "winner": self.winner,
            "score": self.score,
            "sha256": self.sha256,
            "cache_key": self.cache_key,
            "format": self.format,
        }


def judged_path(cache_dir: Path) -> Path:
    """Where the records live."""
    return cache_dir / JUDGED_FILE


def read_judged(cache_dir: Path, sealer: Sealer) -> dict[str, JudgedAsset]:
    """The records, by ``collection/asset``; empty when there are none or they do not
    check out (with a warning when the file was not this user's). The read is noted for
    the stored plan (:mod:`pipeline.reads`), which is then made again when it changes."""
    path = judged_path(cache_dir)
    try:
        data = read_regular(path, MAX_JUDGED_BYTES)
    except OSError as exc:
        log.warning("ignoring %s (%s): no asset counts as rerolled", path, exc.strerror or exc)
        note_read(path, b"")
        return {}
    note_read(path, data)
    if data is None or not sealer.usable:
        return {}
    body = sealer.open(_PURPOSE, data)
    if body is None:
        _warn_once(path, data, "it was not written by this user's assetpipe")
        return {}
    try:
        return parse_judged(json.loads(body))
    except (ValueError, TypeError, RecursionError) as exc:
        _warn_once(path, data, str(exc))
        return {}


_WARNED: set[tuple[str, str]] = set()


def _warn_once(path: Path, data: bytes, why: str) -> None:
    """Say once per process that a file is ignored: a build reads it to plan and again to
    annotate the manifest, and one mistake is one warning."""
    seen = (str(path), sha256_bytes(data))
    if seen not in _WARNED:
        _WARNED.add(seen)
        log.warning("ignoring %s (%s): no asset counts as rerolled", path, why)


def write_judged(cache_dir: Path, records: Mapping[str, JudgedAsset], sealer: Sealer) -> bool:
    """Store the records atomically; False when they cannot be kept (no per-user key, an
    unwritable folder), and then no asset may be rerolled: the next build would not know
    the variants it paid for belong to the asset."""
    doc = {
        "version": _VERSION,
        "assets": {name: records[name].as_dict() for name in sorted(records)},
    }
    sealed = sealer.seal(_PURPOSE, json.dumps(doc, separators=(",", ":")).encode())
    if sealed is None:
        return False
    try:
        write_atomic(judged_path(cache_dir), sealed)
    except OSError as exc:
        log.warning("cannot record rerolls in %s: %s", judged_path(cache_dir), exc)
        return False
    return True


def parse_judged(doc: object) -> dict[str, JudgedAsset]:
    """The records of a parsed document; ValueError or TypeError when anything is off."""
    if not isinstance(doc, dict) or doc.get("version") != _VERSION:
        raise ValueError("not a judged-assets file of this assetpipe")
    assets = doc.get("assets")
    if not isinstance(assets, dict) or len(assets) > MAX_RECORDS:
        raise TypeError("'assets' is not a table of records")
    return {_name(name): _record(value) for name, value in assets.items()}


def with_judged(lock: Lock, records: Mapping[str, JudgedAsset], *, picks: bool = True) -> Lock:
    """``lock`` as planning reads it with the gate on: each record's rerolls added to the
    asset's, and its winner picked by the judge where no person picked (``picks=False``:
    rerolls only, as ``assetpipe watch`` plans)."""
    entries = dict(lock.entries)
    for name, record in records.items():
        entry = entries.get(name, LockEntry())
        pick = entry.pick
        if picks and pick is None and record.winner != 1 and record.sha256:
            pick = Pick(record.winner, record.cache_key, record.sha256, record.format, by=JUDGE)
        entries[name] = replace(entry, pick=pick, rerolls=entry.rerolls + record.rerolls)
    return Lock(entries)


def stale_records(plan: Plan, records: Mapping[str, JudgedAsset]) -> set[str]:
    """The records whose winner is not what the plan would make any more (the spec asks
    for another request, or has fewer variants): the judge chose among images of an older
    spec, so neither its rerolls nor its winner carry over."""
    keys: dict[tuple[str, int], str | None] = {}
    for job in plan.jobs:
        if isinstance(job, ApiJob):
            keys[(f"{job.collection}/{job.asset}", job.variant)] = job.cache_key
    stale = set()
    for name, record in records.items():
        if not record.cache_key:
            continue
        if keys.get((name, record.winner), "") != record.cache_key:
            stale.add(name)
    return stale


def _name(name: object) -> str:
    if not isinstance(name, str) or len(name) > 200 or not name.isprintable():
        raise ValueError("not a collection/asset name")
    if not _ASSET.fullmatch(name):
        raise ValueError("not a collection/asset name")
    return name


def _record(value: object) -> JudgedAsset:
    if not isinstance(value, dict) or set(value) != {
        "rerolls",
        "winner",
        "score",
        "sha256",
        "cache_key",
        "format",
    }:
        raise TypeError("a record has rerolls, winner, score, sha256, cache_key and format")
    rerolls, winner, score = value["rerolls"], value["winner"], value["score"]
    if not _whole(rerolls, 0, MAX_REROLLS) or not _whole(winner, 1, 64):
        raise ValueError("rerolls or winner is out of range")
    if score is not None and (
        isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 1
    ):
        raise ValueError("score is not from 0 to 1")
    sha, key, fmt = value["sha256"], value["cache_key"], value["format"]
    if sha == "" and key == "" and fmt == "":
        return JudgedAsset(rerolls, winner, score)
    if not (isinstance(sha, str) and _HEX64.fullmatch(sha)):
        raise ValueError("sha256 is not 64 hex digits")
    if not (isinstance(key, str) and _HEX64.fullmatch(key)):
        raise ValueError("cache_key is not 64 hex digits")
    if fmt not in EXTENSIONS:
        raise ValueError("format is not an image format")
    return JudgedAsset(rerolls, winner, score, sha, key, fmt)


def _whole(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


@dataclass(frozen=True, slots=True)
class VariantScore:
    """How one variant fared by the checks the manifest records for it."""

    variant: int
    passed: bool | None
    """True: every check the spec asks for passed; False: one failed; None: one is
    missing or could not run (an outage is no reason to pay for another image)."""
    score: float | None
    """The judge's score (None when the spec asks only for text)."""
    sha256: str = ""
    cache_key: str = ""
    format: str = ""

    def rank(self) -> tuple[bool, float, int]:
        """Sort key of the best variant: passing first, then the higher score, then the
        lower variant (a tie keeps the image made first)."""
        return (self.passed is True, -1.0 if self.score is None else self.score, -self.variant)


def variant_score(entry: ManifestEntry, shows: bool, text: bool) -> VariantScore:
    """What ``entry``'s ``qa`` and ``text`` checks say (``shows``/``text``: which of them
    the asset's ``expect`` asks for)."""
    checks = {c.get("name"): c for c in entry.checks or ()}
    outcomes: list[bool | None] = []
    score = None
    if shows:
        qa = checks.get("qa")
        verdict = qa.get("verdict") if qa is not None else None
        outcomes.append({"pass": True, "fail": False}.get(str(verdict)))
        raw = qa.get("score") if qa is not None else None
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            score = float(raw)
    if text:
        check = checks.get("text")
        ok = check.get("ok") if check is not None and not check.get("detail") else None
        outcomes.append(ok if isinstance(ok, bool) else None)
    passed: bool | None = True
    if False in outcomes:
        passed = False
    elif None in outcomes:
        passed = None
    return VariantScore(
        entry.variant, passed, score, entry.sha256 or "", entry.cache_key or "", entry.format
    )


def best_variant(scores: Iterable[VariantScore]) -> VariantScore | None:
    """The winner among an asset's variants (None when none was built)."""
    built = [s for s in scores if s.sha256]
    return max(built, key=VariantScore.rank) if built else None
