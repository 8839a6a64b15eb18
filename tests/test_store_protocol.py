"""The ``ResultStore`` seam: what the runner's side needs from a store, and nothing more.

The kit's in-memory store (:class:`pipeline.testing.MemoryStore`, written from the
protocol alone: no files, no paths) stands in for the local disk store: freshness and the
input reader work with it unchanged, and one contract is checked against every store (the
local one, the kit's, a shared folder through ``file://``, and the layered store over a
real S3 server), so plugin authors' tests use a store held to the same promises as the
real ones.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import obstore
import pytest
from store_kit import kept, layered, meta_text, req, shared_store

from pipeline import api
from pipeline.hashing import CacheRequest, sha256_bytes
from pipeline.jobs import RenditionOp, rendition_cache_key
from pipeline.output import Manifest, OutputTree
from pipeline.runner.freshness import JobState, assess, job_request
from pipeline.runner.inputs import InputReader
from pipeline.store import CacheRecord, LocalStore, ResultStore
from pipeline.testing import MemoryStore

SPEC = """
    assets:
      - id: a
        prompt: "a stone"
        quality: low
        renditions: [{size: 64x64, format: webp}]
      - id: edit
        prompt: "edit of a"
        edit: {images: [a]}
        quality: low
"""
A_KEY = "e67be8130abf1eb173e1647ac7d00b26c5037c2c17a34ddd1f3fb288f4bff104"
GOOD = sha256_bytes(b"good")


Plant = Callable[[str, object, object, object], None]
"""Write a record's raw fields under a key, bypassing commit (as a damaged store would)."""


def record_json(key: str, blob: object, original: object, meta: object) -> bytes:
    """A shared record object holding the raw fields (``meta`` is JSON text)."""
    fields = {"format": 1, "key": key, "blob": blob, "original": original}
    return json.dumps({**fields, "meta": json.loads(str(meta))}).encode()


@pytest.fixture(params=["local", "memory", "file", "layered-moto"])
def store_and_plant(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, Plant]]:
    """Each store under contract, with a way to plant a raw record in it."""
    if request.param == "memory":
        memory = MemoryStore()
        yield memory, memory.plant
        return
    if request.param == "file":
        folder = tmp_path / "team-share"
        folder.mkdir()
        shared = shared_store(folder.as_uri(), {})

        def plant_file(key: str, blob: object, original: object, meta: object) -> None:
            path = folder / shared.root / "records" / f"{key}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(record_json(key, blob, original, meta))

        yield shared, plant_file
        return
    if request.param == "layered-moto":
        server = request.getfixturevalue("moto_s3")
        url = server.url()
        with layered(LocalStore(tmp_path / "cache"), url, environ=server.environ()) as store:
            store.prepare()

            def plant_s3(key: str, blob: object, original: object, meta: object) -> None:
                path = f"{store.remote.root}/records/{key}.json"
                obstore.put(server.raw(), path, record_json(key, blob, original, meta))

            yield store, plant_s3
        return
    with LocalStore(tmp_path / "cache") as local:
        local.prepare()

        def plant_local(key: str, blob: object, original: object, meta: object) -> None:
            with sqlite3.connect(local.index_path) as db:
                db.execute(
                    "INSERT OR REPLACE INTO entries (key, blob, original, meta) "
                    "VALUES (?, ?, ?, ?)",
                    (key, blob, original, meta),
                )
            db.close()

        yield local, plant_local


@pytest.fixture
def store(store_and_plant: tuple[Any, Plant]) -> Any:
    """Each store under contract."""
    return store_and_plant[0]


# -- the contract, for every store -------------------------------------------------------


def test_store_has_the_protocols_operations(store: Any) -> None:
    """Every store has every ResultStore operation (the structural check; the tests
    below check what the operations do)."""
    assert isinstance(store, ResultStore)


def test_commit_then_get_returns_the_bytes_record_and_original(store: Any) -> None:
    """A committed result comes back byte for byte: the same record from commit, lookup
    and get, and the API's original bytes by their sha256."""
    record = store.commit(req("k1"), b"delivered", b"original", {"request_id": "req_1"})
    assert record == CacheRecord(
        blob=sha256_bytes(b"delivered"),
        original=sha256_bytes(b"original"),
        meta=kept(req("k1"), request_id="req_1"),
    )
    assert store.lookup(req("k1")) == record
    assert store.get(req("k1")) == (record, b"delivered")
    assert store.read_blob(sha256_bytes(b"original")) == b"original"


def test_original_equal_to_delivered_is_not_named_twice(store: Any) -> None:
    """When delivery changed nothing, the record's original is None."""
    record = store.commit(req("k"), b"same", b"same")
    assert record == CacheRecord(blob=sha256_bytes(b"same"), original=None, meta=kept(req("k")))


def test_missing_key_and_unknown_blob_are_misses(store: Any) -> None:
    """An unknown key is None from lookup and get; an unknown sha256 is None from read_blob."""
    assert store.lookup(req("nope")) is None
    assert store.get(req("nope")) is None
    assert store.read_blob(GOOD) is None


@pytest.mark.parametrize(
    ("blob", "original"),
    [("../../victim", None), (GOOD.upper(), None), (GOOD[:63], None), (GOOD, "../../victim")],
    ids=["blob-path", "blob-uppercase", "blob-short", "original-path"],
)
def test_record_with_a_bad_blob_name_is_refused(
    store_and_plant: tuple[Any, Plant], blob: str, original: str | None
) -> None:
    """A stored record naming a blob by anything but a sha256 is a miss (never a path),
    even when the named bytes exist under the good name."""
    store, plant = store_and_plant
    store.commit(req("other"), b"good")
    plant(req("k").key, blob, original, meta_text(req("k")))
    assert store.lookup(req("k")) is None
    assert store.get(req("k")) is None
    assert store.read_blob(blob if original is None else original) is None
    assert store.lookup(req("other")) == CacheRecord(
        blob=GOOD, original=None, meta=kept(req("other"))
    )


def test_commit_refuses_metadata_it_could_not_read_back(store: Any) -> None:
    """Metadata of the wrong type is a ValueError at commit, and nothing is recorded."""
    with pytest.raises(
        ValueError, match=f"cache metadata of {req('k').key[:12]} is not what a record may hold"
    ):
        store.commit(req("k"), b"x", None, {"cost_usd": "1.00"})
    assert store.lookup(req("k")) is None


def test_records_never_name_a_path() -> None:
    """CacheRecord itself refuses a blob or original that is not a sha256, whatever store
    builds it."""
    with pytest.raises(ValueError, match=r"not a blob name: '\.\./\.\./victim'"):
        CacheRecord(blob="../../victim")
    with pytest.raises(ValueError, match=r"not a blob name: 'ABC'"):
        CacheRecord(blob=GOOD, original="ABC")


# -- the runner's side needs only the protocol --------------------------------------------


def states_of(project: Any, store: ResultStore | None) -> dict[str, JobState]:
    """The plan's job states against an empty manifest and ``store``."""
    ws = api.open_workspace(api.Request(project=project.root, flags={"provider": "preview"}))
    return assess(ws.plan, Manifest.empty(), store, OutputTree(project.root / "output"))


def rendition_op(project: Any, job_id: str) -> RenditionOp:
    """The operations of the rendition job ``job_id``."""
    ws = api.open_workspace(api.Request(project=project.root, flags={"provider": "preview"}))
    job = next(j for j in ws.plan.jobs if j.id == job_id)
    assert job.kind == "rendition"
    return job.op


def request_of(project: Any, job_id: str, shas: Mapping[str, str]) -> CacheRequest:
    """What job ``job_id``'s result is made from, given its inputs' delivered sha256."""
    ws = api.open_workspace(api.Request(project=project.root, flags={"provider": "preview"}))
    request = job_request(next(j for j in ws.plan.jobs if j.id == job_id), shas)
    assert request is not None
    return request


def test_assess_reads_cached_results_through_the_protocol_alone(project: Any) -> None:
    """Freshness finds a cached generation in the in-memory store, and keys the rendition
    and the edit on the cached bytes' sha256, calling nothing but lookup."""
    project.gen({"specs/s.yaml": SPEC})
    memory = MemoryStore()
    assert states_of(project, memory)["s/a"] == JobState("generate", A_KEY, None, "new")
    memory.commit(request_of(project, "s/a", {}), b"a's image")
    sha = sha256_bytes(b"a's image")
    states = states_of(project, memory)
    assert states["s/a"] == JobState("cached", A_KEY, sha, "in the cache")
    rendition = states["s/a@64x64.webp"]
    op = rendition_op(project, "s/a@64x64.webp")
    assert rendition == JobState("render", rendition_cache_key(sha, op), None, "new")
    assert rendition.cache_key is not None
    edit_key = states["s/edit"].cache_key
    assert (states["s/edit"].status, states["s/edit"].reason) == ("generate", "new")
    assert edit_key is not None
    memory.commit(request_of(project, "s/edit", {"s/a": sha}), b"the edit")
    memory.commit(request_of(project, "s/a@64x64.webp", {"s/a": sha}), b"the rendition")
    again = states_of(project, memory)
    assert again["s/edit"] == JobState(
        "cached", edit_key, sha256_bytes(b"the edit"), "in the cache"
    )
    assert again["s/a@64x64.webp"] == JobState(
        "cached", rendition.cache_key, sha256_bytes(b"the rendition"), "in the cache"
    )
    assert set(memory.calls) == {"lookup", "commit"}


def test_assess_sees_the_same_states_in_either_store(project: Any, tmp_path: Path) -> None:
    """The same results committed to the local store and to the in-memory store give the
    same plan states: the stores are interchangeable behind the protocol."""
    project.gen({"specs/s.yaml": SPEC})
    memory = MemoryStore()
    with LocalStore(tmp_path / "cache") as local:
        for store in (memory, local):
            store.commit(request_of(project, "s/a", {}), b"a's image")
        edit_key = states_of(project, memory)["s/edit"].cache_key
        assert edit_key is not None
        edit = request_of(project, "s/edit", {"s/a": sha256_bytes(b"a's image")})
        assert edit.key == edit_key
        for store in (memory, local):
            store.commit(edit, b"the edit", b"the edit as returned", {"cost_usd": 0.01})
        assert states_of(project, local) == states_of(project, memory)
        assert [s.status for s in states_of(project, local).values()] == [
            "cached",
            "render",
            "cached",
        ]


def test_input_reader_takes_delivered_bytes_from_any_store(project: Any) -> None:
    """An edit's input comes from the store by sha256, with no output file on disk; on a
    store miss it comes from the output file, checked against the same sha256."""
    project.gen({"specs/s.yaml": SPEC})
    ws = api.open_workspace(api.Request(project=project.root, flags={"provider": "preview"}))
    job = next(j for j in ws.plan.jobs if j.id == "s/a")
    memory = MemoryStore()
    record = memory.commit(request_of(project, "s/a", {}), b"a's image")
    reader = InputReader(memory, OutputTree(project.root / "output"), project.root)
    assert reader.delivered(job, record.blob) == b"a's image"
    assert memory.calls == ["commit", "read_blob"]
    output = project.root / "output" / job.output_path
    output.parent.mkdir(parents=True)
    output.write_bytes(b"on disk")
    assert InputReader(MemoryStore(), OutputTree(output.parents[1]), project.root).delivered(
        job, sha256_bytes(b"on disk")
    ) == (b"on disk")
    with pytest.raises(RuntimeError, match=r"s/a\.png changed during the build"):
        InputReader(MemoryStore(), OutputTree(output.parents[1]), project.root).delivered(
            job, record.blob
        )
