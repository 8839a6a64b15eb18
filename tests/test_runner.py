"""The scheduler on a fake clock: long Retry-After waits, ordering, and no double payment."""

from __future__ import annotations

import asyncio

import pytest
from processes import many
from runner_kit import direct_runner

from pipeline import api
from pipeline.jobs import ProviderFailure
from pipeline.runner.freshness import job_request
from pipeline.store import LocalStore
from pipeline.testing import FakeClock, ScriptedProvider

SPEC = """
    assets:
      - id: "a{{ n }}"
        prompt: "picture {{ n }}"
        matrix: {n: [1, 2, 3]}
        quality: low
      - id: edit
        prompt: "edit of a1"
        edit: {images: [a1]}
        quality: low
"""


def failing(failures: list[ProviderFailure]) -> ScriptedProvider:
    """The preview provider behind ``failures`` for the prompt "picture 1"."""
    return ScriptedProvider(failures, prompt="picture 1")


def run_plan(project, provider, *, max_attempts=6, concurrency=1):
    """Plan the project and run it with the fake clock; returns (report, time)."""
    ws = api.open_workspace(api.Request(project=project.root, flags={"provider": "preview"}))
    fake = FakeClock()
    with LocalStore(project.root / ".assetpipe/cache") as cache:
        runner = direct_runner(
            ws,
            cache,
            provider,
            fake,
            root=project.root,
            concurrency=concurrency,
            max_attempts=max_attempts,
        )
        report = asyncio.run(runner.run())
    return report, fake


@pytest.mark.parametrize("retry_after", [120.0, 150.0, 600.0])
def test_long_retry_after_is_honoured_even_beyond_the_sdks_120s(project, retry_after):
    """A 429 storm asking for 120 s and more is waited out, not given up on (the SDK stops)."""
    project.gen({"specs/s.yaml": SPEC})
    storm = [ProviderFailure("rate_limit", "slow down", retry_after_s=retry_after)] * 3
    provider = failing(storm)
    report, fake = run_plan(project, provider)
    assert {o.status for o in report.outcomes.values()} == {"generated"}
    long_waits = [s for s in fake.sleeps if s >= retry_after]
    assert len(long_waits) >= 3
    assert all(retry_after <= s < retry_after + 0.25 for s in long_waits)
    assert len(provider.requests) == 4 + 3


def test_retry_after_beyond_the_limit_fails_the_job_clearly(project):
    """An hour-long Retry-After fails that job (reported, not retried) and the rest builds."""
    project.gen({"specs/s.yaml": SPEC})
    provider = failing([ProviderFailure("rate_limit", "come back later", retry_after_s=3600)])
    report, _ = run_plan(project, provider)
    statuses = sorted(o.status for o in report.outcomes.values())
    assert statuses == ["blocked", "failed", "generated", "generated"]
    failed = next(o for o in report.outcomes.values() if o.status == "failed")
    assert failed.job.id == "s/a1"
    assert failed.error["type"] == "rate_limit"


def test_retries_stop_at_max_attempts(project):
    """A server that keeps failing gets max_attempts tries, then the job fails."""
    project.gen({"specs/s.yaml": SPEC})
    provider = failing([ProviderFailure("server", "boom")] * 10)
    report, _ = run_plan(project, provider, max_attempts=3)
    failed = report.outcomes["s/a1"]
    assert failed.status == "failed"
    assert failed.attempts == 3
    assert provider.prompts.count("picture 1") == 3


def test_edit_starts_only_after_its_input_and_every_job_is_called_once(project):
    """Each prompt is requested once; the edit after a1."""
    project.gen({"specs/s.yaml": SPEC})
    provider = ScriptedProvider()
    report, _ = run_plan(project, provider, concurrency=4)
    assert sorted(provider.prompts) == ["edit of a1", "picture 1", "picture 2", "picture 3"]
    assert provider.prompts.index("edit of a1") > provider.prompts.index("picture 1")
    assert report.outcomes["s/edit"].inputs == [report.outcomes["s/a1"].sha256]


def test_a_checkpoint_being_written_ends_before_the_run_does(project):
    """A checkpoint runs in a thread, which cancelling cannot stop: the run waits for it,
    or the older checkpoint would land over the final manifest written after the run."""
    import dataclasses
    import threading
    import time

    project.gen({"specs/s.yaml": SPEC})
    started, finished = threading.Event(), threading.Event()

    def slow_checkpoint(outcomes):
        started.set()
        time.sleep(0.3)
        finished.set()

    class LastWaits(ScriptedProvider):
        async def generate(self, request):
            if request.prompt == "edit of a1":  # the last job: done while the write runs
                while not started.is_set():
                    await asyncio.sleep(0.01)
            return await super().generate(request)

    ws = api.open_workspace(api.Request(project=project.root, flags={"provider": "preview"}))
    fake = FakeClock()
    with LocalStore(project.root / ".assetpipe/cache") as cache:
        runner = direct_runner(ws, cache, LastWaits(), fake, root=project.root)
        runner.deps = dataclasses.replace(runner.deps, on_checkpoint=slow_checkpoint)

        async def run_and_look():  # asyncio.run's own shutdown would wait for the thread
            report = await runner.run()
            return report, finished.is_set()

        report, written = asyncio.run(run_and_look())
    assert {o.status for o in report.outcomes.values()} == {"generated"}
    assert started.is_set()
    assert written, "the run ended while a checkpoint was still being written"


def test_a_paid_image_frees_its_slot_before_a_writer_is_free(project, monkeypatch):
    """A request's slot is free once its image is in the cache, not once a writer takes
    it: with every writer held until every image is committed, all the requests are still
    sent. Each image that found every writer busy was let go meanwhile and is read back
    from the cache, byte for byte."""
    import threading

    from pipeline.runner import delivery, making

    jobs, writers = 12, 4
    project.gen({"specs/s.yaml": many(jobs)})
    all_committed = threading.Event()
    real_store = delivery.Delivery.store

    def held_store(self, *args, **kwargs):
        # Every writer is busy until every image is committed (were a slot held until a
        # writer is free, the last requests would wait for this one: a deadlock).
        if not all_committed.wait(timeout=30):
            raise AssertionError("a request waited for a writer before it was sent")
        return real_store(self, *args, **kwargs)

    committed: list[str] = []
    real_commit = making.Maker._commit

    async def counted_commit(self, job, *args, **kwargs):
        paid = await real_commit(self, job, *args, **kwargs)
        committed.append(job.id)
        if len(committed) == jobs:
            all_committed.set()
        return paid

    read_back: list[str] = []
    real_read_back = making.Maker._read_back

    def counted_read_back(self, asked, sha):
        read_back.append(asked.key)
        return real_read_back(self, asked, sha)

    monkeypatch.setattr(delivery.Delivery, "store", held_store)
    monkeypatch.setattr(making.Maker, "_commit", counted_commit)
    monkeypatch.setattr(making.Maker, "_read_back", counted_read_back)
    provider = ScriptedProvider()
    report, _ = run_plan(project, provider, concurrency=writers)
    assert len(provider.requests) == jobs
    outcomes = list(report.outcomes.values())
    assert {o.status for o in outcomes} == {"generated"}
    # The first `writers` images hold the writers; every later one found them busy.
    assert len(set(read_back)) == jobs - writers
    with LocalStore(project.root / ".assetpipe/cache") as cache:
        for outcome in outcomes:
            written = (project.root / "output" / outcome.job.output_path).read_bytes()
            asked = job_request(outcome.job, {})
            assert asked is not None and asked.key == outcome.cache_key
            hit = cache.get(asked)
            assert hit is not None and hit[1] == written
