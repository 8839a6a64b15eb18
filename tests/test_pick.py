"""Pick and pin: ``assetpipe pick``/``unpick``, ``assetpipe.lock``, and what a build delivers.

Through the CLI, on the preview provider (free, deterministic) and, where the bytes sent
to the API matter, through the real SDK against the fake.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import tomllib
from pathlib import Path
from typing import Any

from processes import ASSETPIPE
from review_kit import post, serving

SPEC = """
    assets:
      - id: hero
        prompt: "a brave knight"
        size: 256x256
        variants: 3
        renditions:
          - {size: 64x64}
      - id: hero-winter
        prompt: "the knight in winter"
        size: 256x256
        edit: {images: [hero]}
      - id: hero-archer
        prompt: "the same knight as an archer"
        size: 256x256
        reference: hero
    sheets:
      - id: atlas
        assets: ["hero*"]
"""


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def entries(project: Any) -> dict[str, dict[str, Any]]:
    doc = json.loads((project / "output/manifest.json").read_text("utf-8"))
    return {e["job"]: e for e in doc["entries"]}


def lock(project: Any) -> dict[str, Any]:
    return tomllib.loads((project / "assetpipe.lock").read_text("utf-8"))


def build(run: Any, *args: str) -> None:
    result = run("build", "--provider", "preview", *args)
    assert result.code == 0, result.err


def test_pick_pins_the_variant_at_the_assets_own_path(project, run):
    project.gen({"specs/chars.yaml": SPEC})
    build(run)
    out = project / "output/chars"
    variant2 = sha(out / "hero.v2.png")

    picked = run("pick", "chars/hero#2", "--provider", "preview")
    assert picked.code == 0, picked.err
    assert "picked chars/hero#2" in picked.out
    entry = lock(project)["assets"]["chars/hero"]
    assert entry["variant"] == 2
    assert entry["sha256"] == variant2
    assert entry["cache_key"] == entries(project)["chars/hero#2"]["cache_key"]
    assert entry["format"] == "png"
    assert entry["at"].endswith("Z")
    assert lock(project)["version"] == 1

    build(run)
    found = entries(project)
    assert sha(out / "hero.png") == variant2
    assert found["chars/hero"]["kind"] == "pick"
    assert found["chars/hero"]["sha256"] == variant2
    # Every variant stays reachable under a numbered path; variant 1 moved to .v1.
    assert {"chars/hero#1", "chars/hero#2", "chars/hero#3"} <= set(found)
    assert found["chars/hero#1"]["path"] == "chars/hero.v1.png"
    # Renditions, edits, references and sheets use the approved image.
    assert found["chars/hero@64x64"]["inputs"] == [variant2]
    assert found["chars/hero-winter"]["inputs"] == [variant2]
    assert found["chars/hero-archer"]["inputs"] == [variant2]
    atlas = json.loads((out / "atlas.json").read_text("utf-8"))
    assert "hero.png" in atlas["frames"]


def test_a_changed_prompt_keeps_the_approved_file_until_someone_picks_again(project, run):
    project.gen({"specs/chars.yaml": SPEC})
    build(run)
    assert run("pick", "chars/hero#3", "--provider", "preview").code == 0
    build(run)
    approved = sha(project / "output/chars/hero.png")

    (project / "specs/chars.yaml").write_text(
        (project / "specs/chars.yaml").read_text().replace("a brave knight", "a tired knight")
    )
    plan = json.loads(run("plan", "--json", "--provider", "preview").out)
    pinned = next(j for j in plan["jobs"] if j["id"] == "chars/hero")
    assert pinned["approval"] == "changed"
    table = run("plan", "--provider", "preview")
    assert "changed since approval" in table.out
    build(run)
    assert sha(project / "output/chars/hero.png") == approved
    assert sha(project / "output/chars/hero.v3.png") != approved  # the new variant 3

    review = run("check", "--require-review", "--provider", "preview")
    assert review.code == 1
    assert "chars/hero: changed since approval" in review.out

    assert run("pick", "chars/hero#3", "--provider", "preview").code == 0
    build(run)
    assert sha(project / "output/chars/hero.png") == sha(project / "output/chars/hero.v3.png")
    assert run("check", "--require-review", "--provider", "preview").code == 0


def test_check_require_review_names_assets_with_variants_and_no_pick(project, run):
    project.gen({"specs/chars.yaml": SPEC})
    build(run)
    plain = run("check", "--provider", "preview")
    assert plain.code == 0, plain.out
    review = run("check", "--require-review", "--provider", "preview")
    assert review.code == 1
    assert review.out.splitlines()[0] == "review    chars/hero: 3 variants and none picked"
    assert "hero-winter" not in review.out  # one variant: nothing to choose
    assert run("pick", "chars/hero#1", "--provider", "preview").code == 0
    build(run)
    assert run("check", "--require-review", "--provider", "preview").code == 0


def test_unpick_returns_to_variant_one(project, run):
    project.gen({"specs/chars.yaml": SPEC})
    build(run)
    first = sha(project / "output/chars/hero.png")
    assert run("pick", "chars/hero#2", "--provider", "preview").code == 0
    build(run)
    undone = run("unpick", "chars/hero", "--provider", "preview")
    assert undone.code == 0, undone.err
    assert not (project / "assetpipe.lock").exists()
    build(run)
    assert sha(project / "output/chars/hero.png") == first
    again = run("unpick", "chars/hero", "--provider", "preview")
    assert again.code == 2
    assert "has no pick" in again.err


def test_a_variant_must_be_built_before_it_is_picked(project, run):
    project.gen({"specs/chars.yaml": SPEC})
    result = run("pick", "chars/hero#2", "--provider", "preview")
    assert result.code == 2
    assert "is not built yet" in result.err
    assert "assetpipe build --only 'chars/hero#2'" in result.err
    assert run("pick", "chars/hero#9", "--provider", "preview").code == 2
    assert run("pick", "chars/nobody#1", "--provider", "preview").code == 2
    assert not (project / "assetpipe.lock").exists()


def test_a_lost_approved_image_is_an_error_not_a_regeneration(project, run):
    project.gen({"specs/chars.yaml": SPEC})
    build(run)
    assert run("pick", "chars/hero#2", "--provider", "preview").code == 0
    build(run)
    approved = sha(project / "output/chars/hero.png")
    (project / "specs/chars.yaml").write_text(
        (project / "specs/chars.yaml").read_text().replace("a brave knight", "a new knight")
    )
    build(run)  # variant 2 is regenerated for the new prompt; the pin stays
    for rel in ("output", ".assetpipe/cache"):
        for path in sorted((project / rel).rglob("*"), reverse=True):
            if path.is_file() and approved in {sha(path)} | {path.name}:
                path.unlink()
    (project / "output/chars/hero.png").unlink(missing_ok=True)
    result = run("build", "--provider", "preview")
    assert result.code == 1
    error = entries(project)["chars/hero"]["error"]
    assert error["type"] == "ApprovedImageMissing"
    assert "pick again" in error["message"]
    # What was made from the approved image stays as it is; nothing is regenerated.
    assert entries(project)["chars/hero-winter"]["status"] == "up-to-date"
    live = {j: e["status"] for j, e in entries(project).items() if not e.get("stale")}
    assert "generated" not in live.values(), live


def test_a_planted_lock_is_an_error_at_the_file(project, run):
    project.gen(
        {
            "specs/chars.yaml": SPEC,
            "assetpipe.lock": 'version = 1\n[assets."chars/hero"]\nvariant = 2\n'
            'cache_key = "../../etc/passwd"\nsha256 = "x"\nformat = "png"\n',
        }
    )
    result = run("plan", "--provider", "preview")
    assert result.code == 2
    assert 'assetpipe.lock: the entry of "chars/hero" is malformed' in result.err
    assert "Traceback" not in result.err


def test_an_edit_sends_the_approved_bytes_to_the_api(project, run, api):
    # At the size the API answers with, delivered bytes are the API's own, unique per call
    # (the fake stamps each answer), so the three variants differ.
    project.gen({"specs/chars.yaml": SPEC.replace("256x256", "1024x1024")})
    assert run("build", "--provider", "openai").code == 0
    approved = sha(project / "output/chars/hero.v2.png")
    assert approved != sha(project / "output/chars/hero.png")
    assert run("pick", "chars/hero#2", "--provider", "openai").code == 0
    api.reset_counters()
    plan = json.loads(run("plan", "--json", "--provider", "openai").out)
    to_pay = {j["id"] for j in plan["jobs"] if j["status"] == "generate"}
    assert to_pay == {"chars/hero-winter", "chars/hero-archer"}
    result = run("build", "--provider", "openai")
    assert result.code == 0, result.err
    sent = {r.fields.get("prompt"): r for r in api.requests}
    assert set(sent) == {"the knight in winter", "the same knight as an archer"}
    for record in sent.values():
        assert record.image_sha256 == [approved]


def test_picking_needs_no_api_key(project, run, api, monkeypatch):
    project.gen({"specs/chars.yaml": SPEC, "assetpipe.yaml": "provider: openai\n"})
    assert run("build").code == 0
    monkeypatch.delenv("OPENAI_API_KEY")
    picked = run("pick", "chars/hero#2")
    assert picked.code == 0, picked.err
    assert run("unpick", "chars/hero").code == 0


EIGHT = """
    assets:
      - id: "a{{ i }}"
        prompt: "Asset number {{ i }}"
        matrix: {i: [1, 2, 3, 4, 5, 6, 7, 8]}
        size: 64x64
        variants: 2
"""
GATED = "import os, sys\nsys.stdin.buffer.read(1)\nos.execv(sys.argv[1], sys.argv[1:])\n"
"""Run argv[1:] once a byte arrives on stdin: every process is started, and waiting, before
any of them begins, so their picks overlap as much as processes can."""


def gated_picks(root: Path, refs: list[str]) -> list[subprocess.Popen[bytes]]:
    """An ``assetpipe pick REF`` process per ref, each held at the gate (:data:`GATED`)."""
    gate = [sys.executable, "-c", GATED, *ASSETPIPE]
    where = ["--provider", "preview", "--project", str(root)]
    return [
        subprocess.Popen(
            [*gate, "pick", ref, *where],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for ref in refs
    ]


def open_gate(procs: list[subprocess.Popen[bytes]]) -> None:
    """Let every gated process go."""
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"g")
        proc.stdin.flush()  # the byte goes now; communicate() closes the pipe later


def finished(proc: subprocess.Popen[bytes]) -> tuple[int, str, str]:
    """A process's exit code, stdout and stderr, once it ends."""
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out.decode(), err.decode()


def test_eight_picks_at_once_all_land_in_the_lock(project, run):
    """Eight `assetpipe pick` processes of eight assets, released at once, all exit 0 and
    all eight picks are in assetpipe.lock: each process reads, changes and writes the
    lock under the flock of its side file, so none writes back a lock without another's
    pick (unlocked, two of eight were lost). The side file is gone once they are done."""
    project.gen({"specs/c.yaml": EIGHT})
    build(run)
    refs = [f"c/a{i}#2" for i in range(1, 9)]
    procs = gated_picks(project.root, refs)
    open_gate(procs)
    for ref, proc in zip(refs, procs, strict=True):
        code, out, err = finished(proc)
        assert code == 0, err
        assert f"picked {ref}" in out
    picks = lock(project)["assets"]
    assert {name: entry["variant"] for name, entry in picks.items()} == {
        f"c/a{i}": 2 for i in range(1, 9)
    }
    assert not (project / ".assetpipe.lock.lock").exists()


def test_picks_from_the_review_page_and_the_command_line_at_once_all_land(project, run):
    """Four `assetpipe pick` processes are released while the review page picks, over and
    over, variants of four other assets until the last process has exited. Every pick
    either side reported is in assetpipe.lock at the end: the page and the command line
    take the same lock around each change (the page's own lock covers only its process,
    and unlocked, a page write made while a process was between its read and its write
    dropped that process's pick)."""
    project.gen({"specs/c.yaml": EIGHT})
    build(run)
    cli_refs = [f"c/a{i}#2" for i in range(5, 9)]
    procs = gated_picks(project.root, cli_refs)
    go, done = threading.Event(), threading.Event()
    last: dict[str, int] = {}
    failures: list[tuple[int, dict[str, Any]]] = []

    def keep_picking(server: Any, asset: str) -> None:
        go.wait()
        variant = 1
        while not done.is_set() or asset not in last:
            variant = 3 - variant
            status, answer = post(server, "/api/pick", {"ref": f"{asset}#{variant}"})
            if status != 200:
                failures.append((status, answer))
                return
            last[asset] = variant

    with serving(project.root) as server:
        page_assets = [f"c/a{i}" for i in range(1, 5)]
        threads = [threading.Thread(target=keep_picking, args=(server, a)) for a in page_assets]
        for thread in threads:
            thread.start()
        go.set()
        open_gate(procs)
        results = [finished(proc) for proc in procs]
        done.set()
        for thread in threads:
            thread.join()
    assert failures == []
    assert [code for code, _, _ in results] == [0] * 4, results
    picks = {name: entry["variant"] for name, entry in lock(project)["assets"].items()}
    assert picks == {**last, **{f"c/a{i}": 2 for i in range(5, 9)}}


def test_a_link_in_place_of_the_locks_side_file_is_refused(project, run, tmp_path):
    """A symbolic link planted where the lock's side file goes is not followed (it would
    have the pick truncate the file it points to): exit 2 naming it, the target intact,
    no pick recorded."""
    project.gen({"specs/c.yaml": EIGHT})
    build(run)
    target = tmp_path / "precious.txt"
    target.write_text("keep me", "utf-8")
    (project / ".assetpipe.lock.lock").symlink_to(target)
    result = run("pick", "c/a1#2", "--provider", "preview")
    assert result.code == 2
    guard = project / ".assetpipe.lock.lock"
    assert result.err == (
        f"error: refusing to use the symbolic link {guard} (the guard of assetpipe.lock); "
        "remove it\n"
    )
    assert target.read_text("utf-8") == "keep me"
    assert not (project / "assetpipe.lock").exists()
