"""What reaches the terminal: text assetpipe did not write is printed inert.

A server's error message, a cache record's notes, an asset name in ``assetpipe.lock`` and a
path in a hand-edited manifest are all untrusted. Printed raw, an ESC sequence in them could
retitle the terminal, plant a hyperlink or clear the screen, and a CR/LF could forge a line
of a CI log ("FAKE LINE: all green"). Each test plants such text where an attacker can put
it, drives the real CLI (the real ``openai`` SDK against the fake API where a server is
involved) and pins that stdout and stderr hold no raw control character, that the text is
shown escaped (``\\x1b``, ``\\r\\n``), and that what assetpipe stores keeps it verbatim: the
escaping happens where text is printed, not in the data.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from fakeapi import ApiError, FakeImagesAPI
from processes import many
from rich.console import Console

from pipeline.cli import commands
from pipeline.cli.batch import error_line
from pipeline.jobs.batch import BatchError

HOSTILE = "refused \x1b]0;pwned\x07 and \x9b2J\r\nFAKE LINE: set/a1 generated"
"""A server's text: an OSC title change, a C1 CSI (clear screen) and a forged log line."""
SHOWN = r"refused \x1b]0;pwned\x07 and \x9b2J\r\nFAKE LINE: set/a1 generated"
"""The same text as the terminal must show it: every control written out."""
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")
"""Any C0 control but the newline that ends each printed line, DEL, or a C1 control."""


def assert_inert(*texts: str) -> None:
    """No raw control character in what was printed, and no line the attacker started."""
    for text in texts:
        assert RAW_CONTROL.search(text) is None, repr(text)
        assert not any(line.startswith("FAKE LINE") for line in text.splitlines()), text


def hostile_refusal() -> ApiError:
    """A moderation refusal whose message is :data:`HOSTILE`."""
    return ApiError(400, HOSTILE, type_="image_generation_user_error", code="moderation_blocked")


@pytest.fixture
def hostile_api(api: FakeImagesAPI, monkeypatch: pytest.MonkeyPatch) -> FakeImagesAPI:
    """The fake API (``--provider openai`` reaches it) whose moderation refusals, of a
    synchronous request as of a batch line, carry :data:`HOSTILE`; batches poll fast."""
    monkeypatch.setattr(FakeImagesAPI, "_moderation_error", staticmethod(hostile_refusal))
    monkeypatch.setenv("ASSETPIPE_BATCH_POLL_SECONDS", "0.01")
    return api


def failed_line(job: str, printed: str) -> str:
    """The one line that reports ``job`` failed (plain ``failed    job: ...`` or quiet
    ``failed: job: ...``)."""
    (line,) = (x for x in printed.splitlines() if x.startswith("failed") and f" {job}: " in x)
    return line


def entries(project: Any) -> dict[str, dict[str, Any]]:
    doc = json.loads((project / "output/manifest.json").read_text("utf-8"))
    return {e["job"]: e for e in doc["entries"]}


# -- 1. API error messages ------------------------------------------------------------------


@pytest.mark.parametrize("flags", [(), ("-v",), ("-q",)], ids=["plain", "verbose", "quiet"])
def test_an_api_error_message_is_printed_escaped_and_kept_verbatim(
    project, run, hostile_api, flags
):
    """A 400 whose message holds an OSC sequence, a C1 CSI and CR/LF plus a fake log line:
    the failed job's line (plain, verbose and quiet reporters alike) shows the message with
    every control escaped, nothing raw reaches stdout or stderr, and the manifest keeps the
    server's message exactly as sent."""
    project.gen({"specs/set.yaml": many(1)})
    hostile_api.script = ["moderation"]
    result = run("build", "--provider", "openai", *flags)
    assert result.code == 1, result.err
    assert_inert(result.out, result.err)
    assert failed_line("set/a1", result.err).endswith(SHOWN)
    assert HOSTILE in entries(project)["set/a1"]["error"]["message"]


def test_build_json_quotes_a_hostile_api_error_as_valid_json(project, run, hostile_api):
    """``build --json`` stays one valid JSON document: the message's controls are JSON
    escapes, nothing raw is printed, and a JSON reader gets the message back verbatim."""
    project.gen({"specs/set.yaml": many(1)})
    hostile_api.script = ["moderation"]
    result = run("build", "--provider", "openai", "--json")
    assert result.code == 1, result.err
    assert_inert(result.out, result.err)
    summary = json.loads(result.out)
    assert HOSTILE in summary["failed"][0]["error"]["message"]


def test_the_live_progress_display_prints_an_api_error_escaped(
    project, run, hostile_api, monkeypatch
):
    """On a terminal (the live progress bar, which draws with escape sequences of its
    own) the failed job's message is printed escaped: the attacker's OSC title change and
    the CR/LF before the fake line never reach the terminal raw."""
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=200, highlight=False)
    monkeypatch.setattr(commands, "err", terminal)
    project.gen({"specs/set.yaml": many(1)})
    hostile_api.script = ["moderation"]
    result = run("build", "--provider", "openai")
    assert result.code == 1, result.err
    shown = screen.getvalue()
    assert SHOWN in shown
    assert "\x1b]0;pwned" not in shown
    assert "\r\nFAKE LINE" not in shown
    assert "\x9b" not in shown


# -- 2. Batch error messages ----------------------------------------------------------------


def test_a_batch_line_error_is_printed_escaped(project, run, hostile_api):
    """``build --batch`` where the Batch API answers a line with the hostile refusal: the
    failed job's line shows the message escaped, nothing raw is printed, and the manifest
    keeps the message verbatim."""
    project.gen({"specs/set.yaml": many(2)})
    hostile_api.batch.configure(line_faults={"prompt:number 1": "moderation"})
    result = run("build", "--batch", "--provider", "openai")
    assert result.code == 1, result.err
    assert_inert(result.out, result.err)
    assert failed_line("set/a1", result.err).endswith(SHOWN)
    assert HOSTILE in entries(project)["set/a1"]["error"]["message"]
    assert entries(project)["set/a2"]["status"] == "generated"


def test_batch_status_shows_a_batch_error_escaped():
    """An error the Batch API gives for a whole batch (``batch status`` lists them): its
    code and message are the server's, and the line is printed with both escaped. (The
    fake batch server only sends fixed batch-level errors, so this pins the formatter.)"""
    error = BatchError(code="invalid\x1b[2J", message=HOSTILE, line=3)
    screen = io.StringIO()
    Console(file=screen, width=200, highlight=False).print(error_line(error))
    printed = screen.getvalue()
    assert_inert(printed)
    assert printed == f"  error (line 3): invalid\\x1b[2J {SHOWN}\n"


# -- 3. notes read back from a cache record -------------------------------------------------


def plant_notes(index: Path, notes: list[str]) -> None:
    """Set the notes of every record of assetpipe's cache index (plain SQL)."""
    db = sqlite3.connect(index)
    for key, meta in db.execute("SELECT key, meta FROM entries").fetchall():
        changed = {**json.loads(meta), "notes": notes}
        db.execute("UPDATE entries SET meta = ? WHERE key = ?", (json.dumps(changed), key))
    db.commit()
    db.close()


def test_cache_record_notes_are_printed_escaped(project, run):
    """A cache record whose notes hold ESC sequences and CR/LF (a planted index, or one a
    shared cache handed down): the build that restores from it reports the note as a
    failed check with every control escaped, prints nothing raw, and the manifest keeps
    the note as the record had it."""
    project.gen({"specs/set.yaml": many(1)})
    assert run("build", "--provider", "preview").code == 0
    plant_notes(project / ".assetpipe/cache/index.db", [HOSTILE])
    shutil.rmtree(project / "output")
    result = run("build", "--provider", "preview")
    assert result.code == 0, result.err
    assert_inert(result.out, result.err)
    assert f"  set/a1: response: {SHOWN}" in result.err
    entry = entries(project)["set/a1"]
    assert entry["status"] == "cached"
    assert [c["detail"] for c in entry["checks"] if c["name"] == "response"] == [HOSTILE]


# -- 4. asset names in assetpipe.lock -------------------------------------------------------

LOCKED_NAME = "gone\x1b]0;pwned\x07\x9b2J/old"
"""A lock entry's name: a collection part with an OSC sequence and a C1 CSI in it."""
PLANTED_LOCK = f"""version = 1

[assets.{json.dumps(LOCKED_NAME)}]
variant = 1
cache_key = "{"a" * 64}"
sha256 = "{"b" * 64}"
format = "png"
"""


@pytest.mark.parametrize(
    "args",
    [("check", "--require-review"), ("unpick", "set/a1")],
    ids=["check", "unpick"],
)
def test_a_lock_entry_name_is_printed_escaped(project, run, args):
    """``assetpipe.lock`` naming an asset with an ESC sequence and a C1 control in it:
    ``check --require-review`` (which lists picks no spec has) and ``unpick`` (whose error
    lists the picked assets) print the name escaped and nothing raw. Whether the lock
    accepts such a name is the lock's own rule; either way it never reaches the terminal
    raw."""
    project.gen({"specs/set.yaml": many(1), "assetpipe.lock": PLANTED_LOCK})
    result = run(*args, "--provider", "preview")
    assert result.code != 0
    assert_inert(result.out, result.err)
    printed = result.out + result.err
    assert r"gone\x1b]0;pwned\x07\x9b2J/old" in printed or r"gone\u001b]0;pwned" in printed


# -- 5. paths in a hand-edited manifest -----------------------------------------------------

KEPT = "set/a2\x1b]8;;evil.example\x1b\\\r\nFAKE LINE.png"
"""A manifest path with an OSC 8 hyperlink and CR/LF, whose file exists as named."""
MISSING = "set/gone\x1b[2J\r\nFAKE LINE.png"
"""A manifest path with a clear-screen sequence and CR/LF, whose file is gone."""


def test_manifest_paths_in_stale_and_prune_lines_are_printed_escaped(project, run):
    """A hand-edited manifest whose stale entries have control characters in their
    paths: ``check --stale`` lists the remaining file escaped, and ``build --prune``
    prints the one it deletes and warns about the one it cannot with every control
    escaped; nothing raw is printed, and the file with the odd name is pruned like any
    other."""
    project.gen({"specs/set.yaml": many(2)})
    assert run("build", "--provider", "preview").code == 0
    manifest = project / "output/manifest.json"
    doc = json.loads(manifest.read_text("utf-8"))
    moved = next(e for e in doc["entries"] if e["job"] == "set/a2")
    (project / "output" / moved["path"]).rename(project / "output" / KEPT)
    moved["path"] = KEPT
    doc["entries"].append({**moved, "job": "set/gone", "path": MISSING})
    manifest.write_text(json.dumps(doc), "utf-8")
    project.gen({"specs/set.yaml": many(1)})

    stale = run("check", "--stale", "--provider", "preview")
    assert stale.code == 1, stale.err
    assert_inert(stale.out, stale.err)
    shown_kept = r"set/a2\x1b]8;;evil.example\x1b\\r\nFAKE LINE.png"
    shown_missing = r"set/gone\x1b[2J\r\nFAKE LINE.png"
    assert stale.out.splitlines()[0] == f"stale     {shown_kept}"  # (a gone file is no file)

    pruned = run("build", "--prune", "--provider", "preview")
    assert pruned.code == 0, pruned.err
    assert_inert(pruned.out, pruned.err)
    assert f"pruned {shown_kept}\n" in pruned.out
    assert f"WARNING: not pruning {shown_missing}: it changed since" in pruned.err
    assert not (project / "output" / KEPT).exists()


# -- the JSON documents -----------------------------------------------------------------------


def test_plan_json_writes_c1_controls_of_a_prompt_as_json_escapes(project, run):
    """``plan --json`` keeps non-ASCII text readable, yet a C1 control or DEL in a prompt
    (JSON allows them raw) is written as a ``\\u`` escape: nothing raw is printed and a
    JSON reader gets the prompt back verbatim."""
    project.gen(
        {
            "specs/set.yaml": """
                assets:
                  - id: odd
                    prompt: "café \\x9b2J \\x7f \\e]0;pwned\\a"
                    size: 1024x1024
                    quality: low
            """
        }
    )
    result = run("plan", "--json", "--provider", "preview")
    assert result.code == 0, result.err
    assert_inert(result.out, result.err)
    assert "café" in result.out
    (job,) = json.loads(result.out)["jobs"]
    assert job["prompt"] == "café \x9b2J \x7f \x1b]0;pwned\x07"
