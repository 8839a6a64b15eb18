"""``assetpipe batch list|status|cancel``: the open batches of a project.

Two journals say which batches a build left open: ``.assetpipe/batches/`` for images and
``.assetpipe/judge-batches/`` for the quality gate's verdicts (``build --batch --qa``);
the provider's Batch API says how far each has got. Both kinds are listed, each with what
it holds, so nobody is left wondering what a batch on the bill was. Nothing here writes to
the output tree or the cache: collecting stays the job of ``build --batch``, which also
removes a batch from its journal once its every line is kept.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.api.workspace import Request
from pipeline.errors import UsageError
from pipeline.jobs import ProviderFailure
from pipeline.jobs.batch import BatchBackend, BatchInfo
from pipeline.jobs.judge_batch import JudgeBatchBackend
from pipeline.providers.registry import ProviderOptions
from pipeline.runner import journal, judge_journal
from pipeline.runner.journal import Journal, JournalEntry
from pipeline.runner.judge_journal import JudgeEntry, JudgeJournal
from pipeline.settings import Settings, resolve_settings

JUDGE_ENDPOINT = "responses"
"""What a judge batch's lines call (shown where an image batch shows its endpoint)."""


@dataclass(frozen=True, slots=True)
class OpenBatch:
    """One journaled batch and what the API last said of it (None: it could not be asked)."""

    entry: JournalEntry | JudgeEntry
    info: BatchInfo | None
    problem: str | None = None

    @property
    def batch_id(self) -> str:
        """The API's id, or ``(not created)`` for a create that never answered."""
        return self.entry.batch_id or (self.info.id if self.info else "(not created)")

    @property
    def judging(self) -> bool:
        """Whether the batch holds the quality gate's verdicts rather than images."""
        return isinstance(self.entry, JudgeEntry)

    @property
    def endpoint(self) -> str:
        """What its lines call: an image endpoint, or ``responses`` for verdicts."""
        entry = self.entry
        return JUDGE_ENDPOINT if isinstance(entry, JudgeEntry) else entry.endpoint

    @property
    def holds(self) -> str:
        """``images`` or ``verdicts``: what collecting the batch keeps."""
        return "verdicts" if self.judging else "images"


def open_batches(req: Request, *, ask: bool = True) -> list[OpenBatch]:
    """Every batch the journals hold (images first, then verdicts), with its state at the
    API when ``ask``."""
    settings = resolve_settings(req.project, dict(req.flags or {}))
    images = Journal(settings.cache_dir).entries()
    verdicts = JudgeJournal(settings.cache_dir).entries()
    if not ask:
        both: list[JournalEntry | JudgeEntry] = [*images, *verdicts]
        return [OpenBatch(entry, None) for entry in both]
    found = asyncio.run(_ask(_backend(settings), images)) if images else []
    if verdicts:
        found += asyncio.run(_ask(_judge_backend(settings), verdicts))
    return found


def cancel_batches(req: Request, batch_ids: list[str]) -> list[OpenBatch]:
    """Ask the API to cancel the named open batches (all of them when none is named); the
    lines that already ran are kept by the next ``build --batch``, the rest are not sent
    again."""
    settings = resolve_settings(req.project, dict(req.flags or {}))
    entries: list[JournalEntry | JudgeEntry] = [
        *Journal(settings.cache_dir).entries(),
        *JudgeJournal(settings.cache_dir).entries(),
    ]
    known = {e.batch_id for e in entries if e.batch_id}
    unknown = [b for b in batch_ids if b not in known]
    if unknown:
        listed = ", ".join(sorted(known)) or "none"
        raise UsageError(f"no open batch {unknown[0]} in this project; open batches: {listed}")
    chosen = [e for e in entries if e.batch_id and (not batch_ids or e.batch_id in batch_ids)]
    # One Batch API holds both kinds: the image backend cancels a judge batch as well.
    return asyncio.run(_cancel(_backend(settings), chosen)) if chosen else []


def _backend(settings: Settings) -> BatchBackend:
    entry = settings.provider_entry
    if entry.batch is None:
        raise UsageError(f"the {entry.name} provider has no Batch API; use --provider openai")
    return entry.batch(ProviderOptions(timeout=settings.timeout))


def _judge_backend(settings: Settings) -> JudgeBatchBackend:
    """The Batch API the quality gate's batches went to (whatever provider draws)."""
    from pipeline.api.qa_batch import judge_batch_backend  # noqa: PLC0415 (loads the SDK)

    return judge_batch_backend(settings)


async def _ask(
    backend: BatchBackend | JudgeBatchBackend, entries: Sequence[JournalEntry | JudgeEntry]
) -> list[OpenBatch]:
    out = []
    try:
        for entry in entries:
            try:
                if entry.batch_id is not None:
                    info: BatchInfo | None = await backend.retrieve(entry.batch_id)
                else:
                    key = (
                        judge_journal.METADATA_KEY
                        if isinstance(entry, JudgeEntry)
                        else journal.METADATA_KEY
                    )
                    found = await backend.find_by_metadata(
                        key, entry.id, created_after=int(entry.created_at) - 300
                    )
                    info = found[0] if found else None
                out.append(OpenBatch(entry, info))
            except ProviderFailure as failure:
                out.append(OpenBatch(entry, None, failure.message))
    finally:
        await backend.aclose()
    return out


async def _cancel(
    backend: BatchBackend, entries: Sequence[JournalEntry | JudgeEntry]
) -> list[OpenBatch]:
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
