"""An image operation from a separate package (tests/plugins/assetpipe-op-posterize),
pip-installed and found through its ``assetpipe.ops`` entry point, with no line of
assetpipe changed. Run as real processes, as a user would run them."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from PIL import Image
from plugin_kit import with_plugins
from processes import ASSETPIPE, PINNED_TODAY

SPEC = """
    assets:
      - id: poster
        prompt: "A poster"
        size: 256x256
        quality: low
        ops: [{op: posterize, bits: BITS}]
        renditions:
          - {size: 64x64}
"""


def assetpipe(project: Path, site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``assetpipe ARGS`` in its own process, seeing the installed plugins, this test's
    state folder and pinned day, and none of the developer's settings."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ASSETPIPE_"))},
        "ASSETPIPE_TODAY": PINNED_TODAY,
        "ASSETPIPE_STATE_DIR": os.environ["ASSETPIPE_STATE_DIR"],
    }
    return subprocess.run(
        [*ASSETPIPE, *args, "--project", str(project)],
        env=with_plugins(site, env),
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


def levels(path: Path) -> set[int]:
    """Every value any color channel of the image takes."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    return {v for _, color in rgb.getcolors(rgb.width * rgb.height) or [] for v in color}


def manifest(project: Path) -> dict[str, dict]:
    doc = json.loads((project / "output/manifest.json").read_text())
    return {e["path"]: e for e in doc["entries"]}


def test_the_plugin_operation_posterizes_and_a_change_remakes_without_a_new_image(
    project, plugin_site
):
    """The delivered file keeps 2 bits per channel (4 levels) and the manifest names the
    plugin's operation; with ``bits: 3`` the file is made again from the cached image
    (``cached``, no call) with 8 levels, and so is its rendition."""
    project.gen({"specs/art.yaml": SPEC.replace("BITS", "2")})
    done = assetpipe(project.root, plugin_site, "build", "--provider", "preview")
    assert done.returncode == 0, done.stderr
    poster = project / "output/art/poster.png"
    assert levels(poster) <= {0, 64, 128, 192}
    assert len(levels(poster)) > 1
    entry = manifest(project.root)["art/poster.png"]
    assert entry["status"] == "generated"
    assert entry["ops"] == [{"op": "posterize", "params": {"bits": 2}, "version": 1}]

    project.gen({"specs/art.yaml": SPEC.replace("BITS", "3")})
    done = assetpipe(project.root, plugin_site, "build", "--provider", "preview")
    assert done.returncode == 0, done.stderr
    assert "1 generated, 1 cached" in done.stdout + done.stderr
    found = manifest(project.root)
    assert found["art/poster.png"]["status"] == "cached"
    assert found["art/poster@64x64.png"]["status"] == "generated"
    assert levels(poster) <= set(range(0, 256, 32))
    assert len(levels(poster) - {0, 64, 128, 192}) > 0


def test_a_bad_parameter_of_the_plugin_operation_is_a_spec_error_at_its_line(project, plugin_site):
    """``bits: 9`` is out of the plugin's own range: an error at the parameter, with the
    range, and nothing built."""
    project.gen({"specs/art.yaml": SPEC.replace("BITS", "9")})
    done = assetpipe(project.root, plugin_site, "build", "--provider", "preview")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert (
        "error: specs/art.yaml:6:33: 'bits': Input should be less than or equal to 8" in done.stderr
    )
    assert "hint: use a number from 1 to 8" in done.stderr
    assert not (project / "output/art/poster.png").exists()
