"""SIGKILL at 20 points of real builds: nothing truncated, nothing paid twice.

The kill points are chosen by progress (after k images were billed), not by a timer, so the
test hits builds mid-work on a fast machine and a slow one alike."""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
from pathlib import Path

import pytest
from PIL import Image
from processes import ASSETPIPE, build_env, start_fake

KILLS = 20
JOBS = 8

SPEC = """
    vars: {{round: {round}}}
    assets:
      - id: "a{{{{ i }}}}"
        prompt: "Round {{{{ round }}}} picture {{{{ i }}}}"
        matrix: {{i: [{items}]}}
        size: 1024x1024
        quality: low
        renditions: [{{size: 256x256, format: webp}}]
"""


def spec(round_: int) -> str:
    return SPEC.format(round=round_, items=", ".join(str(i) for i in range(1, JOBS + 1)))


def assert_nothing_truncated(root: Path) -> None:
    """Every output image decodes fully, every cache blob hashes to its name, and the
    manifest parses. (After a kill the manifest is the last checkpoint: a file written
    since may be newer than its entry, which the next build notices by size and hash.)"""
    output = root / "output"
    for path in output.rglob("*"):
        if path.is_file() and path.suffix in (".png", ".webp", ".jpg"):
            with Image.open(path) as image:
                image.load()
    for blob in (root / ".assetpipe/cache/blobs").glob("*/*"):
        if not blob.name.startswith("."):
            assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name, blob
    manifest = output / "manifest.json"
    if manifest.exists():
        assert json.loads(manifest.read_text())["version"] == 1


def statuses(root: Path, env: dict[str, str]) -> dict[str, str]:
    command = [*ASSETPIPE, "plan", "--json", "--provider", "openai", "--project", str(root)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True, timeout=60)
    return {job["id"]: job["status"] for job in json.loads(done.stdout)["jobs"]}


@pytest.mark.slow
def test_sigkill_at_random_points_loses_nothing_and_pays_only_for_the_missing(project):
    """20 rounds: change the prompts, start a build, SIGKILL it once the fake has billed a
    random number of this round's images (0 = during start-up), check that nothing is
    truncated, then let a build finish and check it paid exactly for the API jobs the
    plan still listed as `generate`, i.e. those that never completed."""
    rng = random.Random(20261124)
    with start_fake("--latency", "0.15") as fake:
        env = build_env(fake)
        command = [
            *ASSETPIPE,
            "build",
            "--provider",
            "openai",
            "--project",
            str(project.root),
            "--concurrency",
            "3",
            "-q",
        ]
        for round_ in range(KILLS):
            project.gen({"specs/set.yaml": spec(round_)})
            start = fake.stats()["billed_images"]
            kill_after = rng.randrange(JOBS)
            with subprocess.Popen(
                command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            ) as proc:
                if kill_after:
                    fake.wait_for(start + kill_after, timeout=60)
                proc.kill()
                proc.wait(timeout=30)
            fake.settle()
            assert_nothing_truncated(project.root)
            before = fake.stats()["billed_images"]
            assert before - start >= kill_after
            plan = statuses(project.root, env)
            missing = sum(
                1 for job, status in plan.items() if status == "generate" and "@" not in job
            )
            done = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=120, check=False
            )
            assert done.returncode == 0, done.stderr
            assert fake.stats()["billed_images"] - before == missing, f"round {round_}"
            assert set(statuses(project.root, env).values()) == {"up-to-date"}
            assert_nothing_truncated(project.root)
