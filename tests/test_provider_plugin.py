"""A provider from a separate package (tests/plugins/assetpipe-sketch), pip-installed and
found through its entry point: its own model, option, price and wire, with no line of
assetpipe changed. Run as real processes, as a user would run them."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from PIL import Image
from plugin_kit import with_plugins
from processes import ASSETPIPE

SPEC = """
    assets:
      - id: tree
        prompt: "A tree"
        model: sketch-1
        size: 256x128
        quality: draft
        options: {strokes: 5}
      - id: hill
        prompt: "A hill"
        model: sketch-1
        size: 128x128
        quality: fine
"""


def assetpipe(project: Path, site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = with_plugins(site, os.environ)
    return subprocess.run(
        [*ASSETPIPE, *args, "--project", str(project)],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_plan_prices_the_plugins_model_and_words_its_request(project, plugin_site):
    """``plan`` takes the plugin's model and option, and prices it per image."""
    project.gen({"specs/art.yaml": SPEC})
    done = assetpipe(project.root, plugin_site, "plan", "--provider", "sketch", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    jobs = {j["id"]: j for j in report["jobs"]}
    assert jobs["art/tree"]["estimated_cost_usd"] == 0.002
    assert report["totals"]["estimated_cost_usd"] == 0.004
    assert jobs["art/tree"]["params"] == {"size": "256x128", "quality": "draft", "strokes": 5}
    assert jobs["art/hill"]["params"]["strokes"] == 24  # the option's default


def test_the_plugins_options_are_checked_at_file_line(project, plugin_site):
    """A value out of the option's range and a misspelt option are each reported at their
    place in the spec, with what would be right; nothing is built."""
    project.gen(
        {
            "specs/art.yaml": """
                assets:
                  - id: tree
                    prompt: "A tree"
                    model: sketch-1
                    size: 256x128
                    options: {strokes: 500}
                  - id: hill
                    prompt: "A hill"
                    model: sketch-1
                    size: 128x128
                    options:
                      stroke: 3
            """
        }
    )
    done = assetpipe(project.root, plugin_site, "build", "--provider", "sketch")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "specs/art.yaml:6:" in done.stderr and "option 'strokes'" in done.stderr
    assert "less than or equal to 64" in done.stderr
    assert "specs/art.yaml:12:" in done.stderr
    assert "unknown option 'stroke' for provider sketch" in done.stderr
    assert "did you mean 'strokes'?" in done.stderr
    assert not (project.root / "output").exists()


def test_a_build_draws_with_the_plugin_and_charges_its_price(project, plugin_site):
    """The build makes real images through the plugin's provider and records its cost; a
    second build is served from the cache and pays nothing."""
    project.gen({"specs/art.yaml": SPEC})
    done = assetpipe(project.root, plugin_site, "build", "--provider", "sketch")
    assert done.returncode == 0, done.stderr
    with Image.open(project.root / "output/art/tree.png") as image:
        assert image.size == (256, 128)
        assert image.getextrema() != ((255, 255), (255, 255), (255, 255))  # strokes drawn
    manifest = json.loads((project.root / "output/manifest.json").read_text("utf-8"))
    tree = next(e for e in manifest["entries"] if e["job"] == "art/tree")
    assert tree["provider"] == "sketch" and tree["model"] == "sketch-1"
    assert tree["cost_usd"] == 0.002
    again = assetpipe(project.root, plugin_site, "build", "--provider", "sketch", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["spent_usd"] == 0


def test_an_edit_the_provider_cannot_word_is_a_plan_error(project, plugin_site):
    """The plugin refuses edits in its request format: said at the asset, not a traceback."""
    project.gen(
        {
            "specs/art.yaml": """
                assets:
                  - id: base
                    prompt: "A base"
                    model: sketch-1
                    size: 128x128
                  - id: more
                    prompt: "More"
                    model: sketch-1
                    size: 128x128
                    edit: {images: [base]}
            """
        }
    )
    done = assetpipe(project.root, plugin_site, "plan", "--provider", "sketch")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "specs/art.yaml:6:" in done.stderr
    assert "provider sketch cannot make this: it only generates" in done.stderr
    assert "Traceback" not in done.stderr
