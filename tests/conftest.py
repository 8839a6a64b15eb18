"""Shared fixtures: a project tree written from a dict, a clean environment, a CLI runner."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from fakeapi import FakeImagesAPI
from processes import PINNED_TODAY

from pipeline.cli import main

pytest_plugins = ["s3servers"]  # S3 servers for the shared-cache tests (started on demand)

ENV_PREFIXES = ("OPENAI_", "AZURE_", "GOOGLE_", "ASSETPIPE_")
"""The API keys and settings of assetpipe and of every cloud a shared cache may be in."""


@pytest.fixture(autouse=True)
def clean_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """No test sees the developer's API or cloud keys or assetpipe settings, every test judges
    model lifecycles on one pinned date, never the machine's clock, and every test has
    its own per-user state folder (the key that seals stored plans and stamps), never the
    developer's."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.delenv("CI", raising=False)  # CI sets it; tests that mean it set it
    # Without credentials obstore asks the instance metadata service: keep it on loopback.
    monkeypatch.setenv("AWS_METADATA_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("ASSETPIPE_TODAY", PINNED_TODAY)
    monkeypatch.setenv("ASSETPIPE_STATE_DIR", str(tmp_path_factory.mktemp("state")))
    yield


class ProjectTree:
    """A project folder under tmp_path, written from a dict (like dvc's tmp_dir.gen)."""

    def __init__(self, root: Path):
        self.root = root

    def gen(self, files: Mapping[str, str | bytes]) -> ProjectTree:
        """Write files: text is dedented, bytes are written as they are."""
        for rel, content in files.items():
            path = self.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(textwrap.dedent(content).lstrip("\n"), "utf-8")
        return self

    def __truediv__(self, rel: str) -> Path:
        return self.root / rel


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeImagesAPI]:
    """An in-process fake Images API that `--provider openai` reaches (key sk-test-key)."""
    with FakeImagesAPI() as fake:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        yield fake


@pytest.fixture
def project(tmp_path: Path) -> ProjectTree:
    """An empty project folder with specs/ and templates/."""
    root = tmp_path / "proj"
    (root / "specs").mkdir(parents=True)
    (root / "templates").mkdir()
    return ProjectTree(root)


@dataclass
class Result:
    """What a CLI run did."""

    code: int
    out: str
    err: str


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], project: ProjectTree):
    """Run ``assetpipe ARGS --project <project>`` in-process; returns code, stdout, stderr."""

    def _run(*args: str, project_dir: Path | None = None) -> Result:
        argv = [*args, "--project", str(project_dir or project.root)]
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        captured = capsys.readouterr()
        code = exit_info.value.code
        return Result(code=code if isinstance(code, int) else 1, out=captured.out, err=captured.err)

    return _run


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin packages of ``tests/plugins/``, pip-installed once per session into a
    folder of their own; give it to a process with :func:`plugin_kit.with_plugins`."""
    from plugin_kit import install_plugins

    return install_plugins(tmp_path_factory.mktemp("plugins"))
