"""The plugin packages under ``tests/plugins/``, installed the way a user installs a plugin.

Each folder there is a real distribution with its own ``pyproject.toml`` and entry points.
``pip install --target`` puts them (with their ``.dist-info``, which is where entry points
live) in one folder; a process started with that folder on ``PYTHONPATH`` finds them
through ``importlib.metadata`` exactly as it would in a user's virtualenv, and assetpipe
itself is not changed or told about them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

PLUGINS = Path(__file__).resolve().parent / "plugins"


def plugin_folders() -> list[Path]:
    """Every plugin package: a folder of ``tests/plugins/`` with a ``pyproject.toml``."""
    return sorted(p for p in PLUGINS.iterdir() if (p / "pyproject.toml").is_file())


def install_plugins(target: Path) -> Path:
    """``pip install`` every plugin package into ``target`` (offline: they need nothing
    but assetpipe and Pillow, which are installed) and return ``target``. Each is built
    from a copy beside ``target``, since setuptools leaves ``build/`` in the folder it
    builds."""
    sources = target.with_name(target.name + "-src")
    copies = []
    for folder in plugin_folders():
        copy = sources / folder.name
        shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("build", "*.egg-info"))
        copies.append(str(copy))
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
        "--no-build-isolation", "--disable-pip-version-check", "--target", str(target),
        *copies,
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, text=True)
    return target


def with_plugins(site: Path, env: Mapping[str, str]) -> dict[str, str]:
    """``env`` for a process that sees the installed plugins (``site`` first on its path)."""
    out = dict(env)
    out["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), env.get("PYTHONPATH", "")) if p)
    return out
