"""The published wheel works on its own: built from the tracked files, installed in a clean
venv, it builds the example project.

An editable install reads the source tree and so hides a package the wheel leaves out
(a hand-kept package list once shipped without ``pipeline.planner``). This test builds the
wheel from a copy of exactly the files git tracks, installs it with its dependencies into
a new venv, and runs the installed console script from a folder outside the repo.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from processes import PINNED_TODAY

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = ("assetpipe.yaml", "specs", "templates", "brands", "masks")

pytestmark = pytest.mark.slow


def _tracked_copy(dest: Path) -> Path:
    """A copy of the files git tracks (what a fresh clone has), nothing else."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.split(b"\0")
    for raw in filter(None, listed):
        rel = raw.decode()
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, target)
    return dest


def _run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=600
    )
    assert done.returncode == 0, (
        f"{command} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    )
    return done.stdout


def test_the_wheel_installed_in_a_clean_venv_builds_the_example_project(tmp_path: Path) -> None:
    """Every package and data file is in the wheel: the installed ``assetpipe`` (not the
    source tree) validates, plans and builds the example project on ``preview``, and the
    manifest lists every file the plan promised."""
    source = _tracked_copy(tmp_path / "src")
    wheels = tmp_path / "wheels"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels), "."],
        source,
    )
    (wheel,) = wheels.glob("assetpipe-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = {
        str(p.parent.relative_to(REPO)).replace(os.sep, "/")
        for p in (REPO / "pipeline").rglob("__init__.py")
    }
    assert {f"{pkg}/__init__.py" for pkg in packages} <= names
    assert "pipeline/providers/openai_models.toml" in names
    assert "pipeline/data/color_names.toml" in names

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path)
    python = venv / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "--quiet", str(wheel)], tmp_path)

    project = tmp_path / "example"
    for name in EXAMPLE:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, project / name)
        else:
            project.mkdir(exist_ok=True)
            shutil.copy2(src, project / name)
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ASSETPIPE_", "PYTHON"))
    }
    env |= {
        "ASSETPIPE_PROVIDER": "preview",
        "ASSETPIPE_TODAY": PINNED_TODAY,
        "ASSETPIPE_STATE_DIR": os.environ.get("ASSETPIPE_STATE_DIR", ""),
    }
    where = _run([str(python), "-c", "import pipeline; print(pipeline.__file__)"], project, env)
    assert Path(where.strip()).is_relative_to(venv)

    assetpipe = str(venv / "bin" / "assetpipe")
    _run([assetpipe, "validate"], project, env)
    planned = _run([python.as_posix(), "-m", "pipeline", "plan", "--json"], project, env)
    _run([assetpipe, "build", "-q"], project, env)
    manifest = (project / "output" / "manifest.json").read_text("utf-8")
    jobs = json.loads(planned)["jobs"]
    entries = json.loads(manifest)["entries"]
    assert sorted(e["job"] for e in entries) == sorted(j["id"] for j in jobs)
    assert all((project / "output" / e["path"]).is_file() for e in entries)
    assert {e["status"] for e in entries} == {"generated"}
