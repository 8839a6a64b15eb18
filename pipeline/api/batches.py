"""``assetpipe batch list|status|cancel``: the open batches of a project.

The journal (``.assetpipe/batches/``) says which batches a build left open; the provider's
Batch API says how far each has got. Nothing here writes to the output tree or the cache:
collecting stays the job of ``build --batch``, which also removes a batch from the journal
once its every line is in the cache.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from pipeline.api.workspace import Request
from pipeline.errors import UsageError
from pipeline.jobs import ProviderFailure
from pipeline.jobs.batch import BatchBackend, BatchInfo
from pipeline.providers.registry import ProviderOptions
from pipeline.runner.journal import METADATA_KEY, Journal, JournalEntry
from pipeline.settings import Settings, resolve_settings


@dataclass(frozen=True, slots=True)
class OpenBatch:
    """One journaled batch and what the API last said of it (None: it could not be asked)."""

    entry: JournalEntry
    info: BatchInfo | None
    problem: str | None = None

    @property
    def batch_id(self) -> str:
        """The API's id, or ``(not created)`` for a create that never answered."""
        return self.entry.batch_id or (self.info.id if self.info else "(not created)")


def open_batches(req: Request, *, ask: bool = True) -> list[OpenBatch]:
    """Every batch the journal holds, with its state at the API when ``ask``."""
    settings = resolve_settings(req.project, dict(req.flags or {}))
    entries = Journal(settings.cache_dir).entries()
    if not ask or not entries:
        return [OpenBatch(entry, None) for entry in entries]
    return asyncio.run(_ask(_backend(settings), entries))


def cancel_batches(req: Request, batch_ids: list[str]) -> list[OpenBatch]:
    """Ask the API to cancel the named open batches (all of them when none is named); the
    lines that already ran are kept by the next ``build --batch``, the rest are not sent
    again."""
    settings = resolve_settings(req.project, dict(req.flags or {}))
    entries = Journal(settings.cache_dir).entries()
    known = {e.batch_id for e in entries if e.batch_id}
    unknown = [b for b in batch_ids if b not in known]
    if unknown:
        listed = ", ".join(sorted(known)) or "none"
        raise UsageError(f"no open batch {unknown[0]} in this project; open batches: {listed}")
    chosen = [e for e in entries if e.batch_id and (not batch_ids or e.batch_id in batch_ids)]
    return asyncio.run(_cancel(_backend(settings), chosen))


def _backend(settings: Settings) -> BatchBackend:
    entry = settings.provider_entry
    if entry.batch is None:
        raise UsageError(f"the {entry.name} provider has no Batch API; use --provider openai")
    return entry.batch(ProviderOptions(timeout=settings.timeout))


async def _ask(backend: BatchBackend, entries: list[JournalEntry]) -> list[OpenBatch]:
    out = []
    try:
        for entry in entries:
            try:
                if entry.batch_id is not None:
                    info: BatchInfo | None = await backend.retrieve(entry.batch_id)
                else:
                    found = await backend.find_by_metadata(
                        METADATA_KEY, entry.id, created_after=int(entry.created_at) - 300
                    )
                    info = found[0] if found else None
                out.append(OpenBatch(entry, info))
            except ProviderFailure as failure:
                out.append(OpenBatch(entry, None, failure.message))
    finally:
        await backend.aclose()
    return out


async def _cancel(backend: BatchBackend, entries: list[JournalEntry]) -> list[OpenBatch]:
    out = []
    try:
        for entry in entries:
            if entry.batch_id is None:  # pragma: no cover - only created batches are chosen
                continue
            try:
                out.append(OpenBatch(entry, await backend.cancel(entry.batch_id)))
            except ProviderFailure as failure:
                out.append(OpenBatch(entry, None, failure.message))
    finally:
        await backend.aclose()
    return out
