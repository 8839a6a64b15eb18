"""``plan --json`` writes each job's line itself, exactly as ``json.dumps`` would.

The document is streamed a batch of jobs at a time, and each job's line is written field
by field (``json.dumps`` of a 22-key mapping per job was a second of a 100,000-job plan).
These tests hold the two equal, character for character, on every kind of job and on
text that JSON must escape, and the streamed document equal to the one-string form.
"""

from __future__ import annotations

import io
import json
import re
from types import SimpleNamespace
from typing import Any

from pipeline.api.reports import _JobLines, job_json, plan_totals, write_plan_document
from pipeline.jobs import ApiJob, PinnedJob, Plan, PlanWarning, RenditionJob, SheetJob
from pipeline.jobs.job import RenditionOp
from pipeline.runner.freshness import JobState

AWKWARD = [
    "plain",
    "",
    'quote " and backslash \\ and slash /',
    "ünïcödé ☃ 𝄞 中文",
    "controls \x00 \x01 \x1f \x7f \x85 \x9f \u2028 \u2029",
    "line\nbreak\ttab\r",
    "lone surrogate \ud800",
]


def _api(text: str, **extra: Any) -> ApiJob:
    fields: dict[str, Any] = {
        "id": f"c/{len(text)}",
        "kind": "generate",
        "collection": "c",
        "asset": text or "a",
        "variant": 1,
        "model": "gpt-image-1",
        "provider": "preview",
        "prompt": text,
        "endpoint": "images/generations",
        "params": {"size": "1024x1024", "quality": text, "background": "auto", "n": 1},
        "size": (1024, 1536),
        "requested_size": (1024, 1536),
        "output_path": f"c/{text}.png",
        "source": f"specs/{text}.yaml:3",
        "estimated_cost_usd": 0.0123456789,
    }
    fields.update(extra)
    return ApiJob(**fields)


def _jobs() -> list[Any]:
    jobs: list[Any] = []
    for text in AWKWARD:
        api = _api(text)
        jobs.append(api)
        jobs.append(
            RenditionJob(
                id=f"{api.id}@64x64",
                collection="c",
                asset=api.asset,
                variant=1,
                model=api.model,
                provider=api.provider,
                prompt=text,
                size=(64, 64),
                output_path=f"c/{text}@64x64.png",
                source=api.source,
                depends_on=(api.id,),
                op=RenditionOp(64, 64, "cover", "png", None),
            )
        )
    jobs.append(_api("x", params={"size": "1x1", "svg": {"k": [1, 2.5, None]}}, variant=3))
    jobs.append(_api("nan cost", estimated_cost_usd=float("nan")))
    jobs.append(_api("inf cost", estimated_cost_usd=float("inf")))
    jobs.append(_api("int cost", estimated_cost_usd=2, depends_on=("a", "b\u00e9")))
    jobs.append(_api("negative zero", estimated_cost_usd=-0.0, cache_key="k" * 64))
    jobs.append(
        SheetJob(
            id="c/sheet",
            collection="c",
            asset="sheet",
            variant=1,
            output_path="c/sheet.png",
            source="specs/c.yaml:9",
            size=(0, 0),
            depends_on=("c/5",),
            provider="preview",
            params={"format": "png", "padding": 2},
            atlases=(("hash", "c/sheet.json"),),
            frames=("5.png",),
        )
    )
    jobs.append(
        PinnedJob(
            id="c/pinned",
            collection="c",
            asset="pinned",
            variant=2,
            output_path="c/pinned.png",
            source="specs/c.yaml:1",
            size=(512, 512),
            approved="a" * 64,
            approved_key="b" * 64,
            picked=2,
            picked_job="c/pinned#2",
            format="webp",
            model="m",
            provider="p",
            prompt="pinned \u2028",
            params={"quality": "high"},
        )
    )
    return jobs


def _states(jobs: list[Any]) -> list[JobState | None]:
    return [
        None,
        JobState("generate", "k1", None, "new"),
        JobState("up-to-date", "k2", "s", "unchanged", ({"check": "alpha", "ok": True},)),
        JobState("cached", None, "s", "in the cache \x85", None, "current"),
        JobState("render", "k", None, "its ops changed", ()),
    ]


def test_each_line_is_what_json_dumps_writes() -> None:
    states = _states([])
    for factor, direct in ((1.0, frozenset()), (0.5, frozenset({"gpt-image-1"}))):
        lines = _JobLines(factor, direct)
        for i, job in enumerate(_jobs()):
            for state in states:
                want = json.dumps(job_json(job, state, factor, direct), ensure_ascii=False)
                assert lines.line(job, state) == want, (i, job.id, state)
                # Parameters are written once per mapping: the second time too.
                assert lines.line(job, state) == want


def _whole_document(ws: Any, states: Any, shared: Any) -> str:
    """The document as it was made in one string before it was streamed."""
    totals = plan_totals(ws.plan, states)
    jobs = ",\n".join(
        json.dumps(job_json(j, states.get(j.id)), ensure_ascii=False) for j in ws.plan.jobs
    )
    rest: dict[str, Any] = {
        "totals": {**totals, "provider": ws.settings.provider, "price_factor": 1.0},
        "warnings": [str(w) for w in ws.plan.warnings],
        "shared_cache": {"url": shared[0], "problem": shared[1]},
    }
    tail = ",\n".join(
        f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in rest.items()
    )
    document = f'{{"jobs": [\n{jobs}\n],\n{tail}\n}}'
    return re.sub("[\x7f-\x9f]", lambda m: f"\\u{ord(m.group()):04x}", document)


def _workspace(jobs: list[Any]) -> Any:
    plan = Plan(jobs=tuple(jobs), warnings=(PlanWarning("careful \x9b", None),))
    return SimpleNamespace(plan=plan, settings=SimpleNamespace(provider="preview"))


def test_the_streamed_document_is_the_whole_document(monkeypatch: Any) -> None:
    monkeypatch.setattr("pipeline.api.reports.WRITE_BATCH", 3)  # several batches
    jobs = [j for j in _jobs() if isinstance(j, ApiJob)]
    states = {j.id: JobState("generate", j.cache_key, None, "new") for j in jobs}
    ws = _workspace(jobs)
    out = io.StringIO()
    write_plan_document(out, ws, states, shared=("s3://bucket", None))
    text = out.getvalue()
    doc = json.loads(text)
    assert [j["id"] for j in doc["jobs"]] == [j.id for j in jobs]
    assert doc["jobs"][0] == json.loads(json.dumps(job_json(jobs[0], states[jobs[0].id])))
    assert doc["shared_cache"] == {"url": "s3://bucket", "problem": None}
    assert text == _whole_document(ws, states, ("s3://bucket", None))
    for raw in ("\x7f", "\x85", "\x9b"):  # printed escaped, never raw
        assert raw not in text


def test_an_empty_plan_is_a_document_too() -> None:
    out = io.StringIO()
    write_plan_document(out, _workspace([]), {})
    doc = json.loads(out.getvalue())
    assert doc["jobs"] == [] and doc["totals"]["jobs"] == 0
