"""The smaller commands: graph, cache stats|gc|clear, and python -m pipeline."""

from __future__ import annotations

import subprocess
import sys

SPEC = """
    assets:
      - id: hero
        prompt: a hero
        quality: low
      - id: hero-hat
        prompt: the hero with a hat
        edit: {images: [hero]}
        quality: low
        renditions: [{size: 64x64}]
"""


def test_graph_mermaid_and_dot_show_every_edge(project, run):
    """graph prints each job once and an edge from each input to its dependent."""
    project.gen({"specs/a.yaml": SPEC})
    mermaid = run("graph")
    assert mermaid.code == 0
    assert mermaid.out.splitlines() == [
        "flowchart LR",
        '  j0["a/hero<br/>generate"]',
        '  j1["a/hero-hat<br/>edit"]',
        '  j2["a/hero-hat@64x64<br/>rendition"]',
        "  j0 --> j1",
        "  j1 --> j2",
    ]
    dot = run("graph", "--format", "dot")
    assert dot.code == 0
    assert '  "a/hero" -> "a/hero-hat";' in dot.out
    assert '  "a/hero-hat" -> "a/hero-hat@64x64";' in dot.out
    assert dot.out.startswith("digraph assetpipe {")


def test_cache_stats_gc_and_clear(project, run):
    """stats counts what a build cached; gc keeps intact entries; clear empties the cache."""
    project.gen({"specs/a.yaml": SPEC})
    assert run("build", "--provider", "preview").code == 0
    stats = run("cache", "stats")
    assert stats.code == 0
    assert stats.out.startswith("3 entries, ")
    gc = run("cache", "gc")
    assert gc.out.strip() == "removed 0 broken entries and 0 unused blobs"
    assert run("cache", "clear", "--yes").code == 0
    assert not (project / ".assetpipe/cache").exists()
    assert run("cache", "stats").out.startswith("0 entries, 0 blobs")


def test_python_dash_m_pipeline_is_the_same_command(project):
    """`python -m pipeline validate` works like `assetpipe validate`."""
    project.gen({"specs/a.yaml": SPEC})
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "validate", "--project", str(project.root)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok: 1 spec file, 2 API jobs, 1 rendition"


def test_settings_precedence_flags_over_environment_over_file(project):
    """CLI flags beat ASSETPIPE_* variables, which beat assetpipe.yaml, which beats defaults."""
    from pipeline.settings import resolve_settings

    project.gen({"assetpipe.yaml": "concurrency: 3\nmax_cost: 9\nmodel: gpt-image-2\n"})
    env = {"ASSETPIPE_CONCURRENCY": "5", "ASSETPIPE_MODEL": "gpt-image-2.5-sunburst"}
    got = resolve_settings(project.root, {"concurrency": 7}, env)
    assert (got.concurrency, got.model, got.max_cost, got.timeout) == (
        7,
        "gpt-image-2.5-sunburst",
        9.0,
        600.0,
    )
    got = resolve_settings(project.root, {}, env)
    assert got.concurrency == 5
    got = resolve_settings(project.root, {}, {})
    assert (got.concurrency, got.model, got.provider, got.provider_is_default) == (
        3,
        "gpt-image-2",
        "preview",
        True,
    )
    assert resolve_settings(project.root, {}, {"OPENAI_API_KEY": "sk-x"}).provider == "openai"
