"""The provider registry: one list read by settings, the CLI and the composition root, and
open to third-party providers through the ``assetpipe.providers`` entry point group."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.plugins import forget_installed
from pipeline.providers import registry

PLUGIN = '''
"""A third-party provider: writes the preview placeholder under its own name."""
from pipeline.providers.preview import PreviewProvider
from pipeline.providers.registry import ProviderEntry


class EchoProvider(PreviewProvider):
    name = "echo"


MADE = []


def _make(options):
    MADE.append(options.timeout)
    return EchoProvider()


def _missing(env):
    return [] if env.get("ECHO_TOKEN") else ["ECHO_TOKEN"]


ENTRY = ProviderEntry("echo", "placeholders, as a plugin", _make,
                      missing_credentials=_missing, free=True)
BROKEN = ProviderEntry("preview", "tries to replace a built-in", lambda options: None)
'''

SPEC = """
    assets:
      - id: a
        prompt: "A sword"
        size: 1024x1024
"""


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An installed distribution (a dist-info on sys.path) declaring two entry points."""
    site = tmp_path / "site"
    (site / "echo_provider.py").parent.mkdir(parents=True)
    (site / "echo_provider.py").write_text(PLUGIN, "utf-8")
    info = site / "assetpipe_echo-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: assetpipe-echo\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        textwrap.dedent(
            """
            [assetpipe.providers]
            echo = echo_provider:ENTRY
            broken = echo_provider:BROKEN
            missing = echo_provider:NOT_THERE
            """
        )
    )
    monkeypatch.syspath_prepend(str(site))
    registry.providers.cache_clear()
    forget_installed()
    yield site
    registry.providers.cache_clear()
    forget_installed()
    sys.modules.pop("echo_provider", None)


def test_builtin_providers_are_listed_in_order():
    """openai, azure and preview are there, and only preview is free."""
    registry.providers.cache_clear()
    forget_installed()
    known = registry.providers()
    assert list(known)[:3] == ["openai", "azure", "preview"]
    assert [name for name, e in known.items() if e.free] == ["preview"]
    assert known["azure"].model_policy == "deployment"


def test_a_plugin_provider_builds_through_its_entry_point(project, run, plugin, monkeypatch):
    """`--provider echo` from an installed plugin builds; the cache key and manifest name
    it, and a plugin that reuses a built-in name or fails to load is skipped."""
    project.gen({"specs/set.yaml": SPEC})
    monkeypatch.setenv("ECHO_TOKEN", "t")
    assert sorted(registry.providers()) == ["azure", "echo", "openai", "preview"]
    result = run("build", "--provider", "echo", "--timeout", "42")
    assert result.code == 0, result.err
    assert sys.modules["echo_provider"].MADE == [42.0]
    manifest = json.loads((project.root / "output/manifest.json").read_text())
    assert [(e["job"], e["provider"], e["status"]) for e in manifest["entries"]] == [
        ("set/a", "echo", "generated")
    ]


def test_a_plugin_provider_states_the_credentials_it_lacks(project, run, plugin):
    """Its missing-credentials check runs like a built-in one: exit 2, naming the variable."""
    project.gen({"specs/set.yaml": SPEC})
    result = run("build", "--provider", "echo")
    assert result.code == 2
    assert result.err.splitlines() == [
        "WARNING: provider plugin echo_provider:BROKEN reuses the name 'preview'; skipped",
        "WARNING: provider plugin echo_provider:NOT_THERE failed to load: "
        "module 'echo_provider' has no attribute 'NOT_THERE'",
        "error: --provider echo needs ECHO_TOKEN",
    ]


def test_unknown_provider_flag_is_a_usage_error_with_a_hint(project, run):
    """A misspelt --provider exits 2 with did-you-mean, before anything is loaded."""
    project.gen({"specs/set.yaml": SPEC})
    result = run("plan", "--provider", "previwe")
    assert result.code == 2
    assert result.err.strip() == "error: unknown provider 'previwe'; did you mean 'preview'?"


def test_unknown_provider_in_settings_points_at_the_line(project, run):
    """`provider:` in assetpipe.yaml naming no provider exits 2 at its file:line:col."""
    project.gen({"specs/set.yaml": SPEC, "assetpipe.yaml": "concurrency: 2\nprovider: dalle\n"})
    result = run("validate")
    assert result.code == 2
    assert result.err.splitlines()[:2] == [
        "error: assetpipe.yaml:2:11: unknown provider 'dalle'",
        "  hint: use one of openai, azure, preview",
    ]


def test_openai_without_a_key_still_says_how_to_go_offline(project, run):
    """The built-in credential check keeps its message and its hint when a build would
    call the provider; planning needs no key (a pull request without secrets plans the
    real provider's jobs and their cost)."""
    project.gen({"specs/set.yaml": SPEC})
    result = run("build", "--provider", "openai")
    assert result.code == 2
    assert result.err.strip() == (
        "error: --provider openai needs an API key: set OPENAI_API_KEY "
        "(or use --provider preview to build offline placeholders)"
    )
    assert not (project / "output").exists()
    for command in ("validate", "plan", "check"):
        planned = run(command, "--provider", "openai")
        assert (planned.code, planned.err) == (0 if command != "check" else 1, "")
    assert "estimated API cost of this build $0.05" in run("plan", "--provider", "openai").out
