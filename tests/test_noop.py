"""A build with nothing to do: answered from the last build's stamp, and only when nothing
it stamped has moved; any doubt and the build runs as always."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from pipeline.api import stamps
from pipeline.api.sealing import user_sealer

SPEC = """
    assets:
      - id: "tile-{{ n }}"
        prompt: "Tile {{ n }}"
        matrix: {n: [1, 2, 3]}
        size: 1024x1024
        quality: low
        renditions: [{size: 64x64, format: webp}]
    sheets:
      - {id: tiles, tags: [], assets: ["tile-*"], frame_size: 64x64}
"""


@pytest.fixture
def built(project, run):  # type: ignore[no-untyped-def]
    """A project built once (which stores its plan) and once more (which stamps it)."""
    project.gen({"specs/tiles.yaml": SPEC})
    for _ in range(2):
        result = run("build", "--provider", "preview")
        assert result.code == 0, result.err
    assert (project / ".assetpipe" / stamps.STAMP_FILE).is_file()
    return project


@pytest.fixture
def runner_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records each time a build really runs (loads the runner)."""
    from pipeline.api import running

    calls: list[str] = []
    real = running.run_build

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append("run")
        return real(*args, **kwargs)

    monkeypatch.setattr(running, "run_build", counting)
    return calls


def summary(result) -> dict:  # type: ignore[no-untyped-def]
    return json.loads(result.out)


def test_an_unchanged_build_does_not_run(built, run, runner_calls) -> None:  # type: ignore[no-untyped-def]
    result = run("build", "--provider", "preview", "--json")
    assert result.code == 0, result.err
    assert runner_calls == []
    doc = summary(result)
    total = sum(doc["counts"].values())
    assert doc["counts"] == {"up-to-date": total}
    assert doc["failed"] == [] and doc["pruned"] == []


def test_it_says_what_a_full_check_says(built, run, runner_calls) -> None:  # type: ignore[no-untyped-def]
    quick = summary(run("build", "--provider", "preview", "--json"))
    (built / ".assetpipe" / stamps.STAMP_FILE).unlink()
    full = summary(run("build", "--provider", "preview", "--json"))
    assert runner_calls == ["run"]
    for key in ("exit_code", "counts", "failed", "failed_checks", "pruned", "manifest"):
        assert quick[key] == full[key], key


def _touch(project: Path) -> None:
    path = project / "output/tiles/tile-1.png"
    info = path.stat()
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))


def _same_bytes_new_file(project: Path) -> None:
    path = project / "output/tiles/tile-1.png"
    data = path.read_bytes()
    path.unlink()
    path.write_bytes(data)


def _changed_behind_old_time(project: Path) -> None:
    """Other bytes of the same size, the modification time put back: only the inode or
    the change time can tell."""
    path = project / "output/tiles/tile-1.png"
    info = path.stat()
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))


def _link_folder(project: Path) -> None:
    folder = project / "output/tiles"
    moved = project / "elsewhere"
    shutil.move(folder, moved)
    folder.symlink_to(moved)


def _file_link(project: Path) -> None:
    """The same bytes behind a link: only the file's type (and inode) can tell."""
    path = project / "output/tiles/tile-1.png"
    moved = project / "tile-1.png"
    shutil.move(path, moved)
    path.symlink_to(moved)


DISTURBANCES = {
    "a file turned into a link": _file_link,
    "the manifest edited": lambda p: (p / "output/manifest.json").write_text(
        (p / "output/manifest.json").read_text() + "\n"
    ),
    "the manifest removed": lambda p: (p / "output/manifest.json").unlink(),
    "a file touched": _touch,
    "a file rewritten with the same bytes": _same_bytes_new_file,
    "a file changed behind its old mtime": _changed_behind_old_time,
    "a file removed": lambda p: (p / "output/tiles/tile-2.png").unlink(),
    "a rendition removed": lambda p: (p / "output/tiles/tile-3@64x64.webp").unlink(),
    "the sheet's atlas removed": lambda p: (p / "output/tiles/tiles.json").unlink(),
    "the gallery page removed": lambda p: (p / "output/index.html").unlink(),
    "an output folder turned into a link": _link_folder,
    "a spec edited": lambda p: (p / "specs/tiles.yaml").write_text(
        (p / "specs/tiles.yaml").read_text().replace("Tile {{ n }}", "Tile number {{ n }}")
    ),
    "the stamp planted with garbage": lambda p: (p / ".assetpipe" / stamps.STAMP_FILE).write_bytes(
        b"\x00garbage"
    ),
    "the stamp naming a path outside": lambda p: _plant_outside(p),  # noqa: PLW0108 - defined below
    "an unsealed stamp listing no files, a file gone": lambda p: _plant_unsealed_empty(p),  # noqa: PLW0108
}


def _stamp(project: Path) -> tuple[Path, dict[str, Any]]:
    path = project / ".assetpipe" / stamps.STAMP_FILE
    opened = user_sealer().open("last build", path.read_bytes())
    assert opened is not None
    return path, json.loads(opened)


def _plant_outside(project: Path) -> None:
    """Sealed with the user's own key: the path check holds even for a stamp that is."""
    path, doc = _stamp(project)
    doc["paths"] += "\n../../etc/passwd"
    sealed = user_sealer().seal("last build", json.dumps(doc).encode())
    assert sealed is not None
    path.write_bytes(sealed)


def _plant_unsealed_empty(project: Path) -> None:
    """What an attacker who can write ``.assetpipe/`` but not read the user's key can
    plant: the stamp of this very plan and manifest, listing no files, with a file gone."""
    path, doc = _stamp(project)
    doc["paths"], doc["status"] = "", stamps._status_digest(project / "output", "")
    path.write_text(json.dumps(doc))
    (project / "output/tiles/tile-2.png").unlink()


@pytest.mark.parametrize("what", sorted(DISTURBANCES))
def test_any_change_makes_the_build_run(built, run, runner_calls, what: str) -> None:  # type: ignore[no-untyped-def]
    DISTURBANCES[what](built)
    result = run("build", "--provider", "preview")
    assert runner_calls == ["run"], f"{what}: the build answered from the stamp"
    if "link" not in what:  # a build refuses to write through a link
        assert result.code == 0, result.err
    if what.startswith("an unsealed stamp"):
        assert (built / "output/tiles/tile-2.png").is_file()  # the missing file is back
        assert "was not written by this user's assetpipe" in result.err


@pytest.mark.parametrize(
    "flags",
    [("--force",), ("--prune",), ("--only", "tiles/tile-1"), ("--strict-checks", "--only", "*")],
)
def test_flags_that_ask_for_more_run_the_build(built, run, runner_calls, flags) -> None:  # type: ignore[no-untyped-def]
    result = run("build", "--provider", "preview", *flags)
    assert result.code == 0, result.err
    if flags[0] in ("--force", "--prune") or flags[:2] == ("--only", "tiles/tile-1"):
        assert runner_calls == ["run"]


def test_a_selection_is_stamped_on_its_own(built, run, runner_calls) -> None:  # type: ignore[no-untyped-def]
    run("build", "--provider", "preview", "--only", "tiles/tile-1")
    run("build", "--provider", "preview", "--only", "tiles/tile-1")
    assert runner_calls == ["run"]  # the second is answered from its own stamp
    run("build", "--provider", "preview")
    assert runner_calls == ["run", "run"]  # the whole plan is another selection


def test_a_build_with_failed_checks_is_not_stamped(project, run) -> None:  # type: ignore[no-untyped-def]
    """A failed check must fail every --strict-checks build, so it is checked each time."""
    project.gen(
        {
            "specs/logo.yaml": """
                brand:
                  name: Acme
                  colors: {primary: "#E4572E"}
                assets:
                  - {id: logo, prompt: "A logo", size: 1024x1024, background: transparent,
                     format: png, quality: low}
            """
        }
    )
    run("build", "--provider", "preview")
    second = run("build", "--provider", "preview", "--json")
    failed = summary(second)["failed_checks"]
    stamped = (project / ".assetpipe" / stamps.STAMP_FILE).exists()
    assert stamped == (not failed)


def test_the_manifest_says_what_the_last_build_did(project, run, runner_calls) -> None:  # type: ignore[no-untyped-def]
    """A build that made images is not stamped: the next one runs and records "up-to-date"
    for each file; from then on the stamp answers, and the manifest it leaves is byte for
    byte what a full check writes."""
    project.gen({"specs/tiles.yaml": SPEC})
    manifest = project / "output/manifest.json"
    assert run("build", "--provider", "preview").code == 0
    assert not (project / ".assetpipe" / stamps.STAMP_FILE).exists()
    assert {e["status"] for e in json.loads(manifest.read_text())["entries"]} == {"generated"}
    assert run("build", "--provider", "preview").code == 0
    assert runner_calls == ["run", "run"]
    statuses = {e["status"] for e in json.loads(manifest.read_text())["entries"]}
    assert statuses == {"up-to-date"}
    checked = manifest.read_bytes()
    assert run("build", "--provider", "preview").code == 0
    assert runner_calls == ["run", "run"]  # answered from the stamp
    (project / ".assetpipe" / stamps.STAMP_FILE).unlink()
    assert run("build", "--provider", "preview").code == 0
    assert runner_calls == ["run", "run", "run"]
    assert manifest.read_bytes() == checked


def test_a_batch_build_runs_even_when_stamped(project, run, runner_calls, monkeypatch, api) -> None:  # type: ignore[no-untyped-def]
    """``--batch`` collects open batches, so it never answers from the stamp."""
    monkeypatch.setenv("ASSETPIPE_BATCH_POLL_SECONDS", "0.01")
    project.gen({"specs/tiles.yaml": SPEC})
    for _ in range(2):
        assert run("build", "--provider", "openai").code == 0
    assert (project / ".assetpipe" / stamps.STAMP_FILE).is_file()
    calls = len(runner_calls)
    result = run("build", "--provider", "openai", "--batch")
    assert result.code == 0, result.err
    assert len(runner_calls) == calls + 1
    assert api.count() == 3  # the first build's three images, nothing more


BRANDED = """
    brand: {name: Acme, colors: {ember: "#E4572E", night: "#2B2D42"}}
    assets:
      - id: "tile-{{ n }}"
        prompt: "Tile {{ n }}"
        matrix: {n: [1, 2, 3]}
        size: 256x256
        quality: low
"""
PALETTE_SKIPPED = "the palette check is skipped for preview images"


def _refuse_decoding(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Makes decoding a stored plan fail loudly; returns the attempts."""
    from pipeline.api import plancache

    attempts: list[str] = []

    def refuse(body: bytes):  # type: ignore[no-untyped-def]
        attempts.append("decode")
        raise AssertionError("the stored plan was decoded")

    monkeypatch.setattr(plancache, "decode_plan", refuse)
    return attempts


def test_a_whole_build_is_answered_before_its_plan_is_decoded(
    project, run, runner_calls, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """The stored plan is only hashed: a plan of 100,000 jobs takes seconds to decode.
    The answer, warnings included, is the one a full check gives."""
    project.gen({"specs/tiles.yaml": BRANDED})
    full = []
    for _ in range(2):  # the first stores the plan, the second stamps it
        result = run("build", "--provider", "preview", "--json")
        assert result.code == 0, result.err
        full.append(result)
    assert runner_calls == ["run", "run"]
    attempts = _refuse_decoding(monkeypatch)
    quick = run("build", "--provider", "preview", "--json")
    assert quick.code == 0, quick.err
    assert runner_calls == ["run", "run"] and attempts == []
    assert summary(quick)["counts"] == {"up-to-date": 3}
    for key in ("exit_code", "counts", "failed", "failed_checks", "pruned", "manifest"):
        assert summary(quick)[key] == summary(full[1])[key], key
    assert quick.err.count(PALETTE_SKIPPED) == full[1].err.count(PALETTE_SKIPPED) == 1
    plain = run("build", "--provider", "preview")
    assert plain.code == 0 and "3 up-to-date" in plain.out
    assert runner_calls == ["run", "run"] and attempts == []


def test_a_stamp_answers_only_for_the_ids_it_was_stamped_with(built, run, runner_calls) -> None:  # type: ignore[no-untyped-def]
    """Even sealed with the user's key, a stamp answers a whole build only when the job
    ids it lists give the digest it was stamped with, for this stored plan: the stamp of
    a selection with the whole plan's ids spliced in answers nothing."""
    _, whole = _stamp(built)
    run("build", "--provider", "preview", "--only", "tiles/tile-1")
    run("build", "--provider", "preview", "--only", "tiles/tile-1")  # stamps the selection
    path, doc = _stamp(built)
    assert runner_calls == ["run"] and doc["plan"] != whole["plan"]
    doc["ids"], doc["warnings"] = whole["ids"], whole["warnings"]
    sealed = user_sealer().seal("last build", json.dumps(doc).encode())
    assert sealed is not None
    path.write_bytes(sealed)
    assert run("build", "--provider", "preview").code == 0
    assert runner_calls == ["run", "run"]


def test_a_selection_leaves_no_answer_for_the_whole_plan(built, run, runner_calls) -> None:  # type: ignore[no-untyped-def]
    run("build", "--provider", "preview", "--only", "tiles/tile-1")
    run("build", "--provider", "preview", "--only", "tiles/tile-1")
    _, doc = _stamp(built)
    assert "ids" not in doc  # a stamp of a selection lists no ids
    run("build", "--provider", "preview")
    assert runner_calls == ["run", "run"]


def test_a_stamp_with_malformed_warnings_is_only_a_stamp(
    built, run, runner_calls, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """Warnings the build could not print as the plan says them: the plan is decoded and
    the build answered by the ordinary check of the stamp."""
    from pipeline.api import plancache

    path, doc = _stamp(built)
    doc["warnings"] = [["a warning", "specs/x.yaml", -1, None]]
    sealed = user_sealer().seal("last build", json.dumps(doc).encode())
    assert sealed is not None
    path.write_bytes(sealed)
    decoded: list[int] = []
    real = plancache.decode_plan
    monkeypatch.setattr(plancache, "decode_plan", lambda body: decoded.append(1) or real(body))
    result = run("build", "--provider", "preview")
    assert result.code == 0 and "a warning" not in result.err
    assert decoded == [1] and runner_calls == []
