"""The judge batch journal: which verdicts were sent to the Batch API, written before sending.

A judge batch is paid line by line as it runs, hours after the build that created it may
have ended, so it is journaled exactly like an image batch (:mod:`pipeline.runner.journal`):
one file per batch, ``.assetpipe/judge-batches/<journal id>.json``, written atomically
before ``batches.create`` and carried in the batch's metadata, removed only once every
verdict of the batch is in the memo. Each line names the verdict's memo digest (what the
next build looks up) and the minimum score it is held to, which is all a later build needs
to keep a verdict it did not ask for.

Judge batches have a folder of their own, not ``.assetpipe/batches/``: the image batch
dispatcher collects every entry of its folder as image lines, and a judge line read as an
image would be a paid verdict thrown away. The folder is untrusted like the rest of
``.assetpipe/``: regular files of bounded size only, every field checked, a malformed file
skipped with a warning.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pipeline.fsutil import read_regular, refuse_link, write_atomic

log = logging.getLogger("assetpipe.batch")

FOLDER = "judge-batches"
METADATA_KEY = "assetpipe_judge_journal"
"""The batch metadata key that carries the journal id (not the image journal's key: a
lookup for one kind of batch never finds the other)."""
MAX_JOURNAL_BYTES = 16 * 1024 * 1024
_ID = re.compile(r"[0-9a-f]{32}")
_BATCH_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_CUSTOM_ID = re.compile(r"[A-Za-z0-9_.:=+-]{1,64}")
_DIGEST = re.compile(r"[0-9a-f]{64}")
_MODEL = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
_DETAILS = ("low", "high", "auto")


@dataclass(frozen=True, slots=True)
class JudgeLine:
    """One judged image of a batch: its custom_id, the memo digest of its verdict, the
    score it must reach, the file it judges (for messages) and the estimate reserved."""

    custom_id: str
    digest: str
    min_score: float
    path: str
    estimate: float = 0.0

    def as_json(self) -> dict[str, Any]:
        """The line as the journal file keeps it."""
        return {
            "custom_id": self.custom_id,
            "digest": self.digest,
            "min_score": self.min_score,
            "path": self.path,
            "estimate": self.estimate,
        }

    @classmethod
    def from_json(cls, raw: object) -> JudgeLine:
        """The line in ``raw``; ValueError, TypeError or KeyError when it is malformed."""
        if not isinstance(raw, dict):
            raise TypeError("a line is an object")
        min_score = _number(raw["min_score"])
        if not 0.0 <= min_score <= 1.0:
            raise ValueError("min_score is not from 0 to 1")
        path = raw["path"]
        if not isinstance(path, str) or not path.isprintable() or len(path) > 1024:
            raise ValueError("path is not a short printable text")
        return cls(
            custom_id=_text(raw["custom_id"], _CUSTOM_ID),
            digest=_text(raw["digest"], _DIGEST),
            min_score=min_score,
            path=path,
            estimate=_number(raw.get("estimate", 0.0)),
        )


@dataclass(frozen=True, slots=True)
class JudgeEntry:
    """One judge batch; ``batch_id`` is None until the create call answered."""

    id: str
    provider: str
    model: str
    detail: str
    created_at: float
    lines: tuple[JudgeLine, ...]
    batch_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The entry as its file keeps it."""
        return {
            "version": 1,
            "id": self.id,
            "provider": self.provider,
            "model": self.model,
            "detail": self.detail,
            "created_at": self.created_at,
            "batch_id": self.batch_id,
            "lines": [line.as_json() for line in self.lines],
        }

    @classmethod
    def from_json(cls, raw: object) -> JudgeEntry | None:
        """The entry in ``raw``, or None when any of it is malformed."""
        if not isinstance(raw, dict) or raw.get("version") != 1:
            return None
        try:
            lines = raw["lines"]
            if not isinstance(lines, list) or not lines or len(lines) > 50_000:
                return None
            batch_id = raw.get("batch_id")
            detail = raw["detail"]
            if detail not in _DETAILS:
                return None
            return cls(
                id=_text(raw["id"], _ID),
                provider=_text(raw["provider"], _MODEL),
                model=_text(raw["model"], _MODEL),
                detail=str(detail),
                created_at=_number(raw["created_at"]),
                lines=tuple(JudgeLine.from_json(line) for line in lines),
                batch_id=None if batch_id is None else _text(batch_id, _BATCH_ID),
            )
        except (KeyError, TypeError, ValueError, RecursionError):
            return None


class JudgeJournal:
    """The open judge batches of one project (``.assetpipe/judge-batches/``)."""

    def __init__(self, cache_dir: Path):
        self.folder = cache_dir / FOLDER

    def new_entry(
        self, provider: str, model: str, detail: str, lines: tuple[JudgeLine, ...]
    ) -> JudgeEntry:
        """An entry for a batch about to be created (not yet written)."""
        return JudgeEntry(uuid.uuid4().hex, provider, model, detail, time.time(), lines)

    def write(self, entry: JudgeEntry) -> None:
        """Write (or replace) ``entry``'s file atomically, synced to disk."""
        self.folder.mkdir(parents=True, exist_ok=True)
        refuse_link(self.folder, "the judge batch journal folder")
        data = json.dumps(entry.as_json(), ensure_ascii=False, sort_keys=True).encode()
        write_atomic(self.folder / f"{entry.id}.json", data)

    def recorded(self, entry: JudgeEntry, batch_id: str) -> JudgeEntry:
        """``entry`` with the batch the API created for it, written."""
        updated = replace(entry, batch_id=batch_id)
        self.write(updated)
        return updated

    def remove(self, entry_id: str) -> None:
        """Forget a batch whose every verdict is in the memo (or that was never created)."""
        if _ID.fullmatch(entry_id):
            (self.folder / f"{entry_id}.json").unlink(missing_ok=True)

    def entries(self) -> list[JudgeEntry]:
        """Every readable entry, oldest first; malformed files are skipped with a warning."""
        return sorted(self._read_all(), key=lambda e: (e.created_at, e.id))

    def pending_digests(self) -> dict[str, str]:
        """Verdict digest -> batch id (or ``"submitting"``) of every line of an open batch."""
        out: dict[str, str] = {}
        for entry in self.entries():
            for line in entry.lines:
                out.setdefault(line.digest, entry.batch_id or "submitting")
        return out

    def _read_all(self) -> Iterator[JudgeEntry]:
        try:
            if refuse_link(self.folder, "the judge batch journal folder") is None:
                return
            names = sorted(path.name for path in self.folder.iterdir())
        except FileNotFoundError:
            return
        except NotADirectoryError:
            log.warning("%s is not a folder; no judge batch can be recorded there", self.folder)
            return
        for name in names:
            if not (name.endswith(".json") and _ID.fullmatch(name[:-5])):
                continue
            entry = _read_entry(self.folder / name)
            if entry is None or entry.id != name[:-5]:
                log.warning(
                    "skipping the unreadable judge batch journal file %s", self.folder / name
                )
                continue
            yield entry


def _read_entry(path: Path) -> JudgeEntry | None:
    try:
        data = read_regular(path, MAX_JOURNAL_BYTES)
        return None if data is None else JudgeEntry.from_json(json.loads(data))
    except (OSError, ValueError, RecursionError):
        return None


def _text(value: object, pattern: re.Pattern[str]) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValueError("malformed field")
    return value


def _number(value: object) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError("not a number")
    return float(value)
