"""Nothing planted in ``.assetpipe/`` is trusted: a stored plan that this user's assetpipe
did not seal is planned afresh, whatever it says, and even a sealed one can neither file
a result under another request's key nor make a build read a file outside the project.

Each attack goes through the CLI as a user meets it; the fake API counts what was sent
and billed, so every test checks that the requests and the money are what the spec says.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from pipeline.api.plancache import MAX_PLAN_BYTES, PLANS_DIR
from pipeline.api.sealing import state_dir, user_sealer
from pipeline.hashing import CacheRequest
from pipeline.output import OutputTree
from pipeline.output.tree import MAX_READ_BYTES
from pipeline.runner.restoring import SMALLER_NOTE
from pipeline.store import LocalStore

SPEC = """
    defaults: {quality: low, format: png}
    assets:
      - id: "tile-{{ n }}"
        prompt: "Tile number {{ n }}"
        matrix: {n: [1, 2, 3, 4, 5]}
        size: 1024x1024
"""
PURPOSE = "stored plan"
NOT_OURS = "was not stored by this user's assetpipe"


def png(color: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), color).save(out, "PNG")
    return out.getvalue()


def plan_file(root: Path) -> Path:
    (path,) = sorted((root / ".assetpipe" / PLANS_DIR).iterdir())
    return path


def opened(path: Path) -> tuple[dict[str, Any], list[Any]]:
    """The header and the ``[jobs, warnings]`` of a stored plan, opened with the user's key."""
    body = user_sealer().open(PURPOSE, path.read_bytes())
    assert body is not None, "the build did not seal its plan"
    head, _, rest = body.partition(b"\n")
    return json.loads(head), json.loads(rest)


def text(header: dict[str, Any], plan: list[Any]) -> bytes:
    return json.dumps(header).encode() + b"\n" + json.dumps(plan).encode()


def plant(path: Path, header: dict[str, Any], plan: list[Any]) -> None:
    """What someone who can write ``.assetpipe/`` (a restored CI cache) can leave."""
    path.write_bytes(text(header, plan))


def forge(path: Path, header: dict[str, Any], plan: list[Any]) -> None:
    """A plan sealed with the user's own key: what only the user's assetpipe could write.
    The defences below it (keys computed from requests, contained reads) must hold even
    for such a plan, should assetpipe itself ever store a wrong one."""
    sealed = user_sealer().seal(PURPOSE, text(header, plan))
    assert sealed is not None
    path.write_bytes(sealed)


def sent(api: Any) -> list[dict[str, Any]]:
    return [r.fields for r in api.requests]


def manifest(root: Path) -> dict[str, dict[str, Any]]:
    entries = json.loads((root / "output/manifest.json").read_text())["entries"]
    return {e["job"]: e for e in entries}


@pytest.fixture
def stored(project, run, api) -> Path:  # type: ignore[no-untyped-def]
    """A project whose build stored (and sealed) its plan, and paid for nothing."""
    project.gen({"specs/set.yaml": SPEC})
    result = run("build", "--provider", "openai", "--max-cost", "0")
    assert result.code == 3, result.err
    assert api.count() == 0
    return plan_file(project.root)


@pytest.mark.parametrize("estimate", [-1.0, 0.0])
def test_a_planted_plan_cannot_spend_past_the_budget_or_change_the_request(
    project, run, api, stored: Path, estimate: float
) -> None:
    """A plan planted with zero or negative estimates, no files to compare, and
    ``n: 10``, ``quality: high``, ``size: 3840x2160`` is ignored with one warning: the
    build plans afresh, sends what the spec says, and pays no more than the budget
    (``--max-cost 0``, the CI assemble step, pays nothing at all)."""
    header, plan = opened(stored)
    estimates = [job["estimated_cost_usd"] for job in plan[0]]
    for job in plan[0]:
        job["estimated_cost_usd"] = estimate
        job["params"].update({"n": 10, "quality": "high", "size": "3840x2160"})
    header["files"] = {}
    plant(stored, header, plan)

    nothing = run("build", "--provider", "openai", "--max-cost", "0")
    assert nothing.code == 3, nothing.err
    assert nothing.err.count(NOT_OURS) == 1
    assert api.count() == 0 and api.billed_images == 0

    plant(stored, header, plan)
    cap = round(estimates[0] + estimates[1] + estimates[2] / 2, 6)
    result = run("build", "--provider", "openai", "--max-cost", str(cap), "--json")
    assert result.code == 3, result.err
    assert result.err.count(NOT_OURS) == 1
    assert api.count() == 2 and api.billed_images == 2
    for fields in sent(api):
        assert (fields["n"], fields["quality"], fields["size"]) == (1, "low", "1024x1024")
    assert 0 < json.loads(result.out)["spent_usd"] <= cap


def test_a_planted_plan_hides_no_edit_from_check_plan_or_build(
    project, run, api, stored: Path
) -> None:
    """A planted plan that lists one job and no files: after the user edits a prompt and
    adds an asset, ``check`` still exits 1 (the pull-request gate holds), ``plan`` shows
    the edit and the new asset, and a build into an empty ``output/`` delivers every job."""
    header, plan = opened(stored)
    header["files"] = {}
    plan[0] = plan[0][:1]
    project.gen(
        {
            "specs/set.yaml": SPEC.replace("Tile number", "Square tile number")
            + '      - {id: extra, prompt: "One more", size: 1024x1024}\n'
        }
    )
    plant(stored, header, plan)
    check = run("check", "--provider", "openai")
    assert check.code == 1, check.err
    assert NOT_OURS in check.err

    plant(stored, header, plan)
    jobs = json.loads(run("plan", "--provider", "openai", "--json").out)["jobs"]
    assert sorted(j["id"] for j in jobs) == [
        "set/extra",
        *(f"set/tile-{n}" for n in range(1, 6)),
    ]
    assert all(j["prompt"].startswith("Square tile number") for j in jobs if j["id"] != "set/extra")

    plant(stored, header, plan)
    built = run("build", "--provider", "openai")
    assert built.code == 0, built.err
    assert sorted(manifest(project.root)) == sorted(j["id"] for j in jobs)
    assert all(
        (project.root / "output" / e["path"]).is_file() for e in manifest(project.root).values()
    )


def test_a_result_is_filed_under_the_key_of_what_was_sent(project, run, api, stored: Path) -> None:
    """Even a plan sealed with the user's key that pairs another prompt with a real job's
    cache key cannot poison that key: the store files the image under the key of the
    request actually sent, so the real job, planned afresh, is not answered from it."""
    header, plan = opened(stored)
    first = plan[0][0]
    real_key, real_prompt = first["cache_key"], first["prompt"]
    assert real_key is not None
    first["prompt"] = "POISON: a different image"
    forge(stored, header, plan)
    poisoned = run("build", "--provider", "openai", "--only", first["id"])
    assert poisoned.code == 0, poisoned.err
    assert [f["prompt"] for f in sent(api)] == ["POISON: a different image"]
    assert manifest(project.root)[first["id"]]["cache_key"] != real_key

    stored.unlink()  # planned afresh from the spec
    api.requests.clear()
    again = run("build", "--provider", "openai", "--only", first["id"])
    assert again.code == 0, again.err
    assert [f["prompt"] for f in sent(api)] == [real_prompt]
    entry = manifest(project.root)[first["id"]]
    assert (entry["status"], entry["cache_key"], entry["prompt"]) == (
        "generated",
        real_key,
        real_prompt,
    )


EDIT_SPEC = """
    defaults: {quality: low, format: png}
    assets:
      - id: touched
        prompt: "Make it snowy"
        size: 1024x1024
        edit:
          images: [{file: ../refs/in.png}]
"""


@pytest.mark.parametrize("where", ["outside the project", "/dev/zero", "a FIFO"])
def test_edit_inputs_named_by_a_plan_are_read_only_inside_the_project(
    project, run, api, tmp_path: Path, where: str
) -> None:
    """An edit input a (sealed) plan names outside the project, as a device or as a
    FIFO is never read: the job fails at once with what is wrong, no request is sent,
    and the build does not hang or swallow memory."""
    image = png((10, 120, 200))
    project.gen({"specs/set.yaml": EDIT_SPEC, "refs/in.png": image})
    assert run("build", "--provider", "openai", "--max-cost", "0").code == 3
    path = plan_file(project.root)
    header, plan = opened(path)
    if where == "outside the project":
        secret = tmp_path / "secret.png"
        secret.write_bytes(image)  # the same bytes, so only the place gives it away
        name = "../secret.png"
    elif where == "/dev/zero":
        name = "/dev/zero"
    else:
        os.mkfifo(project.root / "refs/fifo")
        name = "refs/fifo"
    plan[0][0]["inputs"][0]["path"] = name
    forge(path, header, plan)

    result = run("build", "--provider", "openai")
    assert result.code == 1, result.err
    entry = manifest(project.root)["set/touched"]
    assert entry["status"] == "failed"
    assert f"the edit input {name!r} cannot be read" in entry["error"]["message"]
    assert api.count() == 0


def test_an_oversized_stored_plan_is_not_read(project, run, api, stored: Path) -> None:
    """A stored plan over the cap (a sparse file here, so the test costs no disk) is
    refused from its size before a byte is read, with a warning; the build plans afresh."""
    os.truncate(stored, MAX_PLAN_BYTES + 1)
    result = run("build", "--provider", "openai", "--max-cost", "0")
    assert result.code == 3, result.err
    assert f"more than {MAX_PLAN_BYTES:,} bytes" in result.err
    assert len(manifest(project.root)) == 5
    assert api.count() == 0


def test_a_plan_stored_with_another_key_is_planned_afresh(
    project, run, api, stored: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh CI runner (another state folder, so another key) restoring ``.assetpipe/``
    plans afresh with one warning, then seals its own plan, which the next build reuses."""
    monkeypatch.setenv("ASSETPIPE_STATE_DIR", str(tmp_path / "runner-state"))
    first = run("build", "--provider", "openai", "--max-cost", "0")
    assert first.code == 3, first.err
    assert first.err.count(NOT_OURS) == 1
    second = run("build", "--provider", "openai", "--max-cost", "0")
    assert second.code == 3, second.err
    assert NOT_OURS not in second.err
    key = tmp_path / "runner-state" / "state-key"
    assert key.stat().st_mode & 0o777 == 0o600


def test_a_cached_image_smaller_than_the_job_asks_is_a_miss(project, run) -> None:
    """A record under a job's key whose image is smaller than the job's request (planted
    in the local index or the bucket) is never scaled up and delivered as asked: it is a
    miss with a warning, and the image is made again at its size."""
    project.gen({"specs/set.yaml": SPEC})
    assert run("build", "--provider", "preview").code == 0
    entry = manifest(project.root)["set/tile-2"]
    with LocalStore(project.root / ".assetpipe/cache") as cache:
        row = cache._index.row(entry["cache_key"])  # the job's own record
        assert row is not None
        request = CacheRequest(json.loads(row[2])["request"])
        assert request.key == entry["cache_key"]
        cache.commit(request, png((200, 0, 0)))  # 64x64 under a 1024x1024 job's key
    (project.root / "output" / entry["path"]).unlink()

    result = run("build", "--provider", "preview")
    assert result.code == 0, result.err
    assert f"set/tile-2: {SMALLER_NOTE}" in result.err
    again = manifest(project.root)["set/tile-2"]
    assert again["status"] == "generated"
    assert (again["width"], again["height"]) == (1024, 1024)


def test_a_key_others_can_read_is_not_used(
    project, run, api, stored: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A per-user key readable by others (or a link) could let them forge a plan: it is
    refused with a warning saying how to fix it, and every build plans afresh and
    stores nothing until it is."""
    state = tmp_path / "shared-state"
    state.mkdir()
    key = state / "state-key"
    key.write_text("ab" * 32)
    key.chmod(0o644)
    monkeypatch.setenv("ASSETPIPE_STATE_DIR", str(state))
    result = run("build", "--provider", "openai", "--max-cost", "0")
    assert result.code == 3, result.err
    assert "it must belong to this user and be readable by no one else" in result.err
    assert "chmod 600" in result.err
    assert NOT_OURS not in result.err  # nothing could be opened, so nothing is judged
    linked_state = tmp_path / "linked-state"  # another folder: a process reads its key once
    linked_state.mkdir()
    (linked_state / "state-key").symlink_to(tmp_path / "elsewhere")
    monkeypatch.setenv("ASSETPIPE_STATE_DIR", str(linked_state))
    linked = run("build", "--provider", "openai", "--max-cost", "0")
    assert "it is a symbolic link" in linked.err
    assert not (tmp_path / "elsewhere").exists()


def test_an_output_file_read_back_is_never_a_fifo_or_a_huge_sparse_file(tmp_path: Path) -> None:
    """What the runner reads back from ``output/`` (an edit's input, a sheet's frame, an
    approved image) is read without waiting on a FIFO put in its place and without
    reading a planted sparse file past the cap: each is an error at once."""
    tree = OutputTree(tmp_path / "output")
    (tmp_path / "output/set").mkdir(parents=True)
    os.mkfifo(tmp_path / "output/set/a.png")
    with pytest.raises(OSError, match="not a regular file"):
        tree.read("set/a.png")
    with (tmp_path / "output/set/b.png").open("wb") as handle:
        handle.truncate(MAX_READ_BYTES + 1)
    with pytest.raises(OSError, match="more than"):
        tree.read("set/b.png")
    (tmp_path / "output/set/c.png").write_bytes(b"fine")
    assert tree.read("set/c.png") == b"fine"


def test_the_state_folder_is_the_operators_choice_else_the_xdg_one(tmp_path: Path) -> None:
    """Where the key lives: ``ASSETPIPE_STATE_DIR``, else ``$XDG_STATE_HOME/assetpipe``,
    else ``~/.local/state/assetpipe`` under ``HOME``."""
    chosen, xdg, home = tmp_path / "chosen", tmp_path / "xdg", tmp_path / "home"
    assert state_dir({"ASSETPIPE_STATE_DIR": str(chosen), "XDG_STATE_HOME": str(xdg)}) == chosen
    assert state_dir({"XDG_STATE_HOME": str(xdg), "HOME": str(home)}) == xdg / "assetpipe"
    assert state_dir({"HOME": str(home)}) == home / ".local/state/assetpipe"
