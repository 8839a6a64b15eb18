"""The asset indexes read by their real consumers: a project built with the preview
provider (variants, renditions, a sheet, hostile tags, a unicode collection, keyword ids)
exported to TypeScript, C#, GDScript and JSON; ``tsc --strict``, Mono's ``mcs`` (and
``mono``), gdtoolkit's GDScript parser and the manifest each judge their file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest
from gdtoolkit.parser import parser
from processes import ASSETPIPE, HERE

TSC = HERE / "engines/node_modules/.bin/tsc"
HOSTILE = 'q"uote \\ back */ end\nline \u2028 \U0001f600 </script> ${x} \\u0041'
"""A tag with everything that could end a string literal, a comment or a line."""

ICONS = r"""
assets:
  - id: sword-fire
    prompt: a sword
    size: 1024x1024
    quality: low
    variants: 2
    renditions:
      - {size: 64x64}
      - {size: 32x32, format: webp}
    tags: [icons, "q\"uote \\ back */ end\nline \u2028 \U0001F600 </script> ${x} \\u0041"]
  - id: shield
    prompt: a shield
    size: 1024x1024
    quality: low
    tags: [icons]
sheets:
  - id: atlas
    assets: ["*"]
    frame_size: 32x32
"""
KEYWORDS = """
defaults: {size: 1024x1024, quality: low}
assets:
  - {id: class, prompt: a class}
  - {id: default, prompt: a default}
  - {id: func, prompt: a func}
"""
SETTINGS = """
exports:
  - {format: typescript, path: src/assets.ts}
  - {format: csharp, path: Assets/Scripts/GameAssets.cs, namespace: Game.Assets,
     root: Assets/Resources/Art}
  - {format: gdscript, path: game/assets.gd, res_root: "res://art"}
  - {format: json, path: assets.json, base_url: /static}
"""
FILES = ("src/assets.ts", "Assets/Scripts/GameAssets.cs", "game/assets.gd", "assets.json")


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


def tool(*argv: str | Path, cwd: Path) -> str:
    """Run a consumer; its output, or the test fails with what it said."""
    done = subprocess.run(
        [str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project, built once with the preview provider (every test only reads it)."""
    root = tmp_path_factory.mktemp("indexes") / "proj"
    for rel, text in {
        "specs/icons.yaml": ICONS,
        "specs/2d.yaml": KEYWORDS,
        "specs/menüs.yaml": "assets:\n  - {id: cafe, prompt: a cafe, size: 1024x1024, "
        "quality: low}\n",
        "assetpipe.yaml": SETTINGS,
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, "utf-8")
    (root / "templates").mkdir()
    done = assetpipe(root, "build", "--provider", "preview", "-q")
    assert done.returncode == 0, done.stderr
    return root


def manifest(root: Path) -> list[dict[str, object]]:
    entries = json.loads((root / "output/manifest.json").read_text("utf-8"))["entries"]
    return [e for e in entries if e["sha256"] and not e.get("stale")]


@pytest.mark.skipif(not TSC.exists(), reason="run scripts/install-tools.sh (TypeScript)")
def test_tsc_strict_compiles_the_index_and_a_consumer_with_literal_types(built: Path) -> None:
    """A consumer reads a known asset's path and size with their exact types; a name
    that does not exist, or a wrong size, are compile errors (``@ts-expect-error``
    fails the compile if they were not); the emitted module keeps the hostile tag."""
    (built / "src/consumer.ts").write_text(
        """
import { assets, type AssetName } from "./assets";
const width: 1024 = assets.iconsSwordFire.width;
const path: "icons/sword-fire@64x64.png" = assets.iconsSwordFireS64x64.path;
const frameX: number = assets.iconsAtlasShield.x;
const sheet: "icons/atlas" = assets.iconsAtlasShield.sheet;
const named: AssetName[] = ["_2dClass", "_2dDefault", "_2dFunc", "menusCafe"];
// @ts-expect-error: no such asset
const missing = assets.iconsSwordIce;
// @ts-expect-error: the size is a literal type
const wrong: 512 = assets.iconsSwordFire.width;
export const used = [width, path, frameX, sheet, named, missing, wrong];
""",
        "utf-8",
    )
    check = ["--module", "esnext", "--moduleResolution", "bundler"]
    tool(TSC, "--strict", "--noEmit", "--target", "es2020", *check, "src/consumer.ts", cwd=built)
    emit = ["--module", "commonjs", "--outDir", "out"]
    tool(TSC, "--strict", "--target", "es2020", *emit, "src/assets.ts", cwd=built)
    script = "console.log(JSON.stringify(require('./out/assets.js').assets.iconsSwordFire.tags))"
    assert json.loads(tool("node", "-e", script, cwd=built)) == ["icons", HOSTILE]


@pytest.mark.skipif(shutil.which("mcs") is None, reason="run scripts/install-tools.sh (mcs)")
def test_mcs_compiles_the_class_and_mono_reads_the_values_back(built: Path) -> None:
    """``mcs -target:library`` compiles the class with a consumer; built as a program and
    run by Mono, it reads a frame, a Resources path and the hostile tag exactly."""
    consumer = built / "Consumer.cs"
    consumer.write_text(
        """
using Game.Assets;
public static class Consumer
{
    public static void Main()
    {
        GameAssets.Entry icon = GameAssets.IconsSwordFire;
        System.Console.WriteLine(icon.Width + "x" + icon.Height + " " + icon.ResourcePath);
        System.Console.WriteLine(GameAssets.All["icons/atlas/shield"].Sheet);
        System.Console.WriteLine(GameAssets._2dClass.Path);
        string tag = icon.Tags[1];
        foreach (char c in tag) System.Console.Write(((int)c).ToString("x4"));
        System.Console.WriteLine();
    }
}
""",
        "utf-8",
    )
    source = "Assets/Scripts/GameAssets.cs"
    tool("mcs", "-target:library", "-out:index.dll", source, "Consumer.cs", cwd=built)
    if shutil.which("mono") is None:
        pytest.skip("no mono runtime to run the consumer")
    tool("mcs", "-target:exe", "-out:consumer.exe", source, "Consumer.cs", cwd=built)
    lines = tool("mono", "consumer.exe", cwd=built).splitlines()
    assert lines[:3] == [
        "1024x1024 Art/icons/sword-fire",
        "icons/atlas",
        "Assets/Resources/Art/2d/class.png",
    ]
    assert lines[3] == HOSTILE.encode("utf-16-be").hex()


def test_gdtoolkit_parses_the_godot_script(built: Path) -> None:
    """gdtoolkit's GDScript 4 parser takes the script; its constants are named by the
    UPPER_SNAKE rule and their paths start at ``res_root``."""
    text = (built / "game/assets.gd").read_text("utf-8")
    parser.parse(text)
    assert "const ICONS_SWORD_FIRE_S32X32_WEBP = {" in text
    assert "const _2D_FUNC = {" in text
    assert '\t"path": "res://art/icons/sword-fire@64x64.png",' in text


def test_the_json_index_matches_the_manifest_and_the_atlas(built: Path) -> None:
    """Every delivered file of the manifest is in the JSON with its path (under
    ``base_url``), size, format and sha256; every frame with its atlas rectangle."""
    index = json.loads((built / "assets.json").read_text("utf-8"))
    by_id = {item["id"]: item for item in index["assets"].values()}
    files = manifest(built)
    atlas = json.loads((built / "output/icons/atlas.json").read_text("utf-8"))["frames"]
    assert len(by_id) == len(files) + len(atlas)
    for entry in files:
        item = by_id[entry["job"]]
        assert item["path"] == "/static/" + quote(str(entry["path"]), safe="/@")
        got = [item[k] for k in ("width", "height", "format", "sha256", "kind")]
        assert got == [entry[k] for k in ("width", "height", "format", "sha256", "kind")]
    sheet = next(e for e in files if e["kind"] == "sheet")
    for key, frame in atlas.items():
        item = by_id["icons/atlas/" + key.rsplit(".", 1)[0]]
        assert [item["x"], item["y"], item["width"], item["height"]] == [
            frame["frame"][k] for k in ("x", "y", "w", "h")
        ]
        assert (item["sha256"], item["sheet"], item["kind"]) == (
            sheet["sha256"],
            sheet["job"],
            "frame",
        )
    assert by_id["icons/sword-fire"]["tags"] == ["icons", HOSTILE]
    assert index["assets"]["menusCafe"]["id"] == "menüs/cafe"
    assert index["assets"]["menusCafe"]["path"] == "/static/men%C3%BCs/cafe.png"


def test_a_second_build_and_export_leave_every_index_byte_for_byte(built: Path) -> None:
    """Nothing changed: neither a build nor ``assetpipe export`` writes any index again
    (same bytes, same mtime_ns); a deleted index is written again by the next build."""
    before = {rel: ((built / rel).read_bytes(), (built / rel).stat().st_mtime_ns) for rel in FILES}
    for args in (("build", "--provider", "preview", "-q"), ("export",)):
        done = assetpipe(built, *args)
        assert done.returncode == 0, done.stderr
        after = {
            rel: ((built / rel).read_bytes(), (built / rel).stat().st_mtime_ns) for rel in FILES
        }
        assert after == before
    (built / "src/assets.ts").unlink()
    done = assetpipe(built, "build", "--provider", "preview", "-q")
    assert done.returncode == 0, done.stderr
    assert (built / "src/assets.ts").read_bytes() == before["src/assets.ts"][0]
