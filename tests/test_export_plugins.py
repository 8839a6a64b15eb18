"""An exporter from a separately installed package (``tests/plugins/assetpipe-csv-index``),
found through the ``assetpipe.exporters`` entry point group and run by the real CLI."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
from pathlib import Path

from plugin_kit import with_plugins
from processes import ASSETPIPE, PINNED_TODAY

SPEC = """\
assets:
  - id: sword
    prompt: a sword
    size: 1024x1024
    quality: low
  - id: shield
    prompt: a shield
    size: 1024x1024
    quality: low
"""


def assetpipe(site: Path, project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed ``assetpipe`` in its own process, seeing the plugins in ``site``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ASSETPIPE_"))}
    env = with_plugins(
        site,
        {
            **base,
            "ASSETPIPE_TODAY": PINNED_TODAY,
            "ASSETPIPE_STATE_DIR": os.environ["ASSETPIPE_STATE_DIR"],
        },
    )
    return subprocess.run(
        [*ASSETPIPE, *args, "--project", str(project)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def make_project(root: Path, settings: str) -> Path:
    (root / "specs").mkdir(parents=True)
    (root / "specs/icons.yaml").write_text(SPEC)
    (root / "assetpipe.yaml").write_text(settings)
    return root


def test_a_plugin_exporter_writes_its_csv_on_build_and_export(plugin_site: Path, tmp_path: Path):
    """``exports: [{format: csv-index, path: ...}]`` writes one row per delivered file
    (path, width, height, sha256), beside the gallery, with no line of assetpipe changed;
    ``assetpipe export`` then finds it as it would write it."""
    project = make_project(
        tmp_path / "proj", "exports:\n  - format: csv-index\n    path: lists/assets.csv\n"
    )
    built = assetpipe(plugin_site, project, "build", "--provider", "preview", "-q")
    assert built.returncode == 0, built.stderr
    manifest = json.loads((project / "output/manifest.json").read_text())
    rows = list(csv.reader(io.StringIO((project / "output/lists/assets.csv").read_text())))
    assert rows[0] == ["path", "width", "height", "sha256"]
    assert rows[1:] == [
        [e["path"], str(e["width"]), str(e["height"]), e["sha256"]]
        for e in sorted(manifest["entries"], key=lambda e: e["path"])
    ]
    assert [r[0] for r in rows[1:]] == ["icons/shield.png", "icons/sword.png"]
    assert (project / "output/index.html").is_file()  # the gallery stays on

    exported = assetpipe(plugin_site, project, "export", "--provider", "preview")
    assert exported.returncode == 0, exported.stderr
    assert "unchanged lists/assets.csv (csv-index)" in exported.stdout
    assert "0 files written, 2 unchanged" in exported.stdout


def test_a_bad_option_of_a_plugin_exporter_is_an_error_at_its_line(
    plugin_site: Path, tmp_path: Path
):
    """The plugin's own options model checks its entry: a path leaving the output folder
    is refused at its line in assetpipe.yaml, and nothing is built."""
    project = make_project(
        tmp_path / "proj", "concurrency: 2\nexports:\n  - format: csv-index\n    path: ../x.csv\n"
    )
    result = assetpipe(plugin_site, project, "build", "--provider", "preview")
    assert result.returncode == 2, result.stderr
    assert "assetpipe.yaml:4" in result.stderr
    assert "'..'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (project / "output").exists()


def test_without_the_plugin_its_format_is_unknown(tmp_path: Path):
    """The same project on an assetpipe without the plugin: the format is unknown, and the
    error lists the formats there are."""
    project = make_project(tmp_path / "proj", "exports:\n  - {format: csv-index, path: a.csv}\n")
    result = assetpipe(tmp_path / "no-plugins", project, "validate")
    assert result.returncode == 2
    assert "assetpipe.yaml:2" in result.stderr
    assert "unknown export format 'csv-index'" in result.stderr
    known = "known formats: contact-sheet, csharp, gallery, gdscript, json, typescript"
    assert known in result.stderr
