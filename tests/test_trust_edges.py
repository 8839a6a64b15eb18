"""Edges a user meets at the boundaries: a planted lock, a full disk, a bad base URL and
numbers out of range, each through the CLI with its exit code and its whole message.

No test waits on the clock: the disk is "full" by a file-size limit on the build's own
process (``RLIMIT_FSIZE``, so a write past it fails with ``EFBIG``), which works the same
for root and for anyone else, on any file system.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from processes import ASSETPIPE

ASSETS = """
    assets:
      - id: "a{{ i }}"
        prompt: "Asset number {{ i }}"
        matrix: {i: [1, 2]}
        size: 64x64
        variants: 2
"""
RESTORE = "restore it from version control, or remove it and pick again"


def planted_lock(name: str) -> str:
    """A lock whose one entry is well formed but for its asset name (TOML escapes)."""
    return (
        f'version = 1\n[assets."{name}"]\nvariant = 2\ncache_key = "{"a" * 64}"\n'
        f'sha256 = "{"b" * 64}"\nformat = "png"\n'
    )


# -- assetpipe.lock ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "escaped",
    [r"c\u001b[2K/a1", r"c/a1\u001b", r"c\u007f/a1", r"c\u009b31m/a1", r"c\u202e/a1"],
    ids=["esc", "esc-at-the-end", "del", "c1-csi", "bidi-override"],
)
def test_a_control_character_in_a_locked_name_is_an_error_at_the_file(project, run, escaped):
    """An asset name in assetpipe.lock holding a control character (ESC, DEL, a C1 control,
    a bidi override) is refused at the file, exit 2, and the message shows it escaped:
    the name never reaches a terminal raw, as a plan or a pick would print it."""
    project.gen({"specs/c.yaml": ASSETS, "assetpipe.lock": planted_lock(escaped)})
    result = run("plan", "--provider", "preview")
    assert result.code == 2
    shown = json.dumps(json.loads(f'"{escaped}"'))
    assert result.err == (
        f"error: assetpipe.lock: the entry of {shown} is malformed (a collection/asset name "
        "holds no control characters)\n"
        "  hint: restore it from version control, or `assetpipe unpick` it and pick again\n"
    )
    assert "\x1b" not in result.err and "\x9b" not in result.out + result.err


DEEP = 100_000
NESTED_LOCKS = {
    "arrays": "version = 1\na = " + "[" * DEEP + "]" * DEEP + "\n",
    "inline-tables": "version = 1\na = " + "{a = " * DEEP + "1" + "}" * DEEP + "\n",
    "arrays-of-tables": "version = 1\na = " + "[{a = " * DEEP + "1" + "}]" * DEEP + "\n",
}
TOO_DEEP = (
    "error: assetpipe.lock: arrays or tables nested too deeply to be a lock assetpipe wrote\n"
    f"  hint: {RESTORE}\n"
)


@pytest.mark.parametrize("shape", sorted(NESTED_LOCKS))
@pytest.mark.parametrize(
    "command",
    [
        ("plan",),
        ("check",),
        ("build",),
        ("validate",),
        ("pick", "c/a1#2"),
        ("unpick", "c/a1"),
    ],
    ids=lambda c: c[0],
)
def test_a_deeply_nested_lock_is_an_error_at_the_file_on_every_command(
    project, run, shape, command
):
    """Arrays or tables nested 100,000 deep in assetpipe.lock (which tomllib parses by
    recursion) are exit 2 with one message at the file on every command that reads the
    lock, not a RecursionError traceback."""
    project.gen({"specs/c.yaml": ASSETS, "assetpipe.lock": NESTED_LOCKS[shape]})
    result = run(*command, "--provider", "preview")
    assert (result.code, result.err) == (2, TOO_DEEP)


def test_a_dotted_key_100000_parts_deep_is_refused_at_its_line(project, run):
    """A table header ``[a.a.a...]`` 100,000 parts deep does not recurse, but tomllib's
    time grows with the square of its parts (a minute per command); it is refused before
    parsing, exit 2, at its line."""
    header = "[" + ".".join(["a"] * DEEP) + "]"
    project.gen({"specs/c.yaml": ASSETS, "assetpipe.lock": f"version = 1\n\n{header}\n"})
    result = run("plan", "--provider", "preview")
    assert result.code == 2
    assert result.err == (
        "error: assetpipe.lock:3: more than 400 dots in one line: keys nested too deeply "
        f"to be a lock assetpipe wrote\n  hint: {RESTORE}\n"
    )


# -- a full disk while the manifest is written ------------------------------------------

MANY = """
    assets:
      - id: "a{{ i }}"
        prompt: "Asset number {{ i }}"
        matrix: {i: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]}
        size: 64x64
        renditions:
          - {size: 60x60}
          - {size: 56x56}
          - {size: 48x48}
          - {size: 40x40}
          - {size: 32x32}
          - {size: 24x24}
          - {size: 20x20}
          - {size: 16x16}
"""
WRITTEN_AFTER_THE_MANIFEST = {"index.html", ".gallery"}
LIMITED = (
    "import os, resource, signal, sys\n"
    "limit = int(sys.argv[1])\n"
    "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
    "resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)
"""Run argv[2:] with no file written past argv[1] bytes: the limit and the ignored SIGXFSZ
pass to the program exec'd (a launcher, not ``preexec_fn``: this process has threads)."""


def limited_build(root: Path, max_file_bytes: int) -> subprocess.CompletedProcess[str]:
    """``assetpipe build`` in its own process, which may write no file past
    ``max_file_bytes``: a write past it fails with EFBIG, as one on a full disk fails with
    ENOSPC, instead of killing the process."""
    command = [*ASSETPIPE, "build", "--provider", "openai", "--project", str(root)]
    return subprocess.run(
        [sys.executable, "-c", LIMITED, str(max_file_bytes), *command],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def largest_other_file(root: Path) -> int:
    """The largest file of the project but the manifest and what a build writes only after
    the manifest (the gallery)."""
    output = root / "output"

    def before_the_manifest(path: Path) -> bool:
        if not path.is_relative_to(output):
            return True
        parts = path.relative_to(output).parts
        return parts != ("manifest.json",) and parts[0] not in WRITTEN_AFTER_THE_MANIFEST

    return max(p.stat().st_size for p in root.rglob("*") if p.is_file() and before_the_manifest(p))


def test_a_full_disk_at_the_manifest_keeps_the_old_one_and_the_paid_images(project, run, api):
    """When output/manifest.json cannot be written (the disk is full), the build exits 1
    with one message: which file, why, that the manifest from before is kept whole, and
    that the images made are cached so the next build will not pay for them again. No
    temporary file is left, the old manifest is byte for byte what it was, and the next
    build (with room) sends no request and records the new images."""
    project.gen({"specs/c.yaml": MANY})
    assert run("build", "--provider", "openai").code == 0
    manifest = project / "output/manifest.json"
    before = manifest.read_bytes()
    others = largest_other_file(project.root)
    # The manifest (an entry per image and rendition) is the largest file by far, so a
    # limit halfway between fails its writes and no other, with room on either side.
    assert others * 3 < len(before) * 2, (others, len(before))
    limit = (others + len(before)) // 2
    project.gen({"specs/c.yaml": MANY.replace("11, 12", "11, 12, 13, 14")})
    api.reset_counters()

    result = limited_build(project.root, limit)

    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"error: could not write {manifest} (File too large: past the largest file this "
        "process may write (ulimit -f)); the manifest of the build before is kept as it was. "
        "The images this build made are kept in the cache: free some space and build again, "
        "and the next build will not pay for them again"
    )
    assert "Traceback" not in result.stderr
    assert api.billed_images == 2
    assert manifest.read_bytes() == before
    assert sorted(p.name for p in (project / "output").iterdir() if p.suffix == ".tmp") == []

    api.reset_counters()
    again = run("build", "--provider", "openai")
    assert again.code == 0, again.err
    assert api.requests == []
    jobs = {e["job"] for e in json.loads(manifest.read_text("utf-8"))["entries"]}
    assert {"c/a13", "c/a14", "c/a14@16x16"} <= jobs


# -- OPENAI_BASE_URL ----------------------------------------------------------------------


@pytest.mark.parametrize("batch", [False, True], ids=["direct", "batch"])
@pytest.mark.parametrize("value", ["http://127.0.0.1:9/v1\r\nX-Injected: 1", "http://h/v1\n"])
def test_a_base_url_with_a_line_break_is_a_usage_error_naming_the_variable(
    project, run, monkeypatch, batch, value
):
    """OPENAI_BASE_URL holding CR or LF is exit 2 with a message that names the variable
    and does not echo the value (no raw control character reaches the terminal), on the
    direct route and the Batch route alike; nothing is sent."""
    project.gen({"specs/c.yaml": ASSETS})
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")
    monkeypatch.setenv("OPENAI_BASE_URL", value)
    result = run("build", "--provider", "openai", *(["--batch"] if batch else []))
    assert result.code == 2
    assert result.err.splitlines()[-1] == (
        "error: OPENAI_BASE_URL holds a control character (a line break?); set it to the "
        "API's address alone, e.g. https://api.openai.com/v1"
    )
    assert "\r" not in result.err and "X-Injected" not in result.err


def test_an_azure_endpoint_with_a_line_break_is_a_usage_error(project, run, monkeypatch):
    """AZURE_OPENAI_ENDPOINT holding a line break is exit 2 naming the variable."""
    project.gen({"specs/c.yaml": ASSETS})
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "az-key")
    monkeypatch.setenv("OPENAI_API_VERSION", "2025-04-01-preview")
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://name.openai.azure.com\r\n")
    result = run("build", "--provider", "azure", "--model", "my-deployment")
    assert result.code == 2
    assert result.err.splitlines()[-1] == (
        "error: AZURE_OPENAI_ENDPOINT holds a control character (a line break?); set it to "
        "the API's address alone, e.g. https://NAME.openai.azure.com"
    )


def test_a_base_url_that_is_not_a_url_is_a_usage_error(project, run, monkeypatch):
    """OPENAI_BASE_URL that the URL parser refuses is exit 2, its complaint shown short."""
    project.gen({"specs/c.yaml": ASSETS})
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://[::1")
    result = run("build", "--provider", "openai")
    assert result.code == 2
    assert result.err.splitlines()[-1] == (
        "error: OPENAI_BASE_URL is not a URL (Invalid port: ':1'); set it to the API's "
        "address, e.g. https://api.openai.com/v1"
    )


# -- numbers out of range ------------------------------------------------------------------

OUT_OF_RANGE = [
    (
        "ASSETPIPE_IMAGES_PER_MINUTE",
        "1e-9",
        "ASSETPIPE_IMAGES_PER_MINUTE='1e-9': images_per_minute must be a number from 0.1 "
        "to 1000000 (images a minute)",
    ),
    (
        "ASSETPIPE_IMAGES_PER_MINUTE",
        "inf",
        "ASSETPIPE_IMAGES_PER_MINUTE='inf': images_per_minute must be a number from 0.1 "
        "to 1000000 (images a minute)",
    ),
    (
        "ASSETPIPE_REQUESTS_PER_MINUTE",
        "nan",
        "ASSETPIPE_REQUESTS_PER_MINUTE='nan': requests_per_minute must be a number from 0.1 "
        "to 1000000 (requests a minute)",
    ),
    (
        "ASSETPIPE_CONCURRENCY",
        "0",
        "ASSETPIPE_CONCURRENCY='0': concurrency must be a whole number from 1 to 512 "
        "(requests in flight)",
    ),
    (
        "ASSETPIPE_TIMEOUT",
        "1e-9",
        "ASSETPIPE_TIMEOUT='1e-9': timeout must be a number from 0.1 to 3600 (seconds)",
    ),
    (
        "ASSETPIPE_MAX_ATTEMPTS",
        "1000",
        "ASSETPIPE_MAX_ATTEMPTS='1000': max_attempts must be a whole number from 1 to 50 "
        "(tries of a request)",
    ),
    (
        "ASSETPIPE_MAX_COST",
        "-inf",
        "ASSETPIPE_MAX_COST='-inf': max_cost must be a number from 0 to 1000000 (USD)",
    ),
    (
        "ASSETPIPE_BATCH_POLL_SECONDS",
        "1e-9",
        "ASSETPIPE_BATCH_POLL_SECONDS='1e-9': batch_poll_seconds must be a number from 0.01 "
        "to 3600 (seconds)",
    ),
]


@pytest.mark.parametrize(
    ("variable", "value", "message"), OUT_OF_RANGE, ids=[f"{v}={x}" for v, x, _ in OUT_OF_RANGE]
)
def test_a_number_out_of_range_in_the_environment_names_variable_and_range(
    project, run, monkeypatch, variable, value, message
):
    """A number setting from the environment outside its range (a pace of 1e-9 images a
    minute that would stall the build, inf or nan that would break pacing or the budget)
    is exit 2 naming the variable, its value, the setting and the allowed range."""
    project.gen({"specs/c.yaml": ASSETS})
    monkeypatch.setenv(variable, value)
    result = run("build", "--provider", "preview")
    assert (result.code, result.err) == (2, f"error: {message}\n")
    assert not (project / "output").exists()


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        (
            "--images-per-minute",
            "inf",
            "--images-per-minute inf: images_per_minute must be a number from 0.1 to "
            "1000000 (images a minute)",
        ),
        ("--timeout", "-1", "--timeout -1.0: timeout must be a number from 0.1 to 3600 (seconds)"),
        (
            "--max-jobs",
            "0",
            "--max-jobs 0: max_jobs must be a whole number from 1 to 1000000 (jobs)",
        ),
        (
            "--concurrency",
            "100000",
            "--concurrency 100000: concurrency must be a whole number from 1 to 512 "
            "(requests in flight)",
        ),
    ],
)
def test_a_number_out_of_range_in_a_flag_names_the_flag_and_range(
    project, run, flag, value, message
):
    """A number setting from a flag outside its range is exit 2 naming the flag."""
    project.gen({"specs/c.yaml": ASSETS})
    result = run("build", "--provider", "preview", flag, value)
    assert (result.code, result.err) == (2, f"error: {message}\n")


@pytest.mark.parametrize(
    ("line", "message", "hint"),
    [
        (
            "images_per_minute: 1.0e-9",
            "assetpipe.yaml:1:20: 'images_per_minute': Input should be greater than or "
            "equal to 0.1",
            "use a number from 0.1 to 1000000",
        ),
        (
            "timeout: .inf",
            "assetpipe.yaml:1:10: 'timeout': Input should be less than or equal to 3600",
            "use a number from 0.1 to 3600",
        ),
        (
            "requests_per_minute: .nan",
            "assetpipe.yaml:1:22: 'requests_per_minute': Input should be less than or "
            "equal to 1000000",
            "use a number from 0.1 to 1000000",
        ),
        (
            "prices: {gpt-image-2.5-flare: {image_output: .inf}}",
            "assetpipe.yaml:1:46: 'prices.gpt-image-2.5-flare.image_output': Input should be "
            "less than or equal to 1000000",
            "use a number at most 1000000.0",
        ),
    ],
)
def test_a_number_out_of_range_in_assetpipe_yaml_is_an_error_at_its_line(
    project, run, line, message, hint
):
    """A number setting in assetpipe.yaml outside its range (inf and nan included) is
    exit 2 at its line, with the allowed range as the hint."""
    project.gen({"specs/c.yaml": ASSETS, "assetpipe.yaml": line + "\n"})
    result = run("plan", "--provider", "preview")
    assert (result.code, result.err) == (2, f"error: {message}\n  hint: {hint}\n")


def test_a_long_value_is_echoed_cut_short(project, run, monkeypatch):
    """A 100,000-character ASSETPIPE_TODAY (or any setting's value) is echoed as its first
    60 characters and an ellipsis, not whole, in an error that is still exit 2."""
    project.gen({"specs/c.yaml": ASSETS})
    monkeypatch.setenv("ASSETPIPE_TODAY", "2" * 100_000)
    result = run("plan", "--provider", "preview")
    assert (result.code, result.err) == (
        2,
        f"error: ASSETPIPE_TODAY='{'2' * 60}…' is not a date; write it as YYYY-MM-DD "
        "(e.g. 2026-12-01)\n",
    )
    monkeypatch.setenv("ASSETPIPE_TODAY", "2026-11-24")
    monkeypatch.setenv("ASSETPIPE_CONCURRENCY", "9" * 100_000)
    result = run("plan", "--provider", "preview")
    assert result.code == 2
    assert result.err == (
        f"error: ASSETPIPE_CONCURRENCY='{'9' * 60}…': concurrency must be a whole number "
        "from 1 to 512 (requests in flight)\n"
    )
