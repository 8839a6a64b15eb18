"""The quality gate of a build: each delivered image checked against its spec's ``expect``.

Runs after the runner delivered a build's files, on the manifest entries it made: first
``expect.text`` offline (Tesseract and fuzzy matching, :mod:`pipeline.qa.text`), then
``expect.shows`` through a judge (one Responses API call per image, paced, retried and
reserved on the same ``--max-cost`` budget as the image calls, by
:class:`~pipeline.runner.judging.JudgeCaller`). Both results are kept in the memo by a
digest of everything that decides them (the image's sha256, the rubric, the text, the
minimum score, the judge model and detail, the prompt version), so a rebuild judges
nothing again. Each result lands in the entry's ``checks`` (names ``text`` and ``qa``); a
judge that fails (an outage, a refusal) fails only its check, with a warning. This is
the composition root of judging: the one place the judge implementation is chosen.

Under ``build --batch`` the images to judge go as one judging wave through the Batch API
at the batch discount (:mod:`pipeline.api.qa_batch`), once every check that needs no call
is done; a verdict still waiting in a batch is a failed check marked ``pending``, and a
direct build leaves such verdicts to ``build --batch`` rather than paying for them twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.api.judged import JudgedAsset, VariantScore, read_judged, variant_score
from pipeline.api.sealing import user_sealer
from pipeline.hashing import sha256_bytes
from pipeline.jobs.judging import JUDGE_PROMPT_VERSION, Judge, JudgeModel, JudgeRequest, Verdict
from pipeline.output import ManifestEntry, OutputTree
from pipeline.qa.text import OCR_VERSION, check_text
from pipeline.runner.budget import Budget
from pipeline.settings import QaSettings, Settings
from pipeline.spec.models import Expect
from pipeline.store.memo import LocalMemo

if TYPE_CHECKING:  # the judging machinery loads when an image is judged, not with every build
    from pipeline.runner.judge_batching import JudgeAsk
    from pipeline.runner.judging import JudgeCaller, Judged

log = logging.getLogger("assetpipe.qa")

AssetKey = tuple[str, str]
MIMES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif"}
MAX_JUDGED_BYTES = 20 * 1024 * 1024
"""The Responses API takes images up to 20 MB (a data URL counts toward it)."""


@dataclass(frozen=True, slots=True)
class QaResult:
    """What the gate did: the entries with their checks, what judging cost, and how."""

    entries: list[ManifestEntry]
    cost_usd: float = 0.0
    judged: int = 0
    """Judge calls sent (each attempt counts)."""
    budget_hit: bool = False
    pending: int = 0
    """Verdicts still waiting in a judge batch (``build --batch``)."""


def expectations(ws: Any) -> dict[AssetKey, Expect]:
    """Each asset's ``expect`` (its own, else its spec's ``defaults:``), by
    ``(collection, id)``, from the workspace's specs resolved as the planner does."""
    from pipeline.planner.assets import resolve_assets  # noqa: PLC0415 - only with qa on
    from pipeline.templating import TemplateEngine  # noqa: PLC0415

    settings = ws.settings
    engine = TemplateEngine(
        settings.templates_dir if settings.templates_dir.is_dir() else None,
        display_dir=settings.templates_dir.name,
    )
    resolved = resolve_assets(ws.specs(), engine, settings.max_jobs, lambda _exc: None)
    return {
        key: asset.spec.expect
        for key, asset in resolved.assets.items()
        if asset.spec.expect is not None
    }


def qa_digest(qa: QaSettings | None) -> str:
    """What a build with nothing to do must find as it was for the gate (its stamp)."""
    if qa is None:
        return "qa:off"
    return f"qa:{qa.model}:{qa.detail}:{qa.rerolls}:{JUDGE_PROMPT_VERSION}:{OCR_VERSION}"


def make_judge(settings: Settings) -> Judge:
    """The judge of the settings' provider (OpenAI's Responses API; its SDK loads here)."""
    from pipeline.providers.openai_judge import OpenAIJudge  # noqa: PLC0415 - paid builds only

    return OpenAIJudge.openai(settings.timeout)


def judge_prices(qa: QaSettings) -> JudgeModel:
    """The judge model's row of the judge table (settings admit known names only)."""
    from pipeline.providers.openai_judge_catalog import openai_judges  # noqa: PLC0415

    return openai_judges()[qa.model]


def judge_estimate(qa: QaSettings | None, images: int) -> float:
    """USD of judging ``images`` delivered images at the judge's list prices."""
    if qa is None or images <= 0:
        return 0.0
    return judge_prices(qa).estimate(qa.detail) * images


def verdict_digest(sha: str, expect: Expect, qa: QaSettings) -> str:
    """The memo key of a verdict: everything that decides it, so a changed rubric, model
    or prompt judges again and nothing else does."""
    key = [sha, expect.shows, expect.text, expect.min_score, qa.model, qa.detail]
    return sha256_bytes(f"judge\0{JUDGE_PROMPT_VERSION}\0{key!r}".encode())


def text_digest(sha: str, text: str) -> str:
    """The memo key of an offline text check."""
    return sha256_bytes(f"text\0{OCR_VERSION}\0{sha}\0{text}".encode())


def kept_verdict(
    memo: LocalMemo, sha: str, expect: Expect, qa: QaSettings
) -> dict[str, Any] | None:
    """The verdict the memo keeps for this image and rubric, when it checks out."""
    kept = memo.qa_record(verdict_digest(sha, expect, qa))
    return dict(kept) if kept is not None and _verdict_record_ok(kept) else None


def run_qa(
    settings: Settings,
    memo: LocalMemo,
    tree: OutputTree,
    entries: Sequence[ManifestEntry],
    built: set[str],
    expected: Mapping[AssetKey, Expect],
    spent_usd: float,
    judge: Judge | None = None,
    *,
    batch: bool = False,
    wait: bool = True,
    note: Callable[[str], None] | None = None,
) -> QaResult:
    """Check every entry this build made whose asset has an ``expect``; with ``batch``,
    judge them through the Batch API (``wait`` False: submit, and leave the verdicts to
    the next ``build --batch``)."""
    qa = settings.qa
    if qa is None:
        return QaResult(list(entries))
    targets = [
        e
        for e in entries
        if e.job in built
        and e.sha256
        and e.kind in ("generate", "edit", "pick")
        and (e.collection, e.asset) in expected
    ]
    if not targets:
        return QaResult(list(entries))
    gate = _Gate(settings, qa, memo, tree, spent_usd, judge)
    if batch:
        gate.wave, gate.wait = [], wait
    gate.note = note or log.info
    checked = asyncio.run(gate.run(targets, expected))
    out = [checked.get(e.job, e) for e in entries]
    records = read_judged(settings.cache_dir, user_sealer())
    if records:
        out = with_winners(out, records, expected)
    return QaResult(out, gate.cost, gate.calls, gate.budget.hit, gate.pending)


def with_winners(
    entries: Sequence[ManifestEntry],
    records: Mapping[str, JudgedAsset],
    expected: Mapping[AssetKey, Expect],
) -> list[ManifestEntry]:
    """The entries with, on the ``qa`` check of each rerolled asset's delivered image (at
    its own path), which variant won and why, and every variant's score: the manifest
    says why this image and not another. A person's pick is not annotated: it is no
    judge's choice."""
    variants: dict[str, list[VariantScore]] = {}
    for e in entries:
        expect = expected.get((e.collection, e.asset))
        if expect is not None and e.kind in ("generate", "edit") and e.sha256:
            score = variant_score(e, expect.shows is not None, expect.text is not None)
            variants.setdefault(f"{e.collection}/{e.asset}", []).append(score)
    out = []
    for e in entries:
        name = f"{e.collection}/{e.asset}"
        record = records.get(name)
        if (
            record is None
            or not record.rerolls
            or e.job != name
            or e.sha256 != record.sha256
            or e.variant != record.winner
        ):
            out.append(e)
            continue
        scored = sorted(variants.get(name, ()), key=lambda v: v.variant)
        passed = any(v.passed for v in scored)
        why = f"{'passed' if passed else 'none passed'}; the best score of {len(scored)} variants"
        winner = {"variant": record.winner, "score": record.score, "why": why}
        table = [{"variant": v.variant, "score": v.score, "passed": v.passed} for v in scored]
        checks = tuple(
            {**c, "winner": winner, "variants": table} if c.get("name") == "qa" else c
            for c in e.checks or ()
        )
        out.append(dataclasses.replace(e, checks=checks))
    return out


class _Gate:
    def __init__(
        self,
        settings: Settings,
        qa: QaSettings,
        memo: LocalMemo,
        tree: OutputTree,
        spent_usd: float,
        judge: Judge | None,
    ):
        self.settings, self.qa, self.memo, self.tree = settings, qa, memo, tree
        self.budget = Budget(settings.max_cost)
        self.budget.spent = spent_usd
        self.judge = judge
        self.caller: JudgeCaller | None = None
        self.cost = 0.0
        self.calls = 0
        self.pending = 0
        self.wave: list[JudgeAsk] | None = None
        """The images to judge in one batch (``build --batch``), else None."""
        self.wait = True
        self.note: Callable[[str], None] = log.info
        self.in_batches: dict[str, str] | None = None
        """Digest -> batch id of the verdicts open judge batches hold (read once)."""

    async def run(
        self, targets: Sequence[ManifestEntry], expected: Mapping[AssetKey, Expect]
    ) -> dict[str, ManifestEntry]:
        try:
            done = await asyncio.gather(
                *(self.check(e, expected[(e.collection, e.asset)]) for e in targets)
            )
        finally:
            if self.caller is not None:
                self.calls = self.caller.calls
                await self.caller.aclose()
        if self.wave is not None:
            done = await self._judge_wave(done)
        return {e.job: e for e in done}

    async def _judge_wave(self, done: list[ManifestEntry]) -> list[ManifestEntry]:
        """Judge the wave through the Batch API (:mod:`pipeline.api.qa_batch`)."""
        from pipeline.api.qa_batch import judge_wave  # noqa: PLC0415 - build --batch only

        return await judge_wave(self, done, _verdict_record, _failed)

    def _caller(self) -> JudgeCaller:
        from pipeline.runner.judging import JudgeCaller  # noqa: PLC0415 - a judge is called
        from pipeline.runner.limiter import RateLimiter  # noqa: PLC0415
        from pipeline.runner.retry import RetryPolicy  # noqa: PLC0415

        if self.caller is None:
            judge = self.judge if self.judge is not None else make_judge(self.settings)
            self.caller = JudgeCaller(
                judge,
                judge_prices(self.qa),
                self.budget,
                RateLimiter(None, self.settings.requests_per_minute),
                RetryPolicy(max_attempts=self.settings.max_attempts),
                concurrency=self.settings.concurrency,
            )
        return self.caller

    async def check(self, entry: ManifestEntry, expect: Expect) -> ManifestEntry:
        try:
            data = await asyncio.to_thread(self.tree.read, entry.path)
        except OSError as exc:
            log.warning("%s: cannot read it to check it (%s)", entry.path, exc.strerror or exc)
            return entry
        sha = sha256_bytes(data)
        records: list[dict[str, Any]] = []
        if expect.text is not None:
            records.append(await self.text(entry, sha, data, expect.text))
        if expect.shows is not None:
            records.append(await self.verdict(entry, sha, data, expect))
        kept = [c for c in entry.checks or () if c.get("name") not in ("qa", "text")]
        return dataclasses.replace(entry, checks=(*kept, *records))

    async def text(self, entry: ManifestEntry, sha: str, data: bytes, text: str) -> dict[str, Any]:
        digest = text_digest(sha, text)
        kept = self.memo.qa_record(digest)
        if _text_record_ok(kept):
            return dict(kept or {})
        result = await asyncio.to_thread(check_text, data, text)
        record = result.as_record()
        if result.ok is None:
            log.warning("%s: the text check could not run: %s", entry.path, result.problem)
        else:
            self.memo.keep_qa_record(digest, record)
            if not result.ok:
                log.warning("%s: its text reads %r, not %r", entry.path, result.read, text)
        return record

    async def verdict(
        self, entry: ManifestEntry, sha: str, data: bytes, expect: Expect
    ) -> dict[str, Any]:
        qa = self.qa
        assert expect.shows is not None  # noqa: S101 - the caller checked
        digest = verdict_digest(sha, expect, qa)
        kept = self.memo.qa_record(digest)
        if _verdict_record_ok(kept):
            return {**(kept or {}), "cost_usd": 0.0, "cached": True}
        mime = MIMES.get(entry.format or "png", "image/png")
        if len(data) > MAX_JUDGED_BYTES:
            return _failed(qa.model, f"the image is over {MAX_JUDGED_BYTES // 2**20} MB", 0.0)
        request = JudgeRequest(
            model=qa.model,
            image=data,
            mime=mime,
            rubric=expect.shows,
            min_score=expect.min_score,
            detail=qa.detail,
            text=expect.text,
        )
        if self.wave is not None:
            from pipeline.api.qa_batch import PENDING_KEY  # noqa: PLC0415
            from pipeline.runner.judge_batching import JudgeAsk  # noqa: PLC0415

            self.wave.append(JudgeAsk(digest, request, entry.path))
            return {"name": "qa", PENDING_KEY: digest}
        waiting = self._in_batch(digest)
        if waiting is not None:
            self.pending += 1
            why = f"the verdict waits in batch {waiting}; assetpipe build --batch --qa collects it"
            log.warning("%s: not judged: %s", entry.path, why)
            return {**_failed(qa.model, why, 0.0), "pending": waiting}
        judged = await self._caller().call(request)
        self.cost += judged.cost_usd
        if judged.verdict is None:
            return self._failure(entry, judged)
        record = _verdict_record(judged.verdict, qa.model, judged.cost_usd)
        self.memo.keep_qa_record(digest, record)
        return {**record, "cached": False}

    def _in_batch(self, digest: str) -> str | None:
        """The open judge batch holding this verdict, if an earlier ``build --batch`` sent
        it: a direct build does not pay for it again."""
        if self.in_batches is None:
            from pipeline.runner.judge_journal import JudgeJournal  # noqa: PLC0415

            self.in_batches = JudgeJournal(self.settings.cache_dir).pending_digests()
        return self.in_batches.get(digest)

    def _failure(self, entry: ManifestEntry, judged: Judged) -> dict[str, Any]:
        failure = judged.failure
        why = failure.message if failure is not None else "no verdict"
        self.warn(entry, judged)
        return _failed(self.qa.model, why, judged.cost_usd)

    @staticmethod
    def warn(entry: ManifestEntry, judged: Judged) -> None:
        """Say why an image has no verdict (it is kept all the same)."""
        why = judged.failure.message if judged.failure is not None else "no verdict"
        if judged.over_budget:
            log.warning("%s: not judged: %s", entry.path, why)
        else:
            log.warning("%s: the judge gave no verdict (%s); the image is kept", entry.path, why)


def _verdict_record(verdict: Verdict, model: str, cost: float) -> dict[str, Any]:
    """The manifest's ``qa`` check of one verdict."""
    return {
        "name": "qa",
        "ok": verdict.passed,
        "verdict": "pass" if verdict.passed else "fail",
        "score": round(verdict.score, 4),
        "points": [{"point": p, "score": round(s, 4)} for p, s in verdict.points],
        "reasons": list(verdict.reasons),
        "text_read": verdict.text_read,
        "judge": model,
        "cost_usd": round(cost, 6),
        "usage": verdict.usage.as_dict() if verdict.usage is not None else None,
    }


def _failed(model: str, why: str, cost: float) -> dict[str, Any]:
    return {
        "name": "qa",
        "ok": False,
        "verdict": "error",
        "detail": why,
        "judge": model,
        "cost_usd": round(cost, 6),
    }


def _verdict_record_ok(record: object) -> bool:
    """A kept verdict as this module writes it (the memo is untrusted)."""
    if not isinstance(record, dict) or record.get("name") != "qa":
        return False
    score = record.get("score")
    return (
        isinstance(record.get("ok"), bool)
        and record.get("verdict") in ("pass", "fail")
        and isinstance(score, int | float)
        and not isinstance(score, bool)
        and 0 <= score <= 1
        and isinstance(record.get("reasons"), list)
        and all(isinstance(r, str) for r in record["reasons"])
        and isinstance(record.get("points"), list)
        and isinstance(record.get("text_read"), str)
    )


def _text_record_ok(record: object) -> bool:
    """A kept text check as :mod:`pipeline.qa.text` writes it."""
    return (
        isinstance(record, dict)
        and record.get("name") == "text"
        and isinstance(record.get("ok"), bool)
        and isinstance(record.get("read"), str)
        and isinstance(record.get("expected"), str)
    )
