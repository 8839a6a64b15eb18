"""With no store to ask, ``assess`` works out each job's key without making its request's
payload; the key must be the one the request gives (with ``ops:``, with signing, for a
job that reads another's image), or a plan would call up-to-date files stale."""

from __future__ import annotations

import pytest

from pipeline.jobs import ApiJob, InputRef, RenditionJob, RenditionOp
from pipeline.jobs.job import OpCall
from pipeline.runner.freshness import _recorded, _request_key, job_request, recorded_key

SHA = "a" * 64


def _api(**extra: object) -> ApiJob:
    fields: dict[str, object] = {
        "id": "c/a",
        "kind": "generate",
        "collection": "c",
        "asset": "a",
        "variant": 2,
        "model": "gpt-image-1",
        "provider": "openai",
        "prompt": "a red ball",
        "endpoint": "images/generations",
        "params": {"size": "1024x1024", "quality": "low", "n": 1},
        "size": (512, 512),
        "requested_size": (1024, 1024),
        "output_path": "c/a.v2.png",
        "source": "specs/c.yaml:1",
    }
    fields.update(extra)
    return ApiJob(**fields)  # type: ignore[arg-type]


MARKUP = InputRef(path="m.png", sha256="c" * 64, width=8, height=8, format="png", bytes=9)
JOBS = [
    _api(),
    _api(ops=(OpCall("trim", {"tolerance": 8}, 1),)),
    _api(markup=MARKUP),
    _api(kind="edit", inputs=(InputRef(job="c/b", width=8, height=8),), depends_on=("c/b",)),
    _api(kind="edit", inputs=(InputRef(path="in.png", sha256=SHA, width=8, height=8),)),
    RenditionJob(
        id="c/a@64x64",
        collection="c",
        asset="a",
        variant=1,
        output_path="c/a@64x64.png",
        source="specs/c.yaml:1",
        size=(64, 64),
        depends_on=("c/b",),
        op=RenditionOp(64, 64, "cover", "png", None),
        model="gpt-image-1",
        provider="openai",
        prompt="p",
    ),
]


@pytest.mark.parametrize("job", JOBS, ids=lambda j: f"{j.kind}-{len(getattr(j, 'ops', ()))}")
@pytest.mark.parametrize("signing", [None, "fingerprint"])
@pytest.mark.parametrize("shas", [{}, {"c/b": "b" * 64}])
def test_the_key_without_the_payload_is_the_requests(
    job: ApiJob | RenditionJob, signing: str | None, shas: dict[str, str | None]
) -> None:
    request = job_request(job, shas)
    asked = _request_key(job, shas)
    if request is None:
        assert asked is None
        return
    assert asked == request.key
    assert _recorded(job, asked, signing) == recorded_key(job, request, signing)
