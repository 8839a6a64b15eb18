"""What a build trusts on disk: the cache folder, the manifest, the locks, the folders.

Each test plants what a hostile or damaged project could hold (a pickle in the cache
index, a row naming a file outside, a link under ``.assetpipe/``, a hand-edited manifest, a
manifest linked to ``/dev/zero``, a lock held by another build, an output folder that
cannot be written) and drives the real CLI, pinning the exit code, the message, and that
the file outside the project (the victim) is untouched.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pickle
import resource
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from processes import many

import pipeline

SOURCE_ROOT = Path(pipeline.__file__).resolve().parents[1]
"""The assetpipe under test, for the one test that runs it in a child process."""

VICTIM_TEXT = "the user's own file\n"


class _Payload:
    """Unpickling this writes ``victim``: the harmless stand-in for arbitrary code."""

    def __init__(self, victim: Path):
        self.victim = victim

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.write_text, (self.victim, "pwned"))


def plant_diskcache(folder: Path, keys: Iterable[str], victim: Path) -> None:
    """A diskcache ``cache.db`` (the old index format) whose values are pickles that write
    ``victim`` when loaded; diskcache itself loads them on ``get`` and ``iterkeys``+``get``."""
    folder.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(folder / "cache.db")
    db.execute("CREATE TABLE Settings (key TEXT NOT NULL UNIQUE, value)")
    db.execute(
        "CREATE TABLE Cache (rowid INTEGER PRIMARY KEY, key BLOB, raw INTEGER, store_time REAL,"
        " expire_time REAL, access_time REAL, access_count INTEGER DEFAULT 0, tag BLOB,"
        " size INTEGER DEFAULT 0, mode INTEGER DEFAULT 0, filename TEXT, value BLOB)"
    )
    db.execute("CREATE UNIQUE INDEX Cache_key_raw ON Cache(key, raw)")
    for key in keys:
        db.execute(
            "INSERT INTO Cache (key, raw, store_time, access_time, mode, value)"
            " VALUES (?, 1, 0, 0, 4, ?)",
            (key, pickle.dumps(_Payload(victim))),
        )
    db.commit()
    db.close()


def plant_row(index: Path, key: str, blob: str, original: str | None, meta: str) -> None:
    """Write one row straight into assetpipe's own index (plain SQL, no assetpipe code)."""
    db = sqlite3.connect(index)
    db.execute(
        "INSERT OR REPLACE INTO entries (key, blob, original, meta) VALUES (?, ?, ?, ?)",
        (key, blob, original, meta),
    )
    db.commit()
    db.close()


def row_of(index: Path, key: str) -> tuple[str, str | None, str]:
    """The (blob, original, meta) of the row under ``key`` (plain SQL, no assetpipe code)."""
    db = sqlite3.connect(index)
    row = db.execute("SELECT blob, original, meta FROM entries WHERE key = ?", (key,)).fetchone()
    db.close()
    assert row is not None, key
    return row


def manifest(project: Any) -> dict[str, Any]:
    return json.loads((project / "output/manifest.json").read_text("utf-8"))


def keys(project: Any) -> list[str]:
    return sorted(e["cache_key"] for e in manifest(project)["entries"])


def tree(root: Path) -> list[str]:
    """Every path under ``root``, relative, sorted (links listed, not followed)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def victim(tmp_path: Path) -> Iterator[Path]:
    """A file outside the project that no command may create, change or delete."""
    path = tmp_path / "victim.txt"
    path.write_text(VICTIM_TEXT)
    yield path


def untouched(victim: Path) -> bool:
    return victim.is_file() and not victim.is_symlink() and victim.read_text() == VICTIM_TEXT


# -- 1. the cache index holds plain data, never pickles -----------------------------------


def test_old_diskcache_index_with_pickles_is_ignored_by_every_command(project, run, tmp_path):
    """A pickle-bearing diskcache index (the old ``index/cache.db``) under every job's key
    is never loaded: plan, check, cache stats, cache gc and a build from the cache all
    succeed and the payload never runs."""
    project.gen({"specs/set.yaml": many(2)})
    assert run("build", "--provider", "preview").code == 0
    pwned = tmp_path / "pwned.txt"
    plant_diskcache(project / ".assetpipe/cache/index", keys(project), pwned)

    assert run("plan", "--provider", "preview").code == 0
    check = run("check", "--provider", "preview")
    assert (check.code, check.out) == (0, "up to date: 2 jobs\n")
    stats = run("cache", "stats")
    size = sum(f.stat().st_size for f in (project / ".assetpipe/cache/blobs").glob("*/*"))
    assert (stats.code, stats.out) == (0, f"2 entries, 2 blobs, {size / 1e6:.1f} MB\n")
    gc = run("cache", "gc")
    assert (gc.code, gc.out) == (0, "removed 0 broken entries and 0 unused blobs\n")
    (project / "output/manifest.json").unlink()
    build = run("build", "--provider", "preview")
    assert build.code == 0, build.err
    assert {e["status"] for e in manifest(project)["entries"]} == {"cached"}
    assert not pwned.exists()
    assert (project / ".assetpipe/cache/index/cache.db").is_file()


def test_diskcache_file_planted_as_the_index_is_never_queried(project, run, api, tmp_path):
    """A diskcache database put where assetpipe's index lives is not an assetpipe index:
    plan and check warn and treat the cache as empty, gc and build refuse it (exit 2)
    before any paid call, and the pickles in it never run."""
    project.gen({"specs/set.yaml": many(2)})
    assert run("build", "--provider", "openai").code == 0
    calls = api.count()
    pwned = tmp_path / "pwned.txt"
    index = project / ".assetpipe/cache/index.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{index}{suffix}").unlink(missing_ok=True)
    plant_diskcache(project / ".assetpipe/cache", keys(project), pwned)
    (project / ".assetpipe/cache/cache.db").rename(index)
    problem = (
        f"the cache index {index} cannot be used (it is not an assetpipe cache index: it "
        "holds index Cache_key_raw, index sqlite_autoindex_Settings_1, table Cache, table "
        "Settings); move it away, or run "
        "`assetpipe cache clear` (the next build pays again for what output/ lacks)"
    )

    (project / "output/manifest.json").unlink()
    plan = run("plan", "--provider", "openai")
    assert plan.code == 0
    assert f"WARNING: {problem}; treating the cache as empty\n" in plan.err
    check = run("check", "--provider", "openai")
    assert check.code == 1
    assert check.out.splitlines()[-1] == "2 of 2 jobs would change; run assetpipe build"
    gc = run("cache", "gc")
    assert (gc.code, gc.err) == (2, f"error: {problem}\n")
    build = run("build", "--provider", "openai")
    assert (build.code, build.err.splitlines()[-1]) == (2, f"error: {problem}")
    assert api.count() == calls
    assert not pwned.exists()


# -- 2. blob names are sha256 digests, never paths ---------------------------------------


def test_rows_naming_files_outside_never_touch_them(project, run, victim):
    """Rows whose blob and original are paths to a file outside the project are misses
    with a warning: the build makes the images again, gc drops such a row, clear removes
    the cache, and the file they name is never read, changed or deleted. (Each row keeps
    its own request, so the paths alone are what is refused.)"""
    project.gen({"specs/set.yaml": many(2)})
    assert run("build", "--provider", "preview").code == 0
    index = project / ".assetpipe/cache/index.db"
    escape = "../../../victim.txt"  # blobs/<..>/<escape> is tmp_path/victim.txt
    for key in keys(project):
        plant_row(index, key, escape, escape, row_of(index, key)[2])
    (project / "output/manifest.json").unlink()
    build = run("build", "--provider", "preview")
    assert build.code == 0
    assert {e["status"] for e in manifest(project)["entries"]} == {"generated"}
    assert sorted(line for line in build.err.splitlines() if "unreadable" in line) == [
        f"WARNING: cache entry {key[:12]} is unreadable or was not made from its request; "
        "it will be made again"
        for key in keys(project)
    ]
    plant_row(index, "planted", escape, None, "{}")
    gc = run("cache", "gc")
    assert (gc.code, gc.out) == (0, "removed 1 broken entry and 0 unused blobs\n")
    assert untouched(victim)
    assert run("cache", "clear", "--yes").code == 0
    assert not (project / ".assetpipe/cache").exists()
    assert untouched(victim)


def test_a_result_planted_under_another_jobs_key_is_not_delivered(project, run):
    """A job's row copied into the index under another job's cache key (its own request
    kept in its metadata, its blob there) is a miss: the other job is generated, never
    delivered from it (status ``generated``, not ``cached``), with a warning that the entry
    was not made from its request; the job whose row it is stays cached."""
    project.gen({"specs/set.yaml": many(2)})
    assert run("build", "--provider", "preview").code == 0
    index = project / ".assetpipe/cache/index.db"
    built = {e["job"]: e for e in manifest(project)["entries"]}
    source, target = built["set/a1"], built["set/a2"]
    assert source["sha256"] != target["sha256"]
    row = row_of(index, source["cache_key"])
    blob = project / ".assetpipe/cache/blobs" / row[0][:2] / row[0]
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == row[0]  # its image is there
    plant_row(index, target["cache_key"], *row)
    (project / "output/manifest.json").unlink()
    build = run("build", "--provider", "preview")
    assert build.code == 0, build.err
    rebuilt = {e["job"]: e for e in manifest(project)["entries"]}
    assert {job: e["status"] for job, e in rebuilt.items()} == {
        "set/a1": "cached",
        "set/a2": "generated",
    }
    assert rebuilt["set/a2"]["cache_key"] == target["cache_key"]
    assert rebuilt["set/a2"]["sha256"] == target["sha256"] != source["sha256"]
    assert (
        f"WARNING: cache entry {target['cache_key'][:12]} is unreadable or was not made "
        "from its request; it will be made again\n"
    ) in build.err


# -- 3. links under .assetpipe/ ------------------------------------------------------------


def test_gc_skips_a_linked_folder_under_blobs(project, run, tmp_path):
    """A link under blobs/ to a folder elsewhere is skipped with a warning; what it points
    to survives gc and is not counted by stats."""
    project.gen({"specs/set.yaml": many(1)})
    assert run("build", "--provider", "preview").code == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    name = "ee" + "0" * 62
    (elsewhere / name).write_text(VICTIM_TEXT)
    link = project / ".assetpipe/cache/blobs/ee"
    link.symlink_to(elsewhere)
    stats = run("cache", "stats")
    assert stats.out.startswith("1 entry, 1 blob, ")
    gc = run("cache", "gc")
    assert (gc.code, gc.out) == (0, "removed 0 broken entries and 0 unused blobs\n")
    assert (elsewhere / name).read_text() == VICTIM_TEXT
    # (`cache gc` logs through the handler the build above installed on this test's stderr)
    assert gc.err == f"WARNING: skipping the symbolic link {link} in the cache\n"


def test_build_lock_linked_to_a_file_is_refused_and_the_file_kept(project, run, api, victim):
    """``.assetpipe/build.lock`` as a link is refused (exit 2) before any call; the file it
    points to is not truncated and no output is written."""
    project.gen({"specs/set.yaml": many(1)})
    (project / ".assetpipe").mkdir()
    lock = project / ".assetpipe/build.lock"
    lock.symlink_to(victim)
    result = run("build", "--provider", "openai")
    assert result.code == 2
    assert result.err.splitlines()[-1] == (
        f"error: refusing to use the symbolic link {lock} (the build lock); remove it"
    )
    assert "Traceback" not in result.err
    assert untouched(victim)
    assert api.count() == 0
    assert tree(project.root) == [
        ".assetpipe",
        ".assetpipe/build.lock",
        "specs",
        "specs/set.yaml",
        "templates",
    ]


@pytest.mark.parametrize(
    ("link", "target", "what"),
    [
        (".assetpipe", "proj/stash", "the cache folder"),
        (".assetpipe/cache", "elsewhere", "the result cache"),
    ],
)
def test_linked_cache_folder_is_refused_by_every_command(
    project, run, api, tmp_path, link, target, what
):
    """``.assetpipe`` or ``.assetpipe/cache`` as a link would put the cache (and what gc
    and clear delete) wherever it points: build, plan, check and every cache command exit
    2 naming the link, and the folder it points to stays as it was. (A ``.assetpipe``
    link out of the project is refused earlier, by the settings.)"""
    project.gen({"specs/set.yaml": many(1)})
    assert run("build", "--provider", "preview").code == 0
    (project / "output/manifest.json").unlink()  # so that plan and check need the cache
    moved = tmp_path / target
    (project / link).rename(moved)
    (project / link).symlink_to(moved)
    before = tree(moved)
    message = f"error: refusing to use the symbolic link {project / link} ({what}); remove it"
    for args in (
        ("build", "--provider", "openai"),
        ("plan", "--provider", "preview"),
        ("check", "--provider", "preview"),
        ("cache", "gc"),
        ("cache", "stats"),
        ("cache", "clear", "--yes"),
    ):
        result = run(*args)
        assert (result.code, result.err.splitlines()[-1]) == (
            2,
            message + " so assetpipe keeps its files in a real folder",
        ), args
    assert tree(moved) == before
    assert api.count() == 0


# -- 4. the manifest is untrusted ------------------------------------------------------------


def test_prune_never_deletes_a_manifest_path_outside_output(project, run, victim):
    """--prune with a hand-edited manifest: a kept original or a companion that points out
    of output/ (or holds a NUL) is skipped with a warning; only the files assetpipe wrote
    are removed, and the build does not crash."""
    project.gen({"specs/set.yaml": many(5)})
    assert run("build", "--provider", "preview").code == 0
    doc = manifest(project)
    by_path = {e["path"]: e for e in doc["entries"]}
    by_path["set/a2.png"]["provenance"]["original_path"] = "../victim.txt"
    by_path["set/a3.png"]["provenance"]["original_path"] = "set/a3.original.png/../../../victim.txt"
    digest = hashlib.sha256(victim.read_bytes()).hexdigest()
    by_path["set/a4.png"]["companions"] = [{"path": "../victim.txt", "sha256": digest}]
    by_path["set/a5.png"]["provenance"]["original_path"] = "set/a5.original.png\u0000"
    (project / "output/manifest.json").write_text(json.dumps(doc))
    project.gen({"specs/set.yaml": many(1)})

    result = run("build", "--provider", "preview", "--prune")
    assert result.code == 0
    assert result.out.splitlines()[:3] == [
        "pruned set/a2.png",
        "pruned set/a3.png",
        "pruned set/a5.png",
    ]
    assert "WARNING: not pruning '../victim.txt': it is not the kept original of set/a2.png\n" in (
        result.err
    )
    assert (
        "WARNING: not pruning 'set/a3.original.png/../../../victim.txt': it is not a path "
        f"inside {project / 'output'}\n"
    ) in result.err
    assert "WARNING: not pruning set/a4.png: it changed since assetpipe wrote it\n" in result.err
    assert untouched(victim)
    assert sorted(p.name for p in (project / "output/set").iterdir()) == ["a1.png", "a4.png"]


@pytest.fixture
def guarded() -> Iterator[None]:
    """Should the manifest be read after all, fail the test instead of the machine: a
    blocked read (a FIFO) is interrupted after 60 s, and reading /dev/zero stops with a
    MemoryError 1 GiB above what the process uses now."""

    def _timeout(signum: int, frame: object) -> None:
        raise TimeoutError("the command blocked")

    previous = signal.signal(signal.SIGALRM, _timeout)
    limits = resource.getrlimit(resource.RLIMIT_AS)
    status = Path("/proc/self/status").read_text()
    used_kib = int(next(ln for ln in status.splitlines() if ln.startswith("VmSize:")).split()[1])
    resource.setrlimit(resource.RLIMIT_AS, (used_kib * 1024 + 2**30, limits[1]))
    signal.alarm(60)
    try:
        yield
    finally:
        signal.alarm(0)
        resource.setrlimit(resource.RLIMIT_AS, limits)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("kind", ["dev-zero-link", "fifo"])
def test_manifest_that_is_not_a_regular_file_is_ignored(project, run, guarded, kind):
    """manifest.json linked to /dev/zero, or a FIFO, is never read (it would eat memory or
    block): the build warns, treats it as absent and replaces it with a real manifest."""
    project.gen({"specs/set.yaml": many(2)})
    (project / "output").mkdir()
    path = project / "output/manifest.json"
    if kind == "fifo":
        os.mkfifo(path)
        reason = "it is not a regular file; remove it"
    else:
        path.symlink_to("/dev/zero")
        reason = "it is a symbolic link; remove it"
    check = run("check", "--provider", "preview")
    assert check.code == 1
    assert f"WARNING: ignoring {path}: {reason}\n" in check.err
    result = run("build", "--provider", "preview")
    assert result.code == 0
    assert f"WARNING: ignoring {path}: {reason}\n" in result.err
    assert not path.is_symlink()
    assert [e["path"] for e in manifest(project)["entries"]] == ["set/a1.png", "set/a2.png"]


def test_oversized_manifest_is_absent_and_prune_deletes_nothing(project, run):
    """A manifest over the size cap is not read; counted as absent, it names no earlier
    file, so --prune deletes none (the files stay, unknown to the new manifest)."""
    project.gen({"specs/set.yaml": many(2)})
    assert run("build", "--provider", "preview").code == 0
    path = project / "output/manifest.json"
    with path.open("r+b") as handle:
        handle.truncate(256 * 1024 * 1024 + 1)  # sparse: no disk, no time
    project.gen({"specs/set.yaml": many(1)})
    result = run("build", "--provider", "preview", "--prune")
    assert result.code == 0
    assert "pruned" not in result.out
    assert (
        f"WARNING: ignoring {path}: it is 268,435,457 bytes, more than the 268,435,456 an "
        "assetpipe manifest may be\n"
    ) in result.err
    assert sorted(p.name for p in (project / "output/set").iterdir()) == ["a1.png", "a2.png"]
    assert [e["path"] for e in manifest(project)["entries"]] == ["set/a1.png"]


# -- 5. the output folder is locked ----------------------------------------------------------


def test_build_into_an_output_folder_another_build_holds_exits_1(project, run, tmp_path):
    """Two builds with different cache folders on one output folder: while one holds the
    output lock, the other exits 1 naming the folder and writes nothing; afterwards the
    lock file is gone and in no manifest."""
    project.gen({"specs/set.yaml": many(1)})
    output = project / "output"
    output.mkdir()
    fd = os.open(output / ".assetpipe.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"4242")
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = run("build", "--provider", "preview", "--cache-dir", str(tmp_path / "other"))
    finally:
        os.close(fd)
    assert result.code == 1
    assert result.err.splitlines()[-1] == (
        f"error: another assetpipe build (pid 4242) is writing to the output folder {output}; "
        "wait for it to finish, or give this build its own --output"
    )
    assert tree(output) == [".assetpipe.lock"]
    assert not (tmp_path / "other/build.lock").exists()
    assert run("build", "--provider", "preview").code == 0
    assert not (output / ".assetpipe.lock").exists()
    assert [e["path"] for e in manifest(project)["entries"]] == ["set/a1.png"]
    assert run("check", "--provider", "preview").code == 0


def test_stale_locks_of_a_killed_build_do_not_stop_the_next(project, run):
    """Lock files a killed build left behind (no process holds them) are taken over and
    removed when the next build ends."""
    project.gen({"specs/set.yaml": many(1)})
    project.gen({".assetpipe/build.lock": "999999", "output/.assetpipe.lock": "999999"})
    assert run("build", "--provider", "preview").code == 0
    assert not (project / ".assetpipe/build.lock").exists()
    assert not (project / "output/.assetpipe.lock").exists()


# -- 6 and 7. folders that cannot be written: exit 2 before any call, nothing left behind --


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        (
            "--output",
            "notes.txt/out",
            "cannot create the output folder {root}/notes.txt/out: {root}/notes.txt is a "
            "file, not a folder; choose another folder with --output",
        ),
        (
            "--output",
            "notes.txt",
            "the output folder {root}/notes.txt is a file, not a folder; remove it or choose "
            "another folder with --output",
        ),
        (
            "--cache-dir",
            "notes.txt/cache",
            "cannot create the cache folder {root}/notes.txt/cache: {root}/notes.txt is a "
            "file, not a folder; choose another folder with --cache-dir",
        ),
        (
            "--cache-dir",
            "notes.txt",
            "the cache folder {root}/notes.txt is a file, not a folder; remove it or choose "
            "another folder with --cache-dir",
        ),
    ],
    ids=["output-under-a-file", "output-is-a-file", "cache-under-a-file", "cache-is-a-file"],
)
def test_folder_that_cannot_be_made_exits_2_before_any_call(
    project, run, api, flag, value, message, monkeypatch
):
    """An output or cache folder under (or being) a regular file exits 2 with a message
    naming it, no traceback, no paid call, and leaves no lock or folder behind."""
    monkeypatch.chdir(project.root)  # a relative --output is relative to where one is
    project.gen({"specs/set.yaml": many(1), "notes.txt": "mine\n"})
    result = run("build", "--provider", "openai", flag, value)
    assert result.code == 2
    assert result.err.splitlines()[-1] == "error: " + message.format(root=project.root)
    assert "Traceback" not in result.err
    assert api.count() == 0
    assert tree(project.root) == ["notes.txt", "specs", "specs/set.yaml", "templates"]
    assert (project / "notes.txt").read_text() == "mine\n"


_FULL_DISK = (
    "import resource, signal, sys\n"
    "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
    "resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))\n"
    "from pipeline.cli import main\n"
    "main(sys.argv[1:])\n"
)


def test_output_folder_where_no_byte_can_be_written_exits_2_before_any_call(project, api):
    """A folder that takes no bytes (here: a file-size limit of 0, which root obeys, as a
    stand-in for a full disk) stops the build before the first paid call, with exit 2, a
    message naming the folder, and nothing left behind."""
    project.gen({"specs/set.yaml": many(1)})
    done = subprocess.run(
        [sys.executable, "-c", _FULL_DISK, "build", "--provider", "openai"],
        cwd=project.root,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(SOURCE_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[-1] == (
        "error: cannot write to the output folder output (File too large); make it writable "
        "or free some space, or choose another folder with --output"
    )
    assert api.count() == 0
    assert tree(project.root) == ["specs", "specs/set.yaml", "templates"]


def test_a_manifest_entry_of_the_wrong_types_is_dropped_not_trusted(project, run):
    """An entry whose values have types assetpipe never writes (a string size, a list for a
    path) is ignored with a warning: its file is checked again instead of trusted."""
    project.gen({"specs/set.yaml": many(2)})
    assert run("build", "--provider", "preview").code == 0
    path = project / "output/manifest.json"
    doc = json.loads(path.read_text("utf-8"))
    doc["entries"][0]["bytes"] = "lots"
    doc["entries"][1]["path"] = ["../../etc/passwd"]
    path.write_text(json.dumps(doc), "utf-8")
    plan = run("plan", "--json", "--provider", "preview")
    assert plan.code == 0, plan.err
    assert "ignoring 2 malformed entries" in plan.err
    states = {j["id"]: j["status"] for j in json.loads(plan.out)["jobs"]}
    assert states == {"set/a1": "cached", "set/a2": "cached"}  # re-checked, not up to date
    assert run("build", "--provider", "preview").code == 0
    rebuilt = json.loads(path.read_text("utf-8"))
    assert {e["path"] for e in rebuilt["entries"]} == {"set/a1.png", "set/a2.png"}
