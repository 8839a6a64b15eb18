"""``complexity`` and ``markup`` from the spec to the wire and into the cache key: the
real CLI and SDK against the fake Images API, which checks them as the API would."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from images import png

GENERATE = """\
assets:
  - id: fox
    prompt: "A fox logo"
    model: gpt-image-2.6-flare
    size: 1024x1024
    quality: low
{extra}"""

EDIT = """\
assets:
  - id: fox
    prompt: "Make the fox blue where it is drawn over"
    model: {model}
    size: 1024x1024
    quality: low
    edit:
      images: [{{file: fox.png}}]
{extra}"""


def keys(project: Any) -> dict[str, str]:
    """Each delivered file's cache key, from the manifest."""
    data = json.loads((project / "output/manifest.json").read_text("utf-8"))
    return {e["job"]: e["cache_key"] for e in data["entries"]}


def test_complexity_reaches_the_api_and_the_key(project, run, api) -> None:
    """The fake receives ``complexity``; each value has its own key; without it, the
    request and the key are as before (no ``complexity`` field at all)."""
    seen: dict[str, str] = {}
    for extra in ("", "    complexity: low\n", "    complexity: high\n"):
        project.gen({"specs/s.yaml": GENERATE.format(extra=extra)})
        result = run("build", "--provider", "openai")
        assert result.code == 0, result.err
        fields = api.requests[-1].fields
        seen[extra.strip() or "unset"] = keys(project)["s/fox"]
        if extra:
            assert fields["complexity"] == extra.split(": ")[1].strip()
        else:
            assert "complexity" not in fields
    assert len(set(seen.values())) == 3
    assert api.count() == 3


def test_the_fake_refuses_complexity_where_the_model_has_none(api) -> None:
    """As the API would: a 400 naming the parameter (the planner refuses it first)."""
    import openai

    client = openai.OpenAI(base_url=api.base_url, api_key="sk-test", max_retries=0)
    try:
        client.images.generate(model="gpt-image-2.5-flare", prompt="x", complexity="low")
    except openai.BadRequestError as exc:
        assert exc.param == "complexity"
    else:
        raise AssertionError("complexity on 2.5 was accepted")


def test_markup_is_sent_as_a_file_and_keyed(project, run, api) -> None:
    """``edit.markup`` goes as the ``markup`` file field; the key changes with its bytes
    and an edit without markup keeps the key it had."""
    markup_a = png(256, 256, (0, 0, 255, 128))
    markup_b = png(256, 256, (255, 0, 0, 128))
    project.gen({"specs/fox.png": png(256, 256), "specs/m.png": markup_a})
    project.gen({"specs/s.yaml": EDIT.format(model="gpt-image-2.5-flare", extra="")})
    assert run("build", "--provider", "openai").code == 0
    plain = keys(project)["s/fox"]
    assert api.requests[-1].markup_sha256 is None
    project.gen(
        {
            "specs/s.yaml": EDIT.format(
                model="gpt-image-2.5-flare", extra="      markup: {file: m.png}\n"
            )
        }
    )
    result = run("build", "--provider", "openai")
    assert result.code == 0, result.err
    assert api.requests[-1].markup_sha256 == hashlib.sha256(markup_a).hexdigest()
    with_a = keys(project)["s/fox"]
    project.gen({"specs/m.png": markup_b})
    assert run("build", "--provider", "openai").code == 0
    assert api.requests[-1].markup_sha256 == hashlib.sha256(markup_b).hexdigest()
    assert len({plain, with_a, keys(project)["s/fox"]}) == 3
    assert api.count() == 3


def test_a_markup_of_another_size_is_refused_at_its_line(project, run, api) -> None:
    """Like a mask: the size of the first image, checked before anything is paid."""
    project.gen({"specs/fox.png": png(256, 256), "specs/m.png": png(128, 128)})
    project.gen(
        {
            "specs/s.yaml": EDIT.format(
                model="gpt-image-2.5-flare", extra="      markup: {file: m.png}\n"
            )
        }
    )
    result = run("build", "--provider", "openai")
    assert result.code != 0
    assert "s.yaml:9:15: the markup is 128x128 but the first image is 256x256" in result.err
    assert api.count() == 0
