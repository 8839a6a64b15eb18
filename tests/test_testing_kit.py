"""``pipeline.testing``: the public test doubles do what docs/plugins.md says they do.

The kit is public API, so its names are pinned (as httpx pins its exported members), each
double's documented behaviour has a test here, and the examples in docs/plugins.md are run
as written. ``MemoryStore`` is also one of the stores the contract tests of
``tests/test_store_protocol.py`` run against.
"""

from __future__ import annotations

import asyncio
import importlib
import io
import re
import threading
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from store_kit import meta_text, req

import pipeline.testing
from pipeline.jobs import ImageRequest, ImageResult, ProviderFailure
from pipeline.store import ResultStore
from pipeline.testing import FakeClock, MemoryStore, ScriptedProvider

DOCS = Path(__file__).parents[1] / "docs" / "plugins.md"
REQUEST = ImageRequest("generate", "gpt-image-1", "a red fox", {"size": "64x48"})


def kit_section() -> str:
    """The "Testing a plugin" section of docs/plugins.md."""
    text = DOCS.read_text("utf-8")
    return text[text.index("## Testing a plugin") :]


# -- the exported members ------------------------------------------------------------------


def test_all_is_exactly_the_public_names_the_module_defines() -> None:
    """``__all__`` lists every public name defined in the module and nothing else, so a
    helper cannot become public by accident or stay private by omission."""
    defined = sorted(
        name
        for name, value in vars(pipeline.testing).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == "pipeline.testing"
    )
    assert pipeline.testing.__all__ == defined == ["FakeClock", "MemoryStore", "ScriptedProvider"]


@pytest.mark.parametrize("name", pipeline.testing.__all__)
def test_each_exported_name_is_importable_documented_and_explained(name: str) -> None:
    """Each name imports from ``pipeline.testing``, has a docstring saying what it is for,
    and is in the module's docstring and the docs' table."""
    value = getattr(importlib.import_module("pipeline.testing"), name)
    assert value.__doc__ and value.__doc__.strip()
    assert f":class:`{name}`" in (pipeline.testing.__doc__ or "")
    assert f"| `{name}` |" in kit_section()


# -- FakeClock -----------------------------------------------------------------------------


def test_fake_clock_moves_only_when_the_code_sleeps() -> None:
    """Sleeping takes no time but advances the clock by what was asked, recording each
    sleep, and lets other tasks run as a real sleep would; ``now`` can be moved by hand."""
    clock = FakeClock()
    ran: list[float] = []

    async def other() -> None:
        ran.append(clock())

    async def main() -> None:
        task = asyncio.create_task(other())
        await clock.sleep(600.0)
        await clock.sleep(0.5)
        await task

    assert clock() == 0.0
    asyncio.run(main())
    assert ran == [600.0]
    assert clock.sleeps == [600.0, 0.5]
    assert clock() == 600.5
    clock.now += 10
    assert clock() == 610.5
    assert clock.sleeps == [600.0, 0.5]


# -- MemoryStore ---------------------------------------------------------------------------


def test_memory_store_is_a_result_store_that_records_what_it_was_asked() -> None:
    """It is a ResultStore; a commit reads back byte for byte, and ``calls`` names each
    operation in order (``get`` is a lookup and a read)."""
    store = MemoryStore()
    assert isinstance(store, ResultStore)
    record = store.commit(req("k"), b"delivered")
    assert store.get(req("k")) == (record, b"delivered")
    assert store.calls == ["commit", "get", "lookup", "read_blob"]
    store.close()
    assert store.closed


def test_memory_store_planted_records_are_misses_and_altered_bytes_are_not_read() -> None:
    """A record planted under another request's key, or naming a path, is a miss; bytes
    that no longer hash to their name are not returned."""
    store = MemoryStore()
    record = store.commit(req("mine"), b"image")
    store.plant(req("theirs").key, record.blob, None, meta_text(req("mine")))
    store.plant(req("path").key, "../../victim", None, meta_text(req("path")))
    assert store.lookup(req("theirs")) is None
    assert store.lookup(req("path")) is None
    store.blobs[record.blob] = b"altered"
    assert store.read_blob(record.blob) is None
    assert store.get(req("mine")) is None


def test_memory_store_takes_commits_from_many_threads() -> None:
    """The runner commits from writer threads: every commit made at once is kept."""
    store = MemoryStore()
    names = [f"k{i}" for i in range(64)]
    threads = [threading.Thread(target=store.commit, args=(req(n), n.encode())) for n in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [store.get(req(n)) is not None for n in names] == [True] * len(names)
    assert store.calls.count("commit") == len(names)


# -- ScriptedProvider ----------------------------------------------------------------------


def send(provider: ScriptedProvider, *requests: ImageRequest) -> list[ImageResult | str]:
    """Each request's result, or the kind of the failure it raised, in order."""

    async def go() -> list[ImageResult | str]:
        answers: list[ImageResult | str] = []
        for request in requests:
            try:
                answers.append(await provider.generate(request))
            except ProviderFailure as failure:
                answers.append(failure.kind)
        return answers

    return asyncio.run(go())


def test_scripted_provider_answers_in_order_then_draws_previews() -> None:
    """Scripted results are returned and failures raised in order; once the script is
    used up, the preview draws a real image of the size asked for. Every request is kept."""
    mine = ImageResult(b"scripted bytes", "png", request_id="req_1")
    provider = ScriptedProvider([ProviderFailure("server", "boom"), mine])
    assert provider.name == "scripted"
    first, second, third = send(provider, REQUEST, REQUEST, REQUEST)
    assert (first, second) == ("server", mine)
    assert isinstance(third, ImageResult)
    with Image.open(io.BytesIO(third.data)) as image:
        assert (image.format, image.size) == ("PNG", (64, 48))
    assert provider.requests == [REQUEST] * 3
    assert not provider.script


def test_scripted_provider_scripts_one_prompt_and_passes_the_rest_on() -> None:
    """With ``prompt``, only requests with that prompt take scripted answers; the others
    go to ``otherwise``; closing the provider closes ``otherwise``."""
    other = ImageRequest("generate", "gpt-image-1", "a grey wolf", {"size": "64x48"})
    behind = ScriptedProvider([ImageResult(b"from behind", "png")] * 2, name="behind")
    provider = ScriptedProvider(
        [ProviderFailure("rate_limit", "slow down")], prompt="a red fox", otherwise=behind
    )
    answers = send(provider, other, REQUEST, REQUEST)
    assert answers == [
        ImageResult(b"from behind", "png"),
        "rate_limit",
        ImageResult(b"from behind", "png"),
    ]
    assert provider.prompts == ["a grey wolf", "a red fox", "a red fox"]
    assert behind.prompts == ["a grey wolf", "a red fox"]
    asyncio.run(provider.aclose())
    assert provider.closed and behind.closed


# -- the documented examples ---------------------------------------------------------------


def documented_tests() -> dict[str, Any]:
    """The python blocks of "Testing a plugin", run in one namespace as a plugin's module
    and tests would be (its imports of the plugin's own package left out)."""
    blocks = re.findall(r"```python\n(.*?)```", kit_section(), flags=re.DOTALL)
    namespace: dict[str, Any] = {"__name__": "plugin_example"}
    for block in blocks:
        code = "\n".join(line for line in block.splitlines() if not line.startswith("from mypkg"))
        exec(compile(code, str(DOCS), "exec"), namespace)  # noqa: S102 - our own docs
    return {name: value for name, value in namespace.items() if name.startswith("test_")}


def test_the_documented_examples_pass() -> None:
    """Each test in docs/plugins.md passes as written (there are two)."""
    tests = documented_tests()
    assert sorted(tests) == [
        "test_a_record_filed_under_another_request_is_a_miss",
        "test_the_primary_rests_for_a_minute_after_a_server_error",
    ]
    for test in tests.values():
        test()
