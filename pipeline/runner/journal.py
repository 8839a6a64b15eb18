"""The batch journal: what was sent to the Batch API, written before it is sent.

A batch is paid for line by line as it runs, hours after it was created, so the process
that created it may be long gone when its results arrive. Each batch gets one journal file,
``.assetpipe/batches/<journal id>.json``, written atomically *before* ``batches.create``
and carried in the batch's ``metadata``: whatever kills the build (even between the create
call and recording its answer) the next ``build --batch`` finds the batch, through the
journal or by listing batches by that metadata, and collects it instead of paying again.
A file is removed only once every line of its batch is in the cache.

The folder is untrusted input like the rest of ``.assetpipe/``: files are read only when
they are regular files (no links) of bounded size, and every field is checked; a malformed
file is skipped with a warning (its lines may then be paid again, never lost silently).
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pipeline.fsutil import read_regular, refuse_link, write_atomic
from pipeline.hashing import CacheRequest

log = logging.getLogger("assetpipe.batch")

FOLDER = "batches"
METADATA_KEY = "assetpipe_journal"
"""The batch metadata key that carries the journal id."""
MAX_JOURNAL_BYTES = 64 * 1024 * 1024
_ID = re.compile(r"[0-9a-f]{32}")
_BATCH_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_CUSTOM_ID = re.compile(r"[A-Za-z0-9_.:=+-]{1,64}")


@dataclass(frozen=True, slots=True)
class JournalLine:
    """One request of a batch: what it asked for (its cache key is computed from that,
    never read from the file) and how to deliver its image (enough to keep a paid result
    even if no job of the current plan asks for it)."""

    custom_id: str
    request: CacheRequest
    job: str
    model: str
    size: tuple[int, int]
    requested: tuple[int, int]
    format: str
    compression: int | None = None
    estimate: float = 0.0

    @property
    def key(self) -> str:
        """The cache key of the line's request."""
        return self.request.key

    def as_json(self) -> dict[str, Any]:
        """The line as the journal file keeps it."""
        return {
            "custom_id": self.custom_id,
            "request": dict(self.request.payload),
            "job": self.job,
            "model": self.model,
            "size": list(self.size),
            "requested": list(self.requested),
            "format": self.format,
            "compression": self.compression,
            "estimate": self.estimate,
        }

    @classmethod
    def from_json(cls, raw: object) -> JournalLine | None:
        """The line in ``raw``, or None when any field is malformed."""
        if not isinstance(raw, dict):
            return None
        try:
            line = cls(
                custom_id=_text(raw["custom_id"], _CUSTOM_ID),
                request=_request(raw["request"]),
                job=_plain(raw["job"]),
                model=_plain(raw["model"]),
                size=_pair(raw["size"]),
                requested=_pair(raw["requested"]),
                format=_plain(raw["format"]),
                compression=_optional_int(raw.get("compression")),
                estimate=_number(raw.get("estimate", 0.0)),
            )
        except (KeyError, TypeError, ValueError, RecursionError):
            return None
        return line


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One batch as the journal knows it; ``batch_id`` is None until the create call
    answered (and stays None in the file if the process died first)."""

    id: str
    provider: str
    endpoint: str
    created_at: float
    lines: tuple[JournalLine, ...]
    batch_id: str | None = None
    input_file_id: str | None = None
    keys: frozenset[str] = field(default=frozenset(), compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "keys", frozenset(line.key for line in self.lines))

    def as_json(self) -> dict[str, Any]:
        """The entry as its file keeps it."""
        return {
            "version": 1,
            "id": self.id,
            "provider": self.provider,
            "endpoint": self.endpoint,
            "created_at": self.created_at,
            "batch_id": self.batch_id,
            "input_file_id": self.input_file_id,
            "lines": [line.as_json() for line in self.lines],
        }

    @classmethod
    def from_json(cls, raw: object) -> JournalEntry | None:
        """The entry in ``raw``, or None when it is malformed."""
        if not isinstance(raw, dict) or raw.get("version") != 1:
            return None
        lines = raw.get("lines")
        if not isinstance(lines, list):
            return None
        parsed = [JournalLine.from_json(line) for line in lines]
        if any(line is None for line in parsed):
            return None
        try:
            batch_id = raw.get("batch_id")
            input_file_id = raw.get("input_file_id")
            return cls(
                id=_text(raw["id"], _ID),
                provider=_plain(raw["provider"]),
                endpoint=_plain(raw["endpoint"]),
                created_at=_number(raw["created_at"]),
                lines=tuple(line for line in parsed if line is not None),
                batch_id=None if batch_id is None else _text(batch_id, _BATCH_ID),
                input_file_id=None if input_file_id is None else _text(input_file_id, _BATCH_ID),
            )
        except (KeyError, TypeError, ValueError):
            return None


class Journal:
    """The open batches of one project (``.assetpipe/batches/``)."""

    def __init__(self, cache_dir: Path):
        self.folder = cache_dir / FOLDER

    def new_entry(
        self, provider: str, endpoint: str, lines: tuple[JournalLine, ...]
    ) -> JournalEntry:
        """An entry for a batch about to be created (not yet written)."""
        return JournalEntry(
            id=uuid.uuid4().hex,
            provider=provider,
            endpoint=endpoint,
            created_at=time.time(),
            lines=lines,
        )

    def write(self, entry: JournalEntry) -> None:
        """Write (or replace) ``entry``'s file atomically, synced to disk."""
        self.folder.mkdir(parents=True, exist_ok=True)
        refuse_link(self.folder, "the batch journal folder")
        data = json.dumps(entry.as_json(), ensure_ascii=False, sort_keys=True).encode()
        write_atomic(self._path(entry.id), data)

    def recorded(
        self, entry: JournalEntry, batch_id: str, input_file_id: str | None
    ) -> JournalEntry:
        """``entry`` with the batch the API created for it, written."""
        updated = replace(entry, batch_id=batch_id, input_file_id=input_file_id)
        self.write(updated)
        return updated

    def remove(self, entry_id: str) -> None:
        """Forget a batch whose every line is in the cache (or was never created)."""
        if _ID.fullmatch(entry_id):
            self._path(entry_id).unlink(missing_ok=True)

    def entries(self) -> list[JournalEntry]:
        """Every readable entry, oldest first; malformed files are skipped with a warning."""
        return sorted(self._read_all(), key=lambda e: (e.created_at, e.id))

    def pending_keys(self) -> dict[str, str]:
        """Cache key -> batch id (or ``"submitting"``) of every line of an open batch."""
        out: dict[str, str] = {}
        for entry in self.entries():
            for key in entry.keys:
                out.setdefault(key, entry.batch_id or "submitting")
        return out

    def _path(self, entry_id: str) -> Path:
        return self.folder / f"{entry_id}.json"

    def _read_all(self) -> Iterator[JournalEntry]:
        try:
            if refuse_link(self.folder, "the batch journal folder") is None:
                return
            names = sorted(path.name for path in self.folder.iterdir())
        except FileNotFoundError:
            return
        except NotADirectoryError:
            log.warning("%s is not a folder; no open batch can be recorded there", self.folder)
            return
        for name in names:
            if not (name.endswith(".json") and _ID.fullmatch(name[:-5])):
                continue
            raw = _read_regular(self.folder / name)
            entry = JournalEntry.from_json(raw) if raw is not None else None
            if entry is None or entry.id != name[:-5]:
                log.warning("skipping the unreadable batch journal file %s", self.folder / name)
                continue
            yield entry


def _read_regular(path: Path) -> object:
    """The JSON in ``path`` when it is a regular file (not a link) of bounded size."""
    try:
        data = read_regular(path, MAX_JOURNAL_BYTES)
        return None if data is None else json.loads(data)
    except (OSError, ValueError, RecursionError):
        return None


def _request(value: object) -> CacheRequest:
    """A line's request: a JSON object, whose key is computed here."""
    if not isinstance(value, dict):
        raise TypeError("a request is an object")
    return CacheRequest(value)


def _text(value: object, pattern: re.Pattern[str]) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValueError(value)
    return value


def _plain(value: object) -> str:
    if not isinstance(value, str) or not value.isprintable() or len(value) > 512:
        raise ValueError(value)
    return value


def _pair(value: object) -> tuple[int, int]:
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 65536 for v in value)
    ):
        raise ValueError(value)
    return (value[0], value[1])


def _optional_int(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(value)
    return value


def _number(value: object) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(value)
    return float(value)
