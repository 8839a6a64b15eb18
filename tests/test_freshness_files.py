"""The up-to-date check of a whole plan's files at one ``lstat`` each: it must always give
the answer :meth:`OutputTree.matches` gives, link or odd path included."""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.output import OutputTree, load_manifest
from pipeline.output.update import CheckpointPace
from pipeline.runner.freshness import _Unchanged

SPEC = """
    assets:
      - id: "tile-{{ n }}"
        prompt: "Tile {{ n }}"
        matrix: {n: [1, 2, 3]}
        size: 256x256
        quality: low
"""


def _touch(out: Path) -> None:
    path = out / "tiles/tile-1.png"
    info = path.stat()
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))


def _changed(out: Path) -> None:
    path = out / "tiles/tile-1.png"
    info = path.stat()
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))


def _folder_link(out: Path) -> None:
    moved = out.parent / "elsewhere"
    shutil.move(out / "tiles", moved)
    (out / "tiles").symlink_to(moved)


def _file_link(out: Path) -> None:
    path = out / "tiles/tile-1.png"
    moved = out.parent / "tile-1.png"
    shutil.move(path, moved)
    path.symlink_to(moved)


CHANGES: dict[str, Callable[[Path], None]] = {
    "nothing": lambda out: None,
    "a file touched, same bytes": _touch,
    "a file changed": _changed,
    "a file removed": lambda out: (out / "tiles/tile-2.png").unlink(),
    "the folder a link": _folder_link,
    "a file a link": _file_link,
    "the folder removed": lambda out: shutil.rmtree(out / "tiles"),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_it_answers_as_matches_does(project, run, change: str) -> None:  # type: ignore[no-untyped-def]
    project.gen({"specs/tiles.yaml": SPEC})
    assert run("build", "--provider", "preview").code == 0
    out = project.root / "output"
    entries = list(load_manifest(out).entries.values())
    odd = [dataclasses.replace(e, path=f"./{e.path}") for e in entries]
    odd += [dataclasses.replace(e, path=e.path.replace("/", "//")) for e in entries]
    odd += [dataclasses.replace(entries[0], path="../output/" + entries[0].path)]
    odd += [dataclasses.replace(entries[0], sha256="0" * 63 + "G")]
    CHANGES[change](out)
    tree = OutputTree(out)
    unchanged = _Unchanged(tree)
    answers = [(e.path, unchanged(e)) for e in [*entries, *odd]]
    assert answers == [(e.path, OutputTree(out).matches(e)) for e in [*entries, *odd]]
    if change == "nothing":  # every file, by any spelling of its path, but the odd two
        assert [ok for _, ok in answers] == [True] * (3 * len(entries)) + [False, False]


def test_checkpoints_take_at_most_their_share_of_the_time() -> None:
    now = [0.0]
    pace = CheckpointPace(clock=lambda: now[0])
    assert pace.due()
    with pace.timed():
        now[0] += 3.0  # a large manifest: three seconds to write
    now[0] += 2.0
    assert not pace.due()  # two seconds on: the runner's cadence would write again
    now[0] += 25.0
    assert pace.due()  # 27 s after a 3 s write: within a tenth
    with pace.timed():
        now[0] += 0.01
    now[0] += 0.1
    assert pace.due()  # a small one is written as often as asked
