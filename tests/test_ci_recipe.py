"""The CI recipe (``examples/ci/github-actions.yml``, docs/ci.md) is a workflow that runs.

The workflow file is checked against GitHub's workflow schema (SchemaStore's, vendored by
the ``check-jsonschema`` package: no network) plus what a schema cannot see: which jobs
hold which secrets, what ``needs`` names, which expressions it uses. Then the assetpipe
commands of each of its jobs, read from the file itself, run in order as separate
processes, each job on a fresh copy of the project, against the fake Images API and a
real S3 server (SeaweedFS), with the variables and secrets the workflow names filled in:
the pull-request job, the three shards at once, and the assemble job.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from processes import PINNED_TODAY
from s3servers import S3Server
from test_remote_build import shas

WORKFLOW = Path(__file__).resolve().parents[1] / "examples/ci/github-actions.yml"
BIN = Path(sys.executable).parent
EXPRESSION = re.compile(r"\$\{\{\s*([\w.-]+)\s*\}\}")
INSTALL = "pip install 'assetpipe[s3]'"

SPEC = """
    assets:
      - id: "g{{ i }}"
        prompt: "Crest number {{ i }}"
        matrix: {i: [1, 2, 3, 4, 5, 6, 7, 8]}
        size: 1024x1024
        quality: low
        renditions:
          - {size: 64x64, format: webp}
      - id: winter
        prompt: "Crest 1 in winter colors"
        size: 1024x1024
        quality: low
        edit: {images: [g1]}
    sheets:
      - id: pair
        assets: [g1, g2]
"""
API_JOBS = 9
JOBS = 18  # 8 generations and their renditions, the edit, the sheet


def workflow() -> dict[str, Any]:
    loaded = yaml.safe_load(WORKFLOW.read_text("utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def job_env(flow: dict[str, Any], job: str, context: dict[str, str]) -> dict[str, str]:
    """The job's environment as the runner sets it: the workflow's, then the job's, with
    every ``${{ ... }}`` filled from ``context`` (a KeyError for one the test lacks)."""
    merged = {**flow.get("env", {}), **flow["jobs"][job].get("env", {})}
    return {name: fill(str(value), context) for name, value in merged.items()}


def fill(text: str, context: dict[str, str]) -> str:
    return EXPRESSION.sub(lambda m: context[m.group(1)], text)


def commands(flow: dict[str, Any], job: str) -> list[str]:
    """The ``run`` steps of a job that call assetpipe (the others only install it)."""
    runs = [step["run"] for step in flow["jobs"][job]["steps"] if "run" in step]
    assert [r for r in runs if not r.startswith("assetpipe ")] == [INSTALL]
    return [r for r in runs if r.startswith("assetpipe ")]


# -- the file ---------------------------------------------------------------------------------


def test_the_workflow_is_valid_for_github(tmp_path: Path):
    """The file passes GitHub's workflow schema, and a broken copy does not (so the check
    can fail). actionlint would check more, but installs from PyPI only by downloading a
    binary from GitHub at build time, which CI machines here cannot."""
    check = [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows"]
    ok = subprocess.run([*check, str(WORKFLOW)], capture_output=True, text=True, check=False)
    assert (ok.returncode, ok.stdout.strip()) == (0, "ok -- validation done"), ok.stdout
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text("utf-8").replace("runs-on:", "runs_on:"), "utf-8")
    bad = subprocess.run([*check, str(broken)], capture_output=True, text=True, check=False)
    assert bad.returncode == 1
    assert "'runs-on' is a required property" in bad.stdout


def test_only_main_holds_a_key_and_pull_requests_never_write():
    """The pull-request job has no OpenAI key and reads the cache with a read-only key in
    read-only mode; the shards write with their own key; every job ``needs`` exists; the
    expressions use only variables, secrets and the matrix."""
    flow = workflow()
    jobs = flow["jobs"]
    assert set(jobs) == {"plan", "build", "assemble"}
    assert jobs["plan"]["if"] == "github.event_name == 'pull_request'"
    assert jobs["build"]["if"] == "github.event_name != 'pull_request'"
    assert jobs["assemble"]["needs"] == "build"
    assert {"pull_request", "merge_group", "push"} == set(flow[True])  # YAML 1.1 reads on: as True
    plan_env = {**flow["env"], **jobs["plan"]["env"]}
    assert "OPENAI_API_KEY" not in plan_env
    assert plan_env["ASSETPIPE_REMOTE_CACHE_MODE"] == "read-only"
    assert "READER" in plan_env["AWS_ACCESS_KEY_ID"]
    assert jobs["build"]["env"]["ASSETPIPE_REMOTE_CACHE_MODE"] == "read-write"
    assert jobs["build"]["strategy"]["matrix"]["shard"] == [1, 2, 3]
    used = set(EXPRESSION.findall(WORKFLOW.read_text("utf-8")))
    assert {u.split(".")[0] for u in used} == {"vars", "secrets", "matrix", "strategy"}
    upload = jobs["assemble"]["steps"][-1]
    assert upload["uses"].startswith("actions/upload-artifact@")
    assert upload["with"]["path"] == "output/"


# -- the commands, run --------------------------------------------------------------------------


class Recipe:
    """The workflow's jobs run on machines that are copies of one project."""

    def __init__(self, project: Any, tmp_path: Path, server: S3Server, fake: Any):
        self.flow = workflow()
        self.project = project
        self.tmp_path = tmp_path
        self.server = server
        self.url = server.url()
        assert server.reader is not None
        self.context = {
            "vars.ASSETPIPE_REMOTE_CACHE": self.url,
            "vars.AWS_REGION": server.environ()["AWS_REGION"],
            "vars.AWS_ENDPOINT_URL": server.endpoint,
            "secrets.OPENAI_API_KEY": "sk-test-key",
            "secrets.CACHE_WRITER_KEY_ID": server.access_key,
            "secrets.CACHE_WRITER_SECRET": server.secret_key,
            "secrets.CACHE_READER_KEY_ID": server.reader[0],
            "secrets.CACHE_READER_SECRET": server.reader[1],
            "secrets.ASSETPIPE_REMOTE_CACHE_SECRET": "ci-team-secret-" + "3" * 32,
        }
        self.base = {
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("OPENAI_", "ASSETPIPE_", "AWS_"))
            },
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "OPENAI_BASE_URL": fake.base_url,  # the fake stands in for api.openai.com
            "ASSETPIPE_TODAY": PINNED_TODAY,
            "ASSETPIPE_STATE_DIR": os.environ.get("ASSETPIPE_STATE_DIR", ""),
        }

    def checkout(self, name: str) -> Path:
        root = self.tmp_path / name
        shutil.copytree(self.project.root, root)
        return root

    def start(self, job: str, name: str, **context: str) -> tuple[Path, subprocess.Popen[str]]:
        """Run the job's assetpipe steps in order on a fresh checkout, as ``bash -e``
        runs each (GitHub's default shell); returns at once."""
        root = self.checkout(name)
        env = {**self.base, **job_env(self.flow, job, {**self.context, **context})}
        script = "\n".join(fill(c, {**self.context, **context}) for c in commands(self.flow, job))
        proc = subprocess.Popen(
            ["bash", "-e", "-c", script],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        return root, proc

    def run(self, job: str, name: str, **context: str) -> tuple[Path, str]:
        root, proc = self.start(job, name, **context)
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{job} on {name} exited {proc.returncode}:\n{out}\n{err}"
        return root, out

    def objects(self) -> dict[str, tuple[int, str | None]]:
        return self.server.objects(self.url.removeprefix(f"s3://{self.server.bucket}/"))


def test_the_recipe_runs_pull_request_shards_and_assembly(project, tmp_path, api, seaweedfs_s3):
    """The pull-request job writes no object, before or after main built; three shards
    at once pay for every image exactly once between them; the assemble job pays for
    nothing, its check passes, and its output/ is every shard's files, byte for byte,
    with the same files a single machine's unsharded build makes."""
    project.gen({"specs/set.yaml": SPEC, "assetpipe.yaml": "provider: openai\n"})
    recipe = Recipe(project, tmp_path, seaweedfs_s3, api)
    assert commands(recipe.flow, "plan") == ["assetpipe validate", "assetpipe plan"]
    assert commands(recipe.flow, "build") == [
        "assetpipe plan --shard ${{ matrix.shard }}/${{ strategy.job-total }}",
        "assetpipe build --shard ${{ matrix.shard }}/${{ strategy.job-total }} --max-cost 20",
    ]
    assert commands(recipe.flow, "assemble") == [
        "assetpipe build --max-cost 0",
        "assetpipe check",
    ]

    _, planned = recipe.run("plan", "pr-before")
    assert f"{JOBS} jobs ({API_JOBS} generate, {JOBS - API_JOBS} render)" in planned
    assert recipe.objects() == {}
    assert api.count() == 0

    shards = [
        recipe.start("build", f"shard-{i}", **{"matrix.shard": str(i), "strategy.job-total": "3"})
        for i in (1, 2, 3)
    ]
    for root, proc in shards:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{root.name}:\n{out}\n{err}"
    assert api.billed_images == API_JOBS
    asked = Counter(r.fields["prompt"] for r in api.requests)
    assert set(asked.values()) == {1}, asked
    made = [shas(root) for root, _ in shards]
    assert all(made), "each shard owns some chain of this spec"
    union = {path: sha for share in made for path, sha in share.items()}
    assert sum(len(share) for share in made) == len(union)

    api.reset_counters()
    before = recipe.objects()
    blobs = {name.rsplit("/", 1)[1] for name in before if "/blobs/" in name}
    facts = {name.rsplit("/", 1)[1] for name in before if "/facts/" in name}
    # Sealed inspections beside the images (one per picture a shard inspected: images
    # with the same pixels share one, and the API's own bytes kept beside have none).
    assert facts <= {f"{sha}.json" for sha in blobs} and len(facts) >= API_JOBS
    _, planned = recipe.run("plan", "pr-after")
    assert f"{JOBS} jobs ({JOBS} cached)" in planned
    assert recipe.objects() == before

    assembled, checked = recipe.run("assemble", "assemble")
    assert api.count() == 0
    assert checked.splitlines()[-1] == f"up to date: {JOBS} jobs"
    assert shas(assembled) == union
    manifest = json.loads((assembled / "output/manifest.json").read_text("utf-8"))
    assert {e["status"] for e in manifest["entries"]} == {"cached"}

    single = recipe.checkout("single")
    alone = subprocess.run(
        ["assetpipe", "build", "-q"],
        cwd=single,
        env={**recipe.base, "OPENAI_API_KEY": "sk-test-key"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert alone.returncode == 0, alone.stderr
    assert api.billed_images == API_JOBS
    assert set(shas(single)) == set(union)


@pytest.fixture(autouse=True)
def no_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)


def test_a_shard_whose_cache_key_is_refused_stops_before_paying(
    project, tmp_path, api, seaweedfs_s3
):
    """The recipe requires the shared cache on the shards: a shard whose cache secret is
    wrong (or did not arrive) exits 2 with why, before a single image is paid for, instead
    of paying again for what the bucket holds."""
    project.gen({"specs/set.yaml": SPEC, "assetpipe.yaml": "provider: openai\n"})
    recipe = Recipe(project, tmp_path, seaweedfs_s3, api)
    for job in ("build", "assemble"):
        assert job_env(recipe.flow, job, recipe.context)["ASSETPIPE_REMOTE_CACHE_REQUIRED"] == "1"
    root, proc = recipe.start(
        "build",
        "shard-1",
        **{
            "matrix.shard": "1",
            "strategy.job-total": "1",
            "secrets.CACHE_WRITER_SECRET": "not-the-secret",
        },
    )
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 2, f"{out}\n{err}"
    assert "The shared cache is required here" in err
    assert api.count() == 0
    assert not (root / "output").exists()
