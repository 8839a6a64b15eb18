"""``options:``: settings a provider declares, validated by its options model at the
spec's file:line, sent on its wire, and part of the cache key only when given."""

from __future__ import annotations

import json

from pipeline.jobs.wire import RequestSettings
from pipeline.plugins import forget_installed
from pipeline.providers import registry
from pipeline.providers.openai_request import OPENAI_FORMAT

SPEC = """
    defaults:
      options: {user: team-a}
    assets:
      - id: sword
        prompt: "A sword"
        size: 1024x1024
        quality: low
      - id: shield
        prompt: "A shield"
        size: 1024x1024
        quality: low
        options: {user: player-7}
      - id: plain
        prompt: "A plain"
        size: 1024x1024
        quality: low
        options: {}
"""


def test_openai_options_go_on_the_wire_and_the_asset_wins(project, run, api):
    """``user`` reaches the Images API; an asset's own option beats the spec's default."""
    project.gen({"specs/set.yaml": SPEC})
    done = run("build", "--provider", "openai")
    assert done.code == 0, done.err
    users = {r.fields.get("prompt"): r.fields.get("user") for r in api.requests}
    assert users == {"A sword": "team-a", "A shield": "player-7", "A plain": "team-a"}


def test_an_option_changes_the_key_and_no_option_leaves_it(project, run):
    """Setting an option makes a new request; the plan without one keys as before."""
    project.gen({"specs/set.yaml": SPEC})
    planned = json.loads(run("plan", "--provider", "openai", "--json").out)
    keys = {j["id"]: j["cache_key"] for j in planned["jobs"]}
    params = {j["id"]: j["params"] for j in planned["jobs"]}
    assert params["set/shield"]["user"] == "player-7"
    project.gen({"specs/set.yaml": SPEC.replace("options: {user: team-a}", "tags: []")})
    bare = json.loads(run("plan", "--provider", "openai", "--json").out)
    bare_keys = {j["id"]: j["cache_key"] for j in bare["jobs"]}
    assert "user" not in {k for j in bare["jobs"] for k in j["params"] if j["id"] == "set/sword"}
    assert bare_keys["set/sword"] != keys["set/sword"]
    assert bare_keys["set/shield"] == keys["set/shield"]


def test_option_mistakes_are_reported_where_they_are_written(project, run):
    """An unknown option (with a did-you-mean), a value of the wrong shape, and options in
    defaults are each reported at their line; the command exits 2 without a traceback."""
    project.gen(
        {
            "specs/set.yaml": """
                defaults:
                  options: {usr: x}
                assets:
                  - id: a
                    prompt: "A"
                    options:
                      user: ""
            """
        }
    )
    done = run("validate", "--provider", "openai")
    assert done.code == 2
    assert "specs/set.yaml:2:13: unknown option 'usr' for provider openai" in done.err
    assert "did you mean 'user'?" in done.err
    assert "specs/set.yaml:7:13: option 'user': String should have at least 1 character" in (
        done.err
    )


def test_openai_wording_is_owned_by_the_provider():
    """The OpenAI request format names the Images API's calls and words each setting; the
    built-in providers all use it and register through the entry point group."""
    settings = RequestSettings(
        kind="edit",
        width=1536,
        height=1024,
        quality="high",
        background="opaque",
        format="webp",
        compression=80,
        input_fidelity="high",
        options={"user": "u1"},
    )
    wire = OPENAI_FORMAT.wire(settings)
    assert wire.endpoint == "images/edits"
    assert wire.params == {
        "size": "1536x1024",
        "quality": "high",
        "background": "opaque",
        "output_format": "webp",
        "output_compression": 80,
        "input_fidelity": "high",
        "user": "u1",
        "n": 1,
    }
    registry.providers.cache_clear()
    forget_installed()
    for name in ("openai", "azure", "preview"):
        assert registry.get(name).request_format is OPENAI_FORMAT
    from importlib.metadata import entry_points

    ours = {p.name for p in entry_points(group="assetpipe.providers") if p.dist.name == "assetpipe"}
    assert ours == {"openai", "azure", "preview"}
