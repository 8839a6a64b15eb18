"""Restores from the cache: a copy and a manifest line, the inspection read from the memo.

``rm -rf output/`` and build again must give back the same files, manifest entries and
gallery thumbnails without decoding an image: the memo (``.assetpipe/cache/memo``) keeps
what the checks, the perceptual hash and the thumbnail found, by the file's sha256 and
the checks' configuration. Whatever is planted there is a miss, never a crash.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from pipeline import checks, postprocess
from pipeline.gallery import thumbs
from pipeline.postprocess.pixels import pixel_digest
from pipeline.runner import delivery
from pipeline.store import Inspection, LocalMemo, is_webp
from pipeline.store.memo import MAX_RECORD_BYTES, encode_inspection, parse_inspection

SPEC = """
    brand:
      name: Acme
      colors: {primary: "#E4572E", night: "#2B2D42"}
    assets:
      - id: "tile-{{ n }}"
        prompt: "Tile {{ n }}"
        matrix: {n: [1, 2, 3]}
        size: 1024x1024
        quality: low
        renditions: [{size: 64x64, format: webp}]
      - id: badge
        prompt: "A badge"
        size: 512x512
        background: transparent
        quality: low
        tags: [badges]
      - id: photo
        prompt: "A photo"
        size: 1200x628
        format: jpeg
        quality: low
    sheets:
      - id: badges
        tags: [badges]
"""

VARYING = ("status", "mtime_ns")
"""What a restored entry may say differently from the fresh one."""


def manifest_entries(project) -> dict[str, dict]:
    doc = json.loads((project / "output/manifest.json").read_text())
    return {e["path"]: e for e in doc["entries"]}


def steady(entries: dict[str, dict]) -> dict[str, dict]:
    return {p: {k: v for k, v in e.items() if k not in VARYING} for p, e in entries.items()}


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every delivered file and thumbnail (not the page or the manifest) by path."""
    skip = {"index.html", "manifest.json"}
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in skip and not p.name.startswith(".assetpipe")
    }


def memo_files(project, suffix: str) -> list[Path]:
    return sorted((project / ".assetpipe/cache/memo").glob(f"*/*{suffix}"))


def refuse(*_args: object, **_kwargs: object) -> None:
    raise AssertionError("an image was inspected again instead of read from the memo")


def forbid_inspection(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on, decoding, checking, hashing or thumbnailing an image fails its job."""
    monkeypatch.setattr(postprocess, "sample_bytes", refuse)
    monkeypatch.setattr(checks, "run_checks", refuse)
    monkeypatch.setattr(checks, "perceptual_hash", refuse)
    monkeypatch.setattr(delivery, "encode_thumbnail", refuse)
    monkeypatch.setattr(thumbs, "_render_thumbnail", refuse)


def fresh_then_restored(project, run, api) -> tuple[dict, dict[str, bytes], int]:
    """Build once; keep the manifest entries and the files; delete output/."""
    project.gen({"specs/shop.yaml": SPEC})
    result = run("build", "--provider", "openai")
    assert result.code == 0, result.err
    entries = manifest_entries(project)
    files = tree_bytes(project / "output")
    shutil.rmtree(project / "output")
    return entries, files, api.count()


def test_restore_after_rm_output_reads_the_memo_and_gives_back_the_same_tree(
    project, run, api, monkeypatch
):
    """With every decode, check, hash and thumbnail made to fail, a restore still succeeds
    without a request: the same files, thumbnails and manifest entries (but status and
    mtime), every job cached."""
    entries, files, requests = fresh_then_restored(project, run, api)
    forbid_inspection(monkeypatch)
    result = run("build", "--provider", "openai")
    assert result.code == 0, result.err
    assert api.count() == requests
    again = manifest_entries(project)
    assert {e["status"] for e in again.values()} == {"cached"}
    assert steady(again) == steady(entries)
    assert tree_bytes(project / "output") == files
    thumbnails = {p for p in files if p.startswith(".gallery/")}
    assert thumbnails == {f".gallery/{e['sha256']}.webp" for e in entries.values()}
    gallery = project / "output/.gallery"
    memo = {p.stat().st_ino for p in (project / ".assetpipe/cache/memo").rglob("*.webp")}
    assert {p.stat().st_ino for p in gallery.iterdir()} <= memo  # each one shared with the memo


def test_a_fresh_build_fills_the_memo_for_every_delivered_file(project, run, api):
    """One record per delivered file, named by its sha256, holding what the manifest says;
    one thumbnail per file, named by its pixels for a PNG (shared by files that differ
    only in their text) and by its sha256 otherwise, where a record of the pixels holds
    what depends on them alone; plus the C2PA verdict of the API's bytes behind a cropped
    file."""
    project.gen({"specs/shop.yaml": SPEC})
    assert run("build", "--provider", "openai").code == 0
    entries = manifest_entries(project)
    shas = {e["sha256"] for e in entries.values()}
    named = {
        e["sha256"]: pixel_digest((project / "output" / e["path"]).read_bytes())
        for e in entries.values()
    }
    thumbnails = {p.name for p in memo_files(project, ".webp")}
    assert thumbnails == {f"{px}.px.webp" if px else f"{sha}.webp" for sha, px in named.items()}
    pixels = {
        p.name.split(".")[0]: json.loads(p.read_text()) for p in memo_files(project, ".px.json")
    }
    assert set(pixels) == {px for px in named.values() if px}
    assert all("c2pa" not in record and "c2pa_verdict" not in record for record in pixels.values())
    records = {
        p.stem: json.loads(p.read_text())
        for p in memo_files(project, ".json")
        if not p.name.endswith(".px.json")
    }
    assert shas <= set(records)
    tile = entries["shop/tile-1.png"]
    record = records[tile["sha256"]]
    assert record["phash"] == tile["phash"]
    assert record["method"] == checks.PHASH_METHOD
    assert (record["width"], record["height"]) == (1024, 1024)
    [found] = record["checks"].values()
    assert found == [c for c in tile["checks"] if c["name"] != "distinct"]
    originals = set(records) - shas  # the API's bytes of the cropped badge and photo
    assert len(originals) == 2
    assert all(set(records[o]) == {"format", "sha256", "c2pa", "checks"} for o in originals)
    verdicts = sorted(records[o]["c2pa"] for o in originals)
    cropped = ("shop/badge.png", "shop/photo.jpg")
    assert verdicts == sorted(entries[p]["provenance"]["c2pa_in_original"] for p in cropped)
    assert True in verdicts


def test_restore_reads_neither_the_original_nor_the_pixels_of_a_cropped_file(
    project, run, api, monkeypatch
):
    """A cropped file's provenance comes from the memo's verdict on the API's bytes: the
    restore reads only the delivered blob of each job."""
    entries, _, _ = fresh_then_restored(project, run, api)
    forbid_inspection(monkeypatch)
    cropped = {e["sha256"] for e in entries.values() if e["path"] == "shop/badge.png"}
    read: list[str] = []
    from pipeline.store import LocalStore

    real = LocalStore.read_blob

    def counting(self, sha: str) -> bytes | None:
        read.append(sha)
        return real(self, sha)

    monkeypatch.setattr(LocalStore, "read_blob", counting)
    assert run("build", "--provider", "openai").code == 0
    again = manifest_entries(project)
    assert again["shop/badge.png"]["provenance"] == entries["shop/badge.png"]["provenance"]
    assert again["shop/badge.png"]["provenance"]["reencoded"] is True
    assert len(read) == len(entries)
    assert cropped <= set(read)


def test_malformed_memo_records_and_foreign_thumbnails_are_redone(project, run, api):
    """Garbage, a record of the wrong shape, one naming another image, a link, and a
    thumbnail that is not a WebP file: each is a miss, recomputed and rewritten, and the
    restored manifest and thumbnails equal the fresh ones."""
    entries, files, _ = fresh_then_restored(project, run, api)
    records = memo_files(project, ".json")
    by_sha = {p.stem: p for p in records}
    tiles = [entries[f"shop/tile-{n}.png"]["sha256"] for n in (1, 2, 3)]
    badge = entries["shop/badge.png"]["sha256"]
    outside = project.root.parent / "outside.json"
    planted = by_sha[tiles[2]].read_text()
    outside.write_text(planted)
    by_sha[tiles[0]].write_bytes(b"\x80not json")
    wrong = json.loads(by_sha[tiles[1]].read_text())
    for found in wrong["checks"].values():
        found[0]["ok"] = "yes"
    by_sha[tiles[1]].write_text(json.dumps(wrong))
    by_sha[tiles[2]].unlink()
    by_sha[tiles[2]].symlink_to(outside)
    other = json.loads(by_sha[badge].read_text())
    other["sha256"] = tiles[0]
    by_sha[badge].write_text(json.dumps(other))
    photo = entries["shop/photo.jpg"]["sha256"]
    thumb = next(p for p in memo_files(project, ".webp") if p.stem == photo)
    png = Image.new("RGB", (8, 8), "red")
    png.save(thumb, format="PNG")

    result = run("build", "--provider", "openai")
    assert result.code == 0, result.err
    assert steady(manifest_entries(project)) == steady(entries)
    assert tree_bytes(project / "output") == files
    assert f"memo entry {tiles[0][:12]} is malformed" in result.err
    assert f"memo thumbnail {photo[:12]} is not a WebP file" in result.err
    assert outside.read_text() == planted  # the link was replaced, never written through
    rewritten = by_sha[tiles[2]]
    assert not rewritten.is_symlink()
    for sha in (*tiles, badge):
        assert json.loads(by_sha[sha].read_text())["sha256"] == sha
    assert thumb.read_bytes()[:4] == b"RIFF"


def test_a_linked_memo_folder_is_never_followed(project, run, api):
    """A symbolic link in place of a memo folder: the memo is not used through it (a
    warning), nothing is written where it points, and the build still succeeds."""
    _, files, _ = fresh_then_restored(project, run, api)
    memo = project / ".assetpipe/cache/memo"
    elsewhere = project.root.parent / "elsewhere"
    shutil.move(memo, elsewhere)
    before = {str(p) for p in elsewhere.rglob("*")}
    memo.symlink_to(elsewhere, target_is_directory=True)
    result = run("build", "--provider", "openai")
    assert result.code == 0, result.err
    assert tree_bytes(project / "output") == files
    assert {str(p) for p in elsewhere.rglob("*")} == before
    assert "refusing to use the symbolic link" in result.err


def test_a_changed_palette_is_a_memo_miss_for_the_checks_only(project, run, api, monkeypatch):
    """Same images, another brand palette: the checks run again on the restored files
    (their verdicts name the new colors), while the hash and thumbnail come from the memo."""
    entries, _, requests = fresh_then_restored(project, run, api)
    project.gen({"specs/shop.yaml": SPEC.replace('night: "#2B2D42"', 'night: "#00FF00"')})
    ran: list[object] = []
    real = checks.run_checks

    def spy(*args: object, **kwargs: object) -> list[checks.Check]:
        ran.append(kwargs["palette"])
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(checks, "run_checks", spy)
    monkeypatch.setattr(checks, "perceptual_hash", refuse)
    monkeypatch.setattr(delivery, "encode_thumbnail", refuse)
    result = run("build", "--provider", "openai")
    assert result.code == 0, result.err
    assert api.count() == requests
    again = manifest_entries(project)
    assert {e["status"] for e in again.values()} == {"cached"}
    assert ["#E4572E", "#00FF00"] in ran
    tile = again["shop/tile-1.png"]
    assert tile["phash"] == entries["shop/tile-1.png"]["phash"]
    [palette] = [c for c in tile["checks"] if c["name"] == "palette"]
    expected = real(
        (project / "output/shop/tile-1.png").read_bytes(),
        width=1024,
        height=1024,
        expect_alpha=False,
        palette=["#E4572E", "#00FF00"],
    )[-1]
    assert palette == expected.as_dict()


def test_a_fresh_image_is_decoded_once(project, run, api, monkeypatch):
    """An API image delivered as it is (its size and format as asked) is committed to the
    cache undecoded, then decoded once, when its file is written, and that decode serves
    the checks, the hash and the thumbnail."""
    project.gen(
        {
            "specs/one.yaml": """
            assets:
              - id: tile
                prompt: "A tile"
                size: 1024x1024
                quality: low
            """
        }
    )
    decodes: list[str] = []

    def counted(name: str) -> Callable[..., Any]:
        real = getattr(postprocess, name)

        def decode(*args: Any, **kwargs: Any) -> Any:
            decodes.append(name)
            return real(*args, **kwargs)

        return decode

    for name in ("sample_bytes", "deliver_decoded", "decode", "probe"):
        monkeypatch.setattr(postprocess, name, counted(name))
    result = run("build", "--provider", "openai")
    assert result.code == 0, result.err
    assert decodes == ["sample_bytes"]
    [entry] = manifest_entries(project).values()
    assert entry["status"] == "generated"
    assert [c["name"] for c in entry["checks"]] == ["size"]
    assert (project / f"output/.gallery/{entry['sha256']}.webp").read_bytes()[:4] == b"RIFF"


SIZES = """
    assets:
      - id: small
        prompt: "A lighthouse"
        size: 512x512
        quality: low
      - id: medium
        prompt: "A lighthouse"
        size: 640x640
        quality: low
      - id: native
        prompt: "A lighthouse"
        size: 816x816
        quality: low
"""


def test_one_request_cached_for_several_sizes_restores_each_at_its_own_size(project, run, api):
    """Three assets asking the same request (one cache key) for 512, 640 and 816 px: after
    rm -rf output, each file comes back at its own size, made from the API's bytes (kept
    under a delivery key, so the second restore reads them), never from another size."""
    project.gen({"specs/sizes.yaml": SIZES})
    assert run("build", "--provider", "openai").code == 0
    keys = {e["cache_key"] for e in manifest_entries(project).values()}
    assert len(keys) == 1
    requests = api.count()
    for _ in range(2):
        shutil.rmtree(project / "output")
        result = run("build", "--provider", "openai")
        assert result.code == 0, result.err
        assert api.count() == requests
        for path, entry in manifest_entries(project).items():
            with Image.open(project / "output" / path) as image:
                assert image.size == (entry["width"], entry["height"]), path
            assert entry["status"] == "cached"
            assert all(c["ok"] for c in entry["checks"] if c["name"] == "size"), path


def test_restored_files_are_copies_not_links_to_the_cache(project, run, api):
    """Editing a restored file in place leaves the cached bytes (and the next restore) as
    they were: output files are copies."""
    entries, files, _ = fresh_then_restored(project, run, api)
    assert run("build", "--provider", "openai").code == 0
    path = project / "output/shop/tile-1.png"
    assert {p.stat().st_nlink for p in (project / "output/shop").iterdir()} == {1}
    with path.open("r+b") as handle:
        handle.seek(100)
        handle.write(b"\x00" * 16)
    shutil.rmtree(project / "output")
    assert run("build", "--provider", "openai").code == 0
    restored = (project / "output/shop/tile-1.png").read_bytes()
    assert restored == files["shop/tile-1.png"]
    assert hashlib.sha256(restored).hexdigest() == entries["shop/tile-1.png"]["sha256"]


# -- the memo on its own ------------------------------------------------------------------

SHA = "ab" + "0" * 62
CHECK = {"name": "size", "ok": True, "detail": "1024x1024 as asked", "value": None}


def record(**fields: object) -> bytes:
    body = {"format": 1, "sha256": SHA, "width": 1024, "height": 1024, "checks": {}}
    body.update(fields)
    return json.dumps(body).encode()


def test_a_memo_record_reads_back_what_was_written():
    """encode then parse is the identity on every field."""
    found = Inspection(
        width=1024,
        height=768,
        phash="00ff00ff00ff00ff",
        method="m",
        c2pa=True,
        checks={"0" * 32: (CHECK,)},
    )
    assert parse_inspection(SHA, encode_inspection(SHA, found)) == found


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"[]",
        b'{"format": 1, "sha256": "' + SHA.encode() + b'", "checks": {"0": [] ',
        record(format=2),
        record(sha256="cd" + "0" * 62),
        record(extra=1),
        record(width=True),
        record(width=0),
        record(height=1 << 20),
        record(phash="XYZ"),
        record(method=7),
        record(c2pa="yes"),
        record(checks=[]),
        record(checks={"not-hex": [CHECK]}),
        record(checks={"0" * 32: [{**CHECK, "ok": "yes"}]}),
        record(checks={"0" * 32: [{**CHECK, "value": True}]}),
        record(checks={"0" * 32: [{**CHECK, "extra": 1}]}),
        record(checks={"0" * 32: [{**CHECK, "detail": "x" * 5000}]}),
        record(checks={f"{i:032x}": [CHECK] for i in range(17)}),
        b'{"format": 1, "sha256": "' + SHA.encode() + b'", "checks": {"' + b"0" * 32 + b'": '
        b'[{"name": "palette", "ok": false, "detail": "", "value": NaN}]}}',
    ],
    ids=lambda d: d[:60].decode("utf-8", "replace"),
)
def test_a_memo_record_not_exactly_as_written_is_a_miss(data):
    """Anything but the memo's own shape (types, ranges, lengths, the sha it names) reads
    as nothing."""
    assert parse_inspection(SHA, data) is None


def test_merging_keeps_the_newest_check_configurations():
    """Each check configuration is kept once; past the cap, the oldest go first."""
    old = Inspection(checks={f"{i:032x}": (CHECK,) for i in range(16)}, phash="0" * 16)
    newer = Inspection(checks={"f" * 32: (CHECK,)}, width=8, height=8)
    merged = old.merged(newer)
    assert list(merged.checks)[-1] == "f" * 32
    assert len(merged.checks) == 16
    assert f"{0:032x}" not in merged.checks
    assert (merged.width, merged.phash) == (8, "0" * 16)


def test_only_a_whole_webp_file_is_a_thumbnail(tmp_path):
    """RIFF, its length, WEBP: a truncated WebP or another format is not kept or used."""
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(buffer, format="WEBP")
    webp = buffer.getvalue()
    assert is_webp(webp)
    assert not is_webp(webp[:-1])
    assert not is_webp(b"RIFF\x04\x00\x00\x00WAVE")
    memo = LocalMemo(tmp_path / "memo")
    digest = hashlib.sha256(webp).hexdigest()

    def kept() -> bytes | None:
        with memo.thumbnail_file(SHA, digest) as found:
            return found.data if found is not None else None

    memo.keep_thumbnail(SHA, webp[:-1])
    assert kept() is None
    memo.keep_thumbnail(SHA, webp)
    assert kept() == webp
    (tmp_path / "memo" / SHA[:2] / f"{SHA}.webp").write_bytes(webp + b"tail")
    assert kept() is None
    memo.keep_thumbnail(SHA, webp)
    with memo.thumbnail_file(SHA, "0" * 64) as found:
        assert found is None  # a whole WebP, but not the one the record names


def test_a_fifo_or_an_oversized_record_is_a_miss_not_a_hang(tmp_path):
    """A record that is not a regular file, or is larger than any record, is not read."""
    memo = LocalMemo(tmp_path / "memo")
    shard = tmp_path / "memo" / SHA[:2]
    shard.mkdir(parents=True)
    os.mkfifo(shard / f"{SHA}.json")
    assert memo.inspection(SHA) is None
    (shard / f"{SHA}.json").unlink()
    (shard / f"{SHA}.json").write_bytes(record() + b" " * MAX_RECORD_BYTES)
    assert memo.inspection(SHA) is None
    memo.remember(SHA, Inspection(width=3, height=4))
    assert memo.inspection(SHA) == Inspection(width=3, height=4)


def test_a_record_this_process_wrote_is_read_back_from_memory(tmp_path, monkeypatch):
    """What a memo wrote is answered without the disk for the rest of its life (the newest
    ``RECENT_RECORDS``); another memo on the same folder (the next build) reads the disk,
    and a record that could not be written is not remembered either."""
    from pipeline.store import memo as memo_module

    monkeypatch.setattr(memo_module, "RECENT_RECORDS", 2)
    memo = LocalMemo(tmp_path / "memo")
    shas = [f"{n:064x}" for n in range(3)]
    for n, sha in enumerate(shas):
        memo.remember(sha, Inspection(width=n + 1, height=1))
    for sha in shas:
        (tmp_path / "memo" / sha[:2] / f"{sha}.json").unlink()
    assert [memo.inspection(sha) for sha in shas] == [
        None,  # the oldest, no longer in memory: read from the disk, where it is gone
        Inspection(width=2, height=1),
        Inspection(width=3, height=1),
    ]
    assert LocalMemo(tmp_path / "memo").inspection(shas[2]) is None

    def disk_full(path: object, data: bytes, *, fsync: bool = True) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(memo_module, "write_atomic", disk_full)
    memo.remember(shas[0], Inspection(width=9, height=9))
    assert memo.inspection(shas[0]) is None


def test_a_name_that_is_not_a_sha256_never_becomes_a_path(tmp_path):
    """The memo names files by sha256 only: anything else is a miss, and nothing is written."""
    memo = LocalMemo(tmp_path / "memo")
    for name in ("../../escape", SHA.upper(), SHA[:-1]):
        memo.remember(name, Inspection(width=1, height=1))
        memo.keep_thumbnail(name, b"RIFF\x04\x00\x00\x00WEBP")
        assert memo.inspection(name) is None
    assert not (tmp_path / "memo").exists()
    assert not (tmp_path / "escape.json").exists()


def test_a_thumbnail_changed_through_its_link_is_drawn_again(project, run, api):
    """A restore links the memo's thumbnails into output/.gallery (no copy); one edited in
    place there changes the memo's file too, which no longer has the sha256 its record
    names: the next restore draws it again, with a warning, and shares nothing edited."""
    entries, files, _ = fresh_then_restored(project, run, api)
    assert run("build", "--provider", "openai").code == 0
    sha = entries["shop/tile-1.png"]["sha256"]
    pixels = pixel_digest((project / "output/shop/tile-1.png").read_bytes())
    assert pixels is not None  # a PNG: its thumbnail is kept by the name of its pixels
    thumb = project / f"output/.gallery/{sha}.webp"
    [memo_thumb] = [p for p in memo_files(project, ".webp") if p.name == f"{pixels}.px.webp"]
    assert thumb.stat().st_ino == memo_thumb.stat().st_ino  # the memo's own file
    with thumb.open("r+b") as handle:
        handle.seek(20)
        handle.write(b"\xff" * 8)
    shutil.rmtree(project / "output")
    result = run("build", "--provider", "openai")
    assert result.code == 0, result.err
    assert f"memo thumbnail {pixels[:12]} was changed; drawing it again" in result.err
    assert tree_bytes(project / "output") == files
    [kept] = [p for p in memo_files(project, ".webp") if p.name == f"{pixels}.px.webp"]
    assert kept.read_bytes() == files[f".gallery/{sha}.webp"]


def test_a_restore_without_the_memo_inspects_again_and_gives_the_same_tree(project, run, api):
    """The memo only saves work: deleted, the restore decodes and inspects each file again
    and writes the same files, thumbnails and entries, and the memo is filled again."""
    entries, files, _ = fresh_then_restored(project, run, api)
    shutil.rmtree(project / ".assetpipe/cache/memo")
    result = run("build", "--provider", "openai")
    assert result.code == 0, result.err
    assert steady(manifest_entries(project)) == steady(entries)
    assert tree_bytes(project / "output") == files
    assert {p.name for p in memo_files(project, ".webp")} == memo_thumbnails(project, entries)


def memo_thumbnails(project: Any, entries: dict[str, Any]) -> set[str]:
    """The memo's thumbnail of each delivered file: by its pixels' name for a PNG, by its
    sha256 otherwise."""
    names = set()
    for entry in entries.values():
        pixels = pixel_digest((project / "output" / entry["path"]).read_bytes())
        names.add(f"{pixels}.px.webp" if pixels else f"{entry['sha256']}.webp")
    return names


SDK_PROBE = (
    "import sys\n"
    "from pipeline.cli import main\n"
    "try:\n"
    "    main(['build', '--provider', 'openai', '--project', sys.argv[1]])\n"
    "except SystemExit as exc:\n"
    "    print('exit', exc.code, file=sys.stderr)\n"
    "print('openai loaded:', 'openai' in sys.modules, file=sys.stderr)\n"
)


def test_a_build_with_nothing_to_pay_for_never_loads_the_sdk(project, run, api):
    """The provider is made on the first paid request: a restore from the cache (and an
    up-to-date build) never imports the OpenAI SDK; a build that pays does (checked by the
    modules loaded in a fresh process, not by a timer)."""
    _, _, requests = fresh_then_restored(project, run, api)

    def build() -> list[str]:
        done = subprocess.run(
            [sys.executable, "-c", SDK_PROBE, str(project.root)],
            capture_output=True,
            text=True,
            check=False,
            env=os.environ.copy(),
        )
        return done.stderr.strip().splitlines()[-2:]

    assert build() == ["exit 0", "openai loaded: False"]  # everything restored
    assert api.count() == requests
    project.gen({"specs/more.yaml": 'assets: [{id: new, prompt: "New", quality: low}]'})
    assert build() == ["exit 0", "openai loaded: True"]
    assert api.count() == requests + 1


PICTURES = """
    assets:
      - id: tile
        prompt: "One flat tile"
        size: 1024x1024
        quality: low
        variants: 4
"""


def test_a_restore_with_an_empty_memo_decodes_each_picture_once(project, run, api, monkeypatch):
    """Four variants of one prompt: four files (each API answer carries its own
    identifier) with the same pixels. Restored on a machine whose memo is empty, the
    picture is decoded once, not four times, and the tree and entries are the same."""
    project.gen({"specs/tiles.yaml": PICTURES})
    assert run("build", "--provider", "openai").code == 0
    entries = manifest_entries(project)
    files = tree_bytes(project / "output")
    pngs = [files[path] for path in entries]
    assert len(pngs) == len(set(pngs)) == 4
    assert len({pixel_digest(data) for data in pngs}) == 1
    requests = api.count()
    shutil.rmtree(project / "output")
    shutil.rmtree(project / ".assetpipe/cache/memo")
    decoded: list[bytes] = []
    real = postprocess.sample_bytes

    def counting(data: bytes, *args: Any) -> postprocess.Sample:
        decoded.append(data)
        return real(data, *args)

    monkeypatch.setattr(postprocess, "sample_bytes", counting)
    result = run("build", "--provider", "openai")
    assert result.code == 0, result.err
    assert api.count() == requests
    assert len(decoded) == 1
    assert steady(manifest_entries(project)) == steady(entries)
    assert tree_bytes(project / "output") == files
