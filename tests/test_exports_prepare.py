"""Exporters prepare while a build's requests are out: the gallery's template, compiled."""

from __future__ import annotations

import dataclasses
import json
import threading
from typing import ClassVar

from pipeline.api.exports import prepare_exports
from pipeline.exports import configured_exports
from pipeline.exports.gallery import GalleryExporter
from pipeline.gallery import page

SPEC = """
assets:
  - id: sword
    prompt: "A sword"
    size: 1024x1024
"""


class Failing(GalleryExporter):
    """A gallery whose preparing fails: the page is still written by its render."""

    name: ClassVar[str] = "failing"
    tried: ClassVar[list[str]] = []

    @classmethod
    def prepare(cls) -> None:
        cls.tried.append("prepare")
        raise RuntimeError("no template today")


def test_the_gallery_compiles_its_page_on_a_thread_of_its_own() -> None:
    (gallery,) = configured_exports(None, None)
    page._ENV.clear()
    thread = prepare_exports((gallery,))
    assert thread is not None and thread.daemon
    thread.join()
    assert page._ENV, "the page's template is compiled"
    compiled = page._ENV[0]
    page.prepare_page()
    assert len(page._ENV) == 1
    assert page._ENV[0] is compiled, "compiled once"


def test_a_failing_preparation_is_left_for_the_export_itself() -> None:
    (gallery,) = configured_exports(None, None)
    failing = dataclasses.replace(gallery, format="failing", cls=Failing)
    thread = prepare_exports((failing,))
    assert thread is not None
    thread.join()  # the exception stayed on its thread, and did not end it early
    assert Failing.tried == ["prepare"]


def test_nothing_to_prepare_starts_no_thread() -> None:
    assert prepare_exports(()) is None


def test_a_build_with_work_prepares_the_gallery_on_its_thread_and_an_up_to_date_one_does_not(
    project, run, api, monkeypatch
) -> None:
    threads: list[str] = []
    real = page.prepare_page

    def seen() -> None:
        threads.append(threading.current_thread().name)
        real()

    monkeypatch.setattr(page, "prepare_page", seen)
    project.gen({"specs/set.yaml": SPEC})
    result = run("build", "--provider", "openai", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["counts"] == {"generated": 1}
    assert threads == ["assetpipe-prepare-exports"], "a paying build prepares"

    (image,) = (project.root / "output").glob("*/sword.png")
    image.unlink()
    restored = run("build", "--provider", "openai", "--json")
    assert restored.code == 0, restored.err
    assert json.loads(restored.out)["counts"] == {"cached": 1}
    assert threads == ["assetpipe-prepare-exports"] * 2, "a build that restores prepares too"
    assert api.stats()["requests"] == 1, "restored from the cache, not paid again"

    (project.root / "output/index.html").unlink()
    again = run("build", "--provider", "openai", "--json")
    assert again.code == 0, again.err
    assert threads == ["assetpipe-prepare-exports"] * 2, "every file up to date: nothing prepared"
    assert "sword" in (project.root / "output/index.html").read_text("utf-8")
