"""The C2PA verdict on the API's bytes is only ever about bytes that can carry a manifest.

Delivering a file whose API bytes cannot hold a manifest store reads no verdict, neither
from the bytes nor from the memo: a restore does not look it up (one memo read less per
file), and a verdict planted in the memo for such bytes never reaches the manifest.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

from PIL import Image

from pipeline.postprocess import has_c2pa
from pipeline.store.memo import encode_inspection, parse_inspection

SPEC = """
    assets:
      - id: tile
        prompt: "A flat tile"
        size: 1024x1024
        quality: low
"""


def plain_png() -> bytes:
    """A 1024x1024 PNG with no manifest store (what the fake answers with here)."""
    buffer = io.BytesIO()
    Image.new("RGB", (1024, 1024), (228, 87, 46)).save(buffer, "PNG")
    return buffer.getvalue()


def entry(project: Any) -> dict[str, Any]:
    doc = json.loads((project / "output/manifest.json").read_text())
    (found,) = doc["entries"]
    return dict(found)


def test_a_verdict_planted_for_bytes_without_a_manifest_is_not_reported(
    project: Any, run: Any, api: Any
) -> None:
    api.configure(image_bytes=plain_png())
    project.gen({"specs/tiles.yaml": SPEC})
    assert run("build", "--provider", "openai").code == 0
    fresh = entry(project)
    delivered = (project / "output" / fresh["path"]).read_bytes()
    assert not has_c2pa(delivered)
    assert "original" not in fresh["provenance"]
    record: Path = (
        project / ".assetpipe/cache/memo" / fresh["sha256"][:2] / f"{fresh['sha256']}.json"
    )
    known = parse_inspection(fresh["sha256"], record.read_bytes())
    assert known is not None
    planted = {"valid": True, "signer": "Planted Signer", "ai_generated": False}
    record.write_bytes(
        encode_inspection(fresh["sha256"], known.merged(type(known)(c2pa_verdict=planted)))
    )
    shutil.rmtree(project / "output")
    assert run("build", "--provider", "openai").code == 0
    restored = entry(project)
    assert restored["status"] == "cached"
    assert restored["provenance"] == fresh["provenance"]
    assert "Planted" not in (project / "output/manifest.json").read_text()
