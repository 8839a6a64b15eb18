"""Judge calls through the Batch API: one batch per build's judging wave, at the discount.

Under ``build --batch`` the quality gate hands every image it must judge to
:meth:`JudgeBatcher.run` at once, after the images are delivered (a verdict needs the
image, so judge lines can never share a batch with the image lines that make it; and a
batch holds one endpoint anyway). The batcher first collects what earlier builds left
open (their verdicts are kept even when no image of this build asks for them: they were
paid for), then sends the rest as one wave: each line's discounted estimate reserved on
the build's budget (a line that would pass ``--max-cost`` is not sent), the wave journaled
(:mod:`pipeline.runner.judge_journal`) before the batch is created, polled with backoff,
and its output read as a stream. Each verdict is handed to ``keep`` (the memo) before the
journal entry goes, so a build killed at any point loses no paid verdict and pays for none
twice: the next ``build --batch`` collects the batch instead of sending the lines again.

A line the Batch API refuses or fails is a failed check for that image only (a warning
upstream), never retried in the same build: the next build judges it again. With
``--no-wait``, or when a batch's results cannot be read yet, its verdicts are *pending*.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from pipeline.errors import printable
from pipeline.jobs import ProviderFailure
from pipeline.jobs.batch import BatchInfo, BatchNotFound
from pipeline.jobs.judge_batch import JudgeBatchBackend
from pipeline.jobs.judging import Detail, JudgeModel, JudgeRequest, Verdict
from pipeline.runner.budget import Budget, Reservation
from pipeline.runner.judge_journal import METADATA_KEY, JudgeEntry, JudgeJournal, JudgeLine
from pipeline.runner.judging import Judged
from pipeline.runner.polling import until_done

KeepVerdict = Callable[[str, Verdict, str, float, str], None]
"""``keep(digest, verdict, judge model, cost, batch id)``: store a paid verdict."""


@dataclass(frozen=True, slots=True)
class JudgeAsk:
    """One image to judge: its verdict's memo digest, the request, its file (for notes)."""

    digest: str
    request: JudgeRequest
    path: str


@dataclass(frozen=True, slots=True)
class JudgeBatchOptions:
    """How judge batches are watched (the image batches' settings)."""

    wait: bool = True
    max_lines: int = 1000
    poll_s: float = 5.0
    max_poll_s: float = 60.0


class JudgeBatcher:
    """Sends a build's judging wave as batches and collects earlier builds' judge batches."""

    def __init__(
        self,
        backend: JudgeBatchBackend,
        journal: JudgeJournal,
        prices: Callable[[str], JudgeModel | None],
        budget: Budget,
        *,
        factor: float,
        options: JudgeBatchOptions,
        keep: KeepVerdict,
        note: Callable[[str], None],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        self.backend = backend
        self.journal = journal
        self.prices = prices
        self.budget = budget
        self.factor = factor
        self.options = options
        self.keep = keep
        self.note = note
        self.sleep = sleep
        self.cost = 0.0
        """USD of the verdicts collected by this build (earlier builds' batches included)."""
        self.lines_sent = 0
        self.batches_created = 0

    async def run(self, asks: Sequence[JudgeAsk]) -> dict[str, Judged]:
        """A :class:`Judged` per asked digest (``pending`` set when it waits in a batch)."""
        done: dict[str, Judged] = {}
        for entry in await asyncio.to_thread(self.journal.entries):
            if entry.provider == self.backend.name:
                done.update(await self._collect_earlier(entry))
        fresh: dict[str, JudgeAsk] = {}
        for ask in asks:
            if ask.digest not in done:
                fresh.setdefault(ask.digest, ask)
        if fresh:
            done.update(await self._send(list(fresh.values())))
        return done

    # -- sending ------------------------------------------------------------------------------

    async def _send(self, asks: list[JudgeAsk]) -> dict[str, Judged]:
        out: dict[str, Judged] = {}
        ready: list[tuple[JudgeAsk, JudgeLine, bytes, Reservation]] = []
        for ask in asks:
            prices = self.prices(ask.request.model)
            estimate = prices.estimate(ask.request.detail) * self.factor if prices else 0.0
            reservation = self.budget.reserve(estimate)
            if reservation is None:
                failure = ProviderFailure("quota", self.budget.refusal())
                out[ask.digest] = Judged(None, failure, 0.0, over_budget=True)
                continue
            custom_id = f"qa-{ask.digest[:56]}"
            try:
                data = self.backend.line(custom_id, ask.request)
            except ValueError as exc:
                reservation.release()
                out[ask.digest] = Judged(None, ProviderFailure("invalid_request", str(exc)), 0.0)
                continue
            line = JudgeLine(custom_id, ask.digest, ask.request.min_score, ask.path, estimate)
            ready.append((ask, line, data, reservation))
        for chunk in self._chunks(ready):
            out.update(await self._submit(chunk))
        return out

    def _chunks(
        self, ready: list[tuple[JudgeAsk, JudgeLine, bytes, Reservation]]
    ) -> list[list[tuple[JudgeAsk, JudgeLine, bytes, Reservation]]]:
        """Batches of one judge model within the backend's limits and ``max_lines``."""
        limits = self.backend.limits
        max_lines = max(1, min(limits.max_lines, self.options.max_lines))
        chunks: dict[tuple[str, str], list[list[tuple[JudgeAsk, JudgeLine, bytes, Reservation]]]]
        chunks = {}
        sizes: dict[tuple[str, str], int] = {}
        for item in ready:
            key = (item[0].request.model, item[0].request.detail)
            groups = chunks.setdefault(key, [[]])
            size = len(item[2]) + 1
            if groups[-1] and (
                len(groups[-1]) >= max_lines or sizes[key] + size > limits.max_bytes
            ):
                groups.append([])
                sizes[key] = 0
            groups[-1].append(item)
            sizes[key] = sizes.get(key, 0) + size
        return [group for groups in chunks.values() for group in groups if group]

    async def _submit(
        self, chunk: list[tuple[JudgeAsk, JudgeLine, bytes, Reservation]]
    ) -> dict[str, Judged]:
        """Journal, create and watch one batch; every reservation is settled or released."""
        request = chunk[0][0].request
        lines = tuple(item[1] for item in chunk)
        reservations = {item[1].custom_id: item[3] for item in chunk}
        entry = self.journal.new_entry(self.backend.name, request.model, request.detail, lines)
        try:
            try:
                await asyncio.to_thread(self.journal.write, entry)  # before the batch can exist
            except OSError as exc:
                why = f"cannot write the judge batch journal ({exc}); nothing was sent"
                return _all(lines, Judged(None, ProviderFailure("invalid_request", why), 0.0))
            try:
                info = await self.backend.submit(
                    [item[2] for item in chunk], {METADATA_KEY: entry.id}
                )
            except ProviderFailure as failure:
                found = await self._find(entry)  # a create that timed out may have worked
                if found is None:
                    await asyncio.to_thread(self.journal.remove, entry.id)
                    return _all(lines, Judged(None, failure, 0.0))
                info = found
            self.batches_created += 1
            self.lines_sent += len(lines)
            try:
                entry = await asyncio.to_thread(self.journal.recorded, entry, info.id)
            except OSError:  # the journal entry finds the batch by its metadata later
                return _all(lines, _pending(info.id))
            self.note(
                f"batch {info.id}: {len(lines)} judge {_requests(len(lines))} sent "
                f"({request.model}); verdicts usually arrive within hours, at most 24 h"
            )
            return await self._collect(entry, info, reservations)
        finally:
            for reservation in reservations.values():
                reservation.release()  # settled ones hold nothing any more

    # -- collecting ---------------------------------------------------------------------------

    async def _collect_earlier(self, entry: JudgeEntry) -> dict[str, Judged]:
        """Collect a batch an earlier build created (or forget one never created)."""
        info: BatchInfo | None = None
        if entry.batch_id is None:
            try:
                found = await self.backend.find_by_metadata(
                    METADATA_KEY, entry.id, created_after=int(entry.created_at) - 300
                )
            except ProviderFailure:  # unknown whether it exists: keep it for the next build
                return _all(entry.lines, _pending("(not recorded)"))
            if not found:  # never created: nothing of it was paid for
                await asyncio.to_thread(self.journal.remove, entry.id)
                return {}
            info = found[0]
            entry = await asyncio.to_thread(self.journal.recorded, entry, info.id)
        batch_id = entry.batch_id or ""
        self.note(
            f"batch {printable(batch_id)}: collecting the {len(entry.lines)} judge "
            f"{_requests(len(entry.lines))} sent earlier"
        )
        info = info or BatchInfo(id=batch_id, status="in_progress")
        return await self._collect(entry, info, {}, earlier=True)

    async def _collect(
        self,
        entry: JudgeEntry,
        info: BatchInfo,
        reservations: Mapping[str, Reservation],
        *,
        earlier: bool = False,
    ) -> dict[str, Judged]:
        """Wait for the batch, keep every verdict in it, then forget its journal entry."""
        try:
            info = await self._until_done(info)
        except BatchNotFound:
            if not earlier:  # one this build just created cannot be unknown: keep it
                return _all(entry.lines, _pending(info.id))
            # Unknown to the API: it was never created, so none of it was paid for.
            await asyncio.to_thread(self.journal.remove, entry.id)
            self.note(
                f"warning: judge batch {printable(info.id)} is unknown to the Batch API (404); "
                "its images are judged again"
            )
            return {}
        if not info.is_terminal:
            return _all(entry.lines, _pending(info.id))
        lines = {line.custom_id: line for line in entry.lines}
        out: dict[str, Judged] = {}
        try:
            results = self.backend.verdicts(
                info, list(lines), {c: line.min_score for c, line in lines.items()}
            )
            async for custom_id, answer in results:
                line = lines.get(custom_id)
                if line is None or line.digest in out:
                    continue
                reservation = reservations.get(custom_id)
                if isinstance(answer, Verdict):
                    cost = self._cost(entry, line, answer)
                    await asyncio.to_thread(
                        self.keep, line.digest, answer, entry.model, cost, info.id
                    )
                    out[line.digest] = Judged(answer, None, cost)
                else:
                    # A 200 answer off the schema or a refusal may well have been billed.
                    billed = answer.kind in ("bad_response", "moderation")
                    cost = line.estimate if billed else 0.0
                    answer.attempts = 1
                    out[line.digest] = Judged(None, answer, cost)
                self.cost += cost
                if reservation is not None:
                    reservation.settle(cost)
                else:
                    self.budget.spent += cost  # an earlier build's: paid already
        except ProviderFailure as failure:
            self.note(
                f"batch {info.id}: judge results could not be read ({failure.message}); "
                "the next build --batch tries again"
            )
            return {**_all(entry.lines, _pending(info.id)), **out}
        await asyncio.to_thread(self.journal.remove, entry.id)
        self.note(
            f"batch {info.id} {info.status}: {sum(j.verdict is not None for j in out.values())} "
            f"verdicts, {sum(j.verdict is None for j in out.values())} failed"
        )
        return out

    def _cost(self, entry: JudgeEntry, line: JudgeLine, verdict: Verdict) -> float:
        prices = self.prices(entry.model)
        if prices is None:
            return line.estimate
        detail: Detail = "low" if entry.detail == "low" else "high"  # auto is priced as high
        return prices.actual(verdict.usage, detail) * self.factor

    async def _until_done(self, info: BatchInfo) -> BatchInfo:
        """Poll with backoff until the batch is over (once for ``--no-wait``)."""
        return await until_done(
            info,
            self.backend.retrieve,
            self.sleep,
            self.options,
        )

    async def _find(self, entry: JudgeEntry) -> BatchInfo | None:
        """The batch created for ``entry``, found by its metadata (None: never made)."""
        try:
            found = await self.backend.find_by_metadata(
                METADATA_KEY, entry.id, created_after=int(entry.created_at) - 300
            )
        except ProviderFailure:
            return None
        return found[0] if found else None


def _pending(batch_id: str) -> Judged:
    why = (
        f"the verdict waits in batch {printable(batch_id)}; the next build --batch --qa collects it"
    )
    return Judged(None, ProviderFailure("timeout", why), 0.0, pending=batch_id)


def _all(lines: Sequence[JudgeLine], judged: Judged) -> dict[str, Judged]:
    return {line.digest: judged for line in lines}


def _requests(n: int) -> str:
    return "request" if n == 1 else "requests"
