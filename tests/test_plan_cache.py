"""The stored plan (``.assetpipe/plans/``): reused while nothing it was made from changed,
made afresh on any change, and never trusted beyond what validates."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from PIL import Image

from pipeline import api
from pipeline.api.plancache import PLANS_DIR
from pipeline.api.workspace import Request, Workspace
from pipeline.jobs import Plan
from pipeline.jobs.codec import PlanDecodeError, decode_plan, encode_plan
from pipeline.spec.lock import Lock, LockEntry, write_lock

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """A copy of the example project: specs, templates, a brand kit with a logo, a mask."""
    root = tmp_path / "example"
    for name in ("specs", "templates", "brands", "masks"):
        shutil.copytree(REPO / name, root / name)
    shutil.copy(REPO / "assetpipe.yaml", root)
    return root


def build_ws(root: Path, **flags: object) -> Workspace:
    """What ``build`` opens (reuse a stored plan) and keeps once it holds its folders."""
    req = Request(project=root, flags={"provider": "preview", **flags})
    ws = api.open_workspace(req, reuse=True, store_plan=True)
    if ws.stored_plan is not None:
        ws.stored_plan.keep()
    return ws


def fresh(root: Path, **flags: object) -> Plan:
    """The plan made from the files, never from the store."""
    req = Request(project=root, flags={"provider": "preview", **flags})
    return api.open_workspace(req).full_plan


def stored(root: Path) -> list[Path]:
    folder = root / ".assetpipe" / PLANS_DIR
    return sorted(folder.iterdir()) if folder.is_dir() else []


def png(color: tuple[int, int, int], size: tuple[int, int] = (64, 64)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


def test_second_open_reuses_the_stored_plan(example: Path) -> None:
    first = build_ws(example)
    assert first.project is not None  # planned from the files
    assert len(stored(example)) == 1
    second = build_ws(example)
    assert second.project is None  # nothing parsed
    assert second.full_plan == first.full_plan
    assert second.plan == first.plan


def test_reuse_does_not_run_the_planner(example: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build_ws(example)
    from pipeline.planner import graph

    def refuse(self: object) -> Plan:
        raise AssertionError("the planner ran although nothing changed")

    monkeypatch.setattr(graph._Planner, "run", refuse)
    assert build_ws(example).project is None


def test_reuse_from_another_working_directory(
    example: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(example)
    build_ws(Path())
    monkeypatch.chdir(tmp_path)
    assert build_ws(example).project is None


def _append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)


CHANGES = {
    "a spec file": lambda root: _append(root / "specs/icons.yaml", "\n# edited\n"),
    "a template": lambda root: _append(root / "templates/hero.j2", " Dramatic light."),
    "a brand kit": lambda root: _append(root / "brands/emberfall.yaml", "\n# edited\n"),
    "an input image": lambda root: (root / "brands/emberfall-logo.png").write_bytes(
        png((1, 2, 3), _size(root / "brands/emberfall-logo.png"))
    ),
    "a mask": lambda root: (root / "masks/hero-armor.png").write_bytes(
        _mask_like(root / "masks/hero-armor.png")
    ),
    "a new spec file": lambda root: (root / "specs/more.yaml").write_text(
        'assets:\n  - {id: rock, prompt: "A rock", size: 1024x1024}\n', "utf-8"
    ),
    "a removed spec file": lambda root: (root / "specs/campaign.yaml").unlink(),
    "assetpipe.lock": lambda root: write_lock(
        root, Lock({"icons/icon-sword-common": LockEntry(rerolls=1)})
    ),
}


def _size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def _mask_like(path: Path) -> bytes:
    with Image.open(path) as image:
        out = io.BytesIO()
        Image.new("RGBA", image.size, (0, 0, 0, 0)).save(out, "PNG")
        return out.getvalue()


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_changed_input_is_planned_afresh(example: Path, change: str) -> None:
    build_ws(example)
    CHANGES[change](example)
    again = build_ws(example)
    assert again.project is not None, f"{change} changed but the stored plan was reused"
    assert again.full_plan == fresh(example)
    assert build_ws(example).project is None  # and the new plan is stored in turn


def test_a_template_that_appears_is_a_change(example: Path) -> None:
    """An include of a missing template (``ignore missing``) depends on its absence."""
    _append(example / "templates/hero.j2", "{% include 'extra.j2' ignore missing %}")
    before = build_ws(example).full_plan
    (example / "templates/extra.j2").write_text(" In the rain.", "utf-8")
    after = build_ws(example)
    assert after.project is not None
    hero = next(j for j in after.full_plan.jobs if j.id == "characters/hero")
    assert "In the rain." in getattr(hero, "prompt", "")
    assert after.full_plan != before


@pytest.mark.parametrize(
    ("flags", "env"),
    [
        ({"model": "gpt-image-2.5-sunburst"}, {}),
        ({}, {"ASSETPIPE_TODAY": "2026-06-02"}),
        ({"provider": "openai"}, {}),
    ],
)
def test_settings_and_the_day_are_part_of_the_key(
    example: Path, monkeypatch: pytest.MonkeyPatch, flags: dict[str, str], env: dict[str, str]
) -> None:
    build_ws(example)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    req = Request(project=example, flags={"provider": "preview", **flags})
    other = api.open_workspace(req, credentials=False, reuse=True, store_plan=True)
    assert other.project is not None
    assert other.stored_plan is not None
    other.stored_plan.keep()
    assert len(stored(example)) == 2


def test_plan_and_check_never_write(example: Path) -> None:
    req = Request(project=example, flags={"provider": "preview"})
    api.open_workspace(req, credentials=False, reuse=True)
    api.check(req)
    assert stored(example) == []
    api.open_workspace(req, reuse=True, store_plan=True)  # a build stores only when it runs
    assert not (example / ".assetpipe").exists()
    build_ws(example)
    assert api.open_workspace(req, credentials=False, reuse=True).project is None


def test_the_cli_build_reuses_and_says_the_same(example: Path, run) -> None:  # type: ignore[no-untyped-def]
    first = run("build", "--provider", "preview", project_dir=example)
    assert first.code == 0, first.err
    second = run("build", "--provider", "preview", project_dir=example)
    assert second.code == 0, second.err
    assert "up-to-date" in second.out or "up to date" in second.out
    assert len(stored(example)) == 1


PLANTED = {
    "not JSON": b"\x00\xff garbage",
    "a header that is a list": b"[]\n[]",
    "a body of the wrong shape": None,  # filled in below: a valid header, a bad body
    "a job with a number for a string": None,
}


@pytest.mark.parametrize("kind", sorted(PLANTED))
def test_a_planted_stored_plan_is_ignored(
    example: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    build_ws(example)
    (path,) = stored(example)
    header, _, body = path.read_bytes().partition(b"\n")
    planted = PLANTED[kind]
    if kind == "a body of the wrong shape":
        planted = header + b'\n{"jobs": "all of them"}'
    elif kind == "a job with a number for a string":
        planted = header + b"\n" + body.replace(b'"prompt":"', b'"prompt":12,"x":"', 1)
    assert planted is not None
    path.write_bytes(planted)
    ws = build_ws(example)
    assert ws.project is not None
    assert ws.full_plan == fresh(example)


def test_a_link_in_place_of_the_stored_plan_is_not_followed(example: Path, tmp_path: Path) -> None:
    build_ws(example)
    (path,) = stored(example)
    elsewhere = tmp_path / "elsewhere.json"
    path.rename(elsewhere)
    path.symlink_to(elsewhere)
    assert build_ws(example).project is not None


def test_a_link_in_place_of_the_plans_folder_is_not_written_through(
    example: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (example / ".assetpipe").mkdir()
    (example / ".assetpipe" / PLANS_DIR).symlink_to(outside)
    build_ws(example)
    assert list(outside.iterdir()) == []


def test_only_the_most_recent_plans_are_kept(
    example: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for day in range(1, 12):
        monkeypatch.setenv("ASSETPIPE_TODAY", f"2026-06-{day:02d}")
        build_ws(example)
    assert len(stored(example)) == 8


def test_the_codec_round_trips_every_job_kind(example: Path) -> None:
    write_lock(example, Lock({"icons/icon-sword-common": LockEntry(rerolls=1)}))
    plan = fresh(example)
    kinds = {job.kind for job in plan.jobs}
    assert {"generate", "edit", "rendition", "sheet"} <= kinds
    assert decode_plan(encode_plan(plan)) == plan


def test_the_codec_refuses_a_broken_graph(example: Path) -> None:
    plan = fresh(example)
    twice = Plan(jobs=(*plan.jobs, plan.jobs[0]))
    with pytest.raises(PlanDecodeError, match="twice"):
        decode_plan(encode_plan(twice))
    dependent = next(j for j in plan.jobs if j.depends_on)
    backwards = Plan(jobs=(dependent,))
    with pytest.raises(PlanDecodeError, match="depends on"):
        decode_plan(encode_plan(backwards))
