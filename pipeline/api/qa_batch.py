"""The quality gate under ``build --batch``: judging as one batch, at the batch discount.

The composition root of batched judging: it picks the judge batch backend (OpenAI's
Batch API, ``/v1/responses`` lines), the journal (``.assetpipe/judge-batches/``), the
judge table's prices at :data:`~pipeline.api.routes.BATCH_PRICE_FACTOR`, and how a
collected verdict is kept: in the memo under the same digest as a direct verdict (image
sha256, rubric, text, minimum score, judge model and detail, prompt version), so a
rebuild judges nothing again whichever way the verdict travelled, and a verdict a later
build collects for an image nobody asks about any more is kept all the same (it was paid).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from pipeline.api.routes import BATCH_PRICE_FACTOR
from pipeline.jobs.judge_batch import JudgeBatchBackend
from pipeline.jobs.judging import JudgeModel, Verdict
from pipeline.output import ManifestEntry
from pipeline.runner.budget import Budget
from pipeline.runner.judge_batching import JudgeBatcher, JudgeBatchOptions
from pipeline.runner.judge_journal import JudgeJournal
from pipeline.runner.judging import Judged
from pipeline.settings import Settings
from pipeline.store.memo import LocalMemo

PENDING_KEY = "_judge_batch_digest"
"""Marks a ``qa`` check whose verdict the build's judge batch is still to give."""


def judge_batch_backend(settings: Settings) -> JudgeBatchBackend:
    """OpenAI's Batch API for judge lines (its SDK loads here, for paid builds only)."""
    from pipeline.providers.openai_judge_batch import OpenAIJudgeBatch  # noqa: PLC0415

    return OpenAIJudgeBatch.openai(settings.timeout)


def judge_prices_of(model: str) -> JudgeModel | None:
    """A judge model's row of the judge table (None for a model it no longer has: a batch
    of an earlier build may have used one; its verdicts are then charged their estimate)."""
    from pipeline.providers.openai_judge_catalog import openai_judges  # noqa: PLC0415

    return openai_judges().get(model)


def make_batcher(
    settings: Settings,
    memo: LocalMemo,
    budget: Budget,
    record: Callable[[Verdict, str, float], dict[str, Any]],
    *,
    wait: bool,
    note: Callable[[str], None],
    backend: JudgeBatchBackend | None = None,
) -> JudgeBatcher:
    """The build's judge batcher; ``record(verdict, model, cost)`` is the manifest's
    ``qa`` check of a verdict, which the memo keeps as it is."""

    def keep(digest: str, verdict: Verdict, model: str, cost: float, batch_id: str) -> None:
        kept = {**record(verdict, model, cost), "via": "batch", "batch_id": batch_id}
        memo.keep_qa_record(digest, kept)

    return JudgeBatcher(
        backend if backend is not None else judge_batch_backend(settings),
        JudgeJournal(settings.cache_dir),
        judge_prices_of,
        budget,
        factor=BATCH_PRICE_FACTOR,
        options=JudgeBatchOptions(
            wait=wait,
            max_lines=settings.batch_max_lines,
            poll_s=settings.batch_poll_seconds,
            max_poll_s=10 * settings.batch_poll_seconds,
        ),
        keep=keep,
        note=note,
    )


def batched_check(
    judged: Judged,
    model: str,
    record: Callable[[Verdict, str, float], dict[str, Any]],
    failed: Callable[[str, str, float], dict[str, Any]],
) -> dict[str, Any]:
    """The ``qa`` check of one image the batch judged (or did not)."""
    if judged.verdict is not None:
        return {**record(judged.verdict, model, judged.cost_usd), "via": "batch", "cached": False}
    why = judged.failure.message if judged.failure is not None else "no verdict"
    check = failed(model, why, judged.cost_usd)
    if judged.pending is not None:
        check["pending"] = judged.pending
    return check


async def judge_wave(
    gate: Any,
    done: list[ManifestEntry],
    record: Callable[[Verdict, str, float], dict[str, Any]],
    failed: Callable[[str, str, float], dict[str, Any]],
) -> list[ManifestEntry]:
    """Send the gate's wave as judge batches (collecting earlier builds' judge batches
    first) and put each verdict in place of its entry's pending ``qa`` check; ``gate`` is
    the quality gate of :mod:`pipeline.api.qa` (its budget, memo, cost and counters)."""
    pending = {e.job for e in done for c in e.checks or () if PENDING_KEY in c}
    if not pending and not JudgeJournal(gate.settings.cache_dir).entries():
        return done
    batcher = make_batcher(
        gate.settings, gate.memo, gate.budget, record, wait=gate.wait, note=gate.note
    )
    try:
        judged = await batcher.run(gate.wave or [])
    finally:
        await batcher.backend.aclose()
    gate.cost += batcher.cost
    gate.calls += batcher.lines_sent
    out = []
    for entry in done:
        if entry.job not in pending:
            out.append(entry)
            continue
        checks = []
        for check in entry.checks or ():
            digest = check.get(PENDING_KEY)
            if digest is None:
                checks.append(check)
                continue
            result = judged.get(digest, Judged(None, None, 0.0))
            if result.pending is not None:
                gate.pending += 1
            elif result.verdict is None:
                gate.warn(entry, result)
            checks.append(batched_check(result, gate.qa.model, record, failed))
        out.append(dataclasses.replace(entry, checks=tuple(checks)))
    return out
