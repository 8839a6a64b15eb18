"""A plain build loads only what it uses: the modules of features it was not asked for
(the Batch API route, the quality gate's judge) stay unloaded, so they cost its start
nothing. Checked by the modules a fresh process holds once the build is over, not by a
timer."""

from __future__ import annotations

import json
import os
import subprocess
import sys

MODULES_PROBE = (
    "import json, sys\n"
    "from pipeline.cli import main\n"
    "try:\n"
    "    main(['build', '--provider', 'openai', '--project', sys.argv[1]])\n"
    "except SystemExit as exc:\n"
    "    print('exit', exc.code, file=sys.stderr)\n"
    "print(json.dumps(sorted(m for m in sys.modules if m.startswith('pipeline.'))))\n"
)

BATCH_AND_JUDGE = (
    "pipeline.runner.batching",
    "pipeline.jobs.batch",
    "pipeline.runner.polling",
    "pipeline.runner.judging",
    "pipeline.runner.judge_batching",
    "pipeline.runner.judge_journal",
    "pipeline.jobs.judge_batch",
    "pipeline.api.qa_batch",
)
"""What only ``build --batch`` or the quality gate's judge needs."""

TWO_ASSETS = """
    assets:
      - id: one
        prompt: "One flat tile"
        size: 1024x1024
        quality: low
      - id: two
        prompt: "Another flat tile"
        size: 1024x1024
        quality: low
"""


def loaded_by_build(root: str) -> tuple[str, set[str]]:
    """Run a paying build in a fresh process; its exit line and the pipeline modules it
    had loaded by the end."""
    done = subprocess.run(
        [sys.executable, "-c", MODULES_PROBE, root],
        capture_output=True,
        text=True,
        check=False,
        env=os.environ.copy(),
    )
    exit_line = done.stderr.strip().splitlines()[-1]
    return exit_line, set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_a_plain_build_never_loads_the_batch_route_or_the_judge(project, api):
    """Two images paid for directly, no quality gate: the build ran its paid route (the
    runner, the dispatcher, the provider and the gate's entry point are loaded) and never
    loaded the Batch API route or the judging machinery."""
    project.gen({"specs/tiles.yaml": TWO_ASSETS})
    exit_line, loaded = loaded_by_build(str(project.root))
    assert exit_line == "exit 0"
    assert api.count() == 2
    assert {
        "pipeline.runner.engine",
        "pipeline.runner.dispatch",
        "pipeline.providers.openai_provider",
        "pipeline.api.qa",
    } <= loaded
    assert loaded.isdisjoint(BATCH_AND_JUDGE), sorted(loaded & set(BATCH_AND_JUDGE))
