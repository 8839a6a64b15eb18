"""``assetpipe watch``: a save re-renders what it changed, free, into its own tree.

The loop runs in a thread (or as the real command) and reports each round; the tests wait
for those reports with generous timeouts and assert what was rendered, never how fast.
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from processes import ASSETPIPE
from review_kit import sha

from pipeline import api
from pipeline.review.watch import WatchEvent, watch_project

SPEC = """
    assets:
      - id: hero
        template: hero.j2
        size: 256x256
        variants: 2
      - id: villain
        prompt: "a sly villain"
        size: 256x256
"""
WAIT = 120.0
PREVIEWS = ".assetpipe/watch/output"


@pytest.fixture
def watching(project) -> Iterator[queue.Queue[WatchEvent]]:
    """``watch_project`` on the project in a thread, every round's event in a queue."""
    project.gen({"specs/chars.yaml": SPEC, "templates/hero.j2": "a brave knight"})
    events: queue.Queue[WatchEvent] = queue.Queue()
    stop = threading.Event()
    thread = threading.Thread(
        target=watch_project,
        args=(api.Request(project=project.root), events.put),
        kwargs={"interval": 0.05, "stop": stop},
        daemon=True,
    )
    thread.start()
    yield events
    stop.set()
    thread.join(WAIT)
    assert not thread.is_alive()


def previews(project: Any) -> dict[str, dict[str, Any]]:
    doc = json.loads((project / PREVIEWS / "manifest.json").read_text("utf-8"))
    return {e["job"]: e for e in doc["entries"]}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text("utf-8")
    assert old in text
    path.write_text(text.replace(old, new), "utf-8")


def test_a_saved_spec_change_re_renders_only_that_assets_preview(project, watching):
    first = watching.get(timeout=WAIT)
    assert (first.kind, first.rendered) == (
        "rendered",
        ("chars/hero", "chars/hero#2", "chars/villain"),
    )
    assert first.output == project.root / PREVIEWS
    hero = project / PREVIEWS / "chars/hero.png"
    before = (sha(hero), hero.stat().st_mtime_ns)

    edit(project / "specs/chars.yaml", "a sly villain", "a sly villain with a cape")
    event = watching.get(timeout=WAIT)
    assert (event.kind, event.rendered) == ("rendered", ("chars/villain",))
    assert previews(project)["chars/villain"]["prompt"] == "a sly villain with a cape"
    assert previews(project)["chars/villain"]["provider"] == "preview"
    assert (sha(hero), hero.stat().st_mtime_ns) == before  # untouched, not redrawn
    assert not (project / "output").exists()  # real art's tree is never written


def test_templates_and_the_lock_are_watched_too(project, watching):
    assert watching.get(timeout=WAIT).kind == "rendered"
    edit(project / "templates/hero.j2", "a brave knight", "a weary knight")
    event = watching.get(timeout=WAIT)
    assert event.rendered == ("chars/hero", "chars/hero#2")
    assert previews(project)["chars/hero#2"]["prompt"] == "a weary knight"

    # A reroll recorded in the lock (by the page or by hand) previews the new variant.
    (project / "assetpipe.lock").write_text(
        'version = 1\n\n[assets."chars/hero"]\nrerolls = 1\n', "utf-8"
    )
    event = watching.get(timeout=WAIT)
    assert event.rendered == ("chars/hero#3",)
    assert (project / PREVIEWS / "chars/hero.v3.png").is_file()


def test_a_spec_error_is_reported_at_its_line_and_watching_goes_on(project, watching):
    assert watching.get(timeout=WAIT).kind == "rendered"
    edit(project / "specs/chars.yaml", "- id: villain", "- idd: villain")
    event = watching.get(timeout=WAIT)
    assert event.kind == "error"
    assert event.errors[0] == "specs/chars.yaml:6:5: 'id' is required\n  hint: add 'id: ...'"
    assert any("idd" in e for e in event.errors[1:]), event.errors
    edit(project / "specs/chars.yaml", "- idd: villain", "- id: villain")
    event = watching.get(timeout=WAIT)
    assert (event.kind, event.rendered) == ("rendered", ())  # back; nothing new to draw


def test_real_art_in_output_is_never_overwritten(project, run):
    """A picked, paid-for image stays as it is: previews go to their own tree."""
    project.gen({"specs/chars.yaml": SPEC, "templates/hero.j2": "a brave knight"})
    assert run("build", "--provider", "preview").code == 0
    assert run("pick", "chars/hero#2", "--provider", "preview").code == 0
    assert run("build", "--provider", "preview").code == 0
    out = project / "output"
    real = {p: sha(p) for p in out.rglob("*.png")}
    manifest = (out / "manifest.json").read_bytes()
    edit(project / "specs/chars.yaml", "a sly villain", "a grumpy villain")
    from pipeline.review.watch import render_once

    event, _ = render_once(api.Request(project=project.root))
    assert event.kind == "rendered", event
    assert event.rendered == ("chars/hero", "chars/hero#2", "chars/villain")
    assert {p: sha(p) for p in out.rglob("*.png")} == real
    assert (out / "manifest.json").read_bytes() == manifest
    # Previews plan no picks: each variant at its plain path, as before any pick.
    assert set(previews(project)) == {"chars/hero", "chars/hero#2", "chars/villain"}


def test_the_watch_command_prints_each_round_and_survives_a_broken_spec(project):
    project.gen({"specs/chars.yaml": SPEC, "templates/hero.j2": "a brave knight"})
    command = [*ASSETPIPE, "watch", "--interval", "0.1", "--project", str(project.root)]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        lines: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(
            target=lambda: [lines.put(line) for line in proc.stdout or ()], daemon=True
        )
        reader.start()

        def next_line(containing: str) -> str:
            while True:
                line = lines.get(timeout=WAIT)
                if containing in line:
                    return line

        try:
            assert "3 rendered" in next_line("previews:")
            (project / "specs/chars.yaml").write_text("assets:\n  - id: [\n", "utf-8")
            assert "specs/chars.yaml:" in next_line("error:")
            next_line("watching for the next save")
            project.gen({"specs/chars.yaml": SPEC.replace("sly", "sneaky")})
            assert "1 rendered (chars/villain)" in next_line("previews:")
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(WAIT)
        assert proc.returncode == 130
