"""The asset indexes' naming rule, their string literals, and the mistakes in their
configuration or in the specs that the build refuses before anything is paid for."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from processes import ASSETPIPE

from pipeline.exports import csharp, gdscript, typescript
from pipeline.exports.identifiers import frame_id, identifier, words

HOSTILE = 'a"b\\c */ d\ne\rf\tg \u2028 \x00 \ud800 \U0001f600 é'


@pytest.mark.parametrize(
    ("asset_id", "camel", "pascal", "upper"),
    [
        ("icons/sword-fire", "iconsSwordFire", "IconsSwordFire", "ICONS_SWORD_FIRE"),
        (
            "icons/sword-fire#2@64x64",
            "iconsSwordFireV2S64x64",
            "IconsSwordFireV2S64x64",
            "ICONS_SWORD_FIRE_V2_S64X64",
        ),
        ("icons/a@64x64.webp", "iconsAS64x64Webp", "IconsAS64x64Webp", "ICONS_A_S64X64_WEBP"),
        ("2d/class", "_2dClass", "_2dClass", "_2D_CLASS"),
        ("ui/café-menü", "uiCafeMenu", "UiCafeMenu", "UI_CAFE_MENU"),
        ("ui/中文", "uiU4e2dU6587", "UiU4e2dU6587", "UI_U4E2D_U6587"),
        ("_/-", "u5fU2fU2d", "U5fU2fU2d", "U5F_U2F_U2D"),
        ("", "empty", "Empty", "EMPTY"),
    ],
)
def test_one_rule_names_every_id_in_every_case(
    asset_id: str, camel: str, pascal: str, upper: str
) -> None:
    """The documented examples, digits first, accents, other scripts, and ids with no
    letter at all: every one gives a name, the same words in each case."""
    assert identifier(asset_id, "camel") == camel
    assert identifier(asset_id, "pascal") == pascal
    assert identifier(asset_id, "upper_snake") == upper


def test_a_kept_name_gets_a_trailing_underscore() -> None:
    """A name the language or the file keeps gets ``_``, which no other name ends in."""
    assert identifier("to/string", "pascal", csharp.MEMBERS) == "ToString_"
    assert identifier("a/ll", "upper_snake", gdscript.RESERVED) == "A_LL"
    assert identifier("all", "upper_snake", gdscript.RESERVED) == "ALL_"
    assert words("icons/hero#12@8x16.webp") == ["icons", "hero", "v12", "s8x16", "webp"]


def test_a_frame_id_is_the_sheet_id_and_its_atlas_key_without_the_extension() -> None:
    """So ``hero.v2.png`` in sheet ``chars/atlas`` is ``chars/atlas/hero.v2``."""
    assert frame_id("chars/atlas", "hero.v2.png") == "chars/atlas/hero.v2"
    assert frame_id("chars/atlas", "odd.name") == "chars/atlas/odd.name"


def test_string_literals_escape_everything_that_could_end_them() -> None:
    """TypeScript and C# literals are ASCII; C#'s decode (as UTF-16) to the text, and
    GDScript's keep quotes, backslashes and line breaks escaped."""
    ts = typescript.literal(HOSTILE)
    assert ts.isascii() and "\n" not in ts
    assert json.loads(ts) == HOSTILE
    cs = csharp.literal(HOSTILE)
    assert cs.isascii() and "\n" not in cs and "*/" in cs
    assert csharp.literal('a"\\\n\U0001f600é') == '"a\\"\\\\\\u000a\\ud83d\\ude00\\u00e9"'
    assert csharp.literal(None) == "null"
    gd = gdscript.literal(HOSTILE)
    assert gd == ('"a\\"b\\\\c */ d\\ne\\rf\\tg \\u2028 \\u0000 \\ud800 \U0001f600 é"')


SPEC = """\
assets:
  - id: a-b
    prompt: one
    size: 1024x1024
    quality: low
  - id: a_b
    prompt: two
    size: 1024x1024
    quality: low
"""


def assetpipe(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed CLI in its own process (the environment is already clean)."""
    return subprocess.run(
        [*ASSETPIPE, *args, "--project", str(project)],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_two_ids_with_one_name_stop_validate_plan_and_build(project) -> None:
    """``a-b`` and ``a_b`` are both ``iconsAB``: exit 2 from each command, naming both
    ids at their spec lines and the name in each index, no traceback, nothing built."""
    project.gen(
        {
            "specs/icons.yaml": SPEC,
            "assetpipe.yaml": "exports:\n  - {format: typescript, path: src/a.ts}\n"
            "  - {format: csharp, path: A.cs}\n",
        }
    )
    for command in ("validate", "plan", "build"):
        done = assetpipe(project.root, command, "--provider", "preview")
        assert done.returncode == 2, done.stderr
        assert (
            "specs/icons.yaml:6: icons/a-b (from specs/icons.yaml:2) and icons/a_b (from "
            "specs/icons.yaml:6) would have one name in the asset index: 'iconsAB' "
            "(typescript), 'IconsAB' (csharp)"
        ) in done.stderr
        assert "Traceback" not in done.stderr
    assert not (project / "output/manifest.json").exists()
    assert not (project / "src/a.ts").exists()


def test_ids_that_differ_in_gdscript_only_are_an_error_in_the_others(project, run) -> None:
    """UPPER_SNAKE keeps ``a-b2`` and ``a-b-2`` apart, camelCase does not: only the
    configured formats count, so a GDScript index alone is fine."""
    spec = SPEC.replace("a_b", "a-b-2").replace("id: a-b\n", "id: a-b2\n")
    project.gen(
        {"specs/icons.yaml": spec, "assetpipe.yaml": "exports: [{format: gdscript, path: a.gd}]\n"}
    )
    assert run("validate").code == 0
    project.gen({"assetpipe.yaml": "exports: [{format: json, path: a.json}]\n"})
    result = run("validate")
    assert result.code == 2
    assert "icons/a-b-2 (from specs/icons.yaml:6) and icons/a-b2" in result.err or (
        "icons/a-b2 (from specs/icons.yaml:2) and icons/a-b-2" in result.err
    )


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "{format: typescript, path: ../a.ts}",
            "assetpipe.yaml:2:32: 'path': it may not contain '..'",
        ),
        ("{format: typescript, path: /tmp/a.ts}", "'path': it must be relative"),
        ("{format: typescript, path: src/a.js}", "'path': the file's name ends in .ts"),
        ("{format: json, path: .git/a.json}", "would write '.git/a.json' in a hidden folder"),
        (
            "{format: json, path: output/a.json}",
            "would write 'output/a.json' inside the output folder",
        ),
        ("{format: json, path: .assetpipe/a.json}", "in a hidden folder"),
        ("{format: gdscript, path: specs/a.gd}", "inside the specs folder"),
        ("{format: gdscript, path: a.gd, res_root: /art}", "res_root is a Godot path"),
        ("{format: csharp, path: my-assets.cs}", "'my-assets' is not a C# name"),
        ("{format: csharp, path: A.cs, namespace: Game.class}", "'class' is a C# keyword"),
        ("{format: csharp, path: A.cs, root: ../Assets}", "'root': it may not contain"),
    ],
)
def test_a_bad_index_entry_is_an_error_at_its_line(project, run, entry: str, message: str) -> None:
    """Paths outside the project, in a hidden or kept folder, with the wrong extension,
    and options no engine could use: exit 2 at the entry, before anything is built."""
    project.gen(
        {"specs/icons.yaml": SPEC.replace("a_b", "c"), "assetpipe.yaml": f"exports:\n  - {entry}\n"}
    )
    result = run("validate")
    assert result.code == 2
    assert message in result.err
    assert "Traceback" not in result.err


def test_an_index_is_written_through_no_link(project, run, tmp_path: Path) -> None:
    """``src`` a link to a folder outside the project: the export refuses to write
    through it (an error, not a file outside)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    project.gen(
        {
            "specs/icons.yaml": SPEC.replace("a_b", "c"),
            "assetpipe.yaml": "exports: [{format: typescript, path: src/assets.ts}]\n",
        }
    )
    (project / "src").symlink_to(outside, target_is_directory=True)
    result = run("build", "--provider", "preview", "-q")
    assert result.code != 0
    assert "symbolic link" in result.err
    assert list(outside.iterdir()) == []


SHEET_SPEC = """\
defaults: {size: 1024x1024, quality: low}
assets:
  - {id: sword, prompt: a sword}
  - {id: shield, prompt: a shield}
sheets:
  - id: atlas
    assets: ["*"]
    frame_size: 32x32
    atlas: [ATLAS]
"""


@pytest.mark.parametrize("atlas", ["phaser", "texturepacker-array", "pixi"])
def test_a_sheet_frames_are_indexed_from_whichever_json_atlas_it_writes(
    project, run, atlas: str
) -> None:
    """A sheet that writes no TexturePacker "hash" atlas still has its frames in the
    index, at the rectangles of the atlas it does write."""
    project.gen(
        {
            "specs/icons.yaml": SHEET_SPEC.replace("ATLAS", atlas),
            "assetpipe.yaml": "exports:\n  - {format: json, path: assets.json}\n",
        }
    )
    done = run("build", "--provider", "preview")
    assert done.code == 0, done.err
    assert "frames are not in the index" not in done.err
    index = json.loads((project / "assets.json").read_text("utf-8"))
    frames = {i["id"]: i for i in index["assets"].values() if i["kind"] == "frame"}
    assert sorted(frames) == ["icons/atlas/shield", "icons/atlas/sword"]
    written = sorted((project / "output/icons").glob("atlas*.json"))
    (atlas_file,) = [p for p in written if "anims" not in p.name]
    doc = json.loads(atlas_file.read_bytes())
    listed = doc["textures"][0]["frames"] if "textures" in doc else doc["frames"]
    rects = (
        {name: f["frame"] for name, f in listed.items()}
        if isinstance(listed, dict)
        else {f["filename"]: f["frame"] for f in listed}
    )
    for name, rect in rects.items():
        item = frames[f"icons/atlas/{name.rsplit('.', 1)[0]}"]
        assert (item["x"], item["y"], item["width"], item["height"]) == (
            rect["x"],
            rect["y"],
            rect["w"],
            rect["h"],
        )


def test_a_sheet_with_only_a_godot_atlas_is_indexed_without_frames(project, run) -> None:
    """A ``.tres`` is not read for frames: the sheet is listed, its frames are not, and
    the build says so once."""
    project.gen(
        {
            "specs/icons.yaml": SHEET_SPEC.replace("ATLAS", "godot"),
            "assetpipe.yaml": "exports:\n  - {format: json, path: assets.json}\n",
        }
    )
    done = run("build", "--provider", "preview")
    assert done.code == 0, done.err
    assert done.err.count("writes no JSON atlas") == 1, done.err
    index = json.loads((project / "assets.json").read_text("utf-8"))
    kinds = sorted(i["kind"] for i in index["assets"].values())
    assert "frame" not in kinds and "sheet" in kinds
