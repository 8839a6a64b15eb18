"""Running the project's exporters: after a build, and for ``assetpipe export``.

A build runs an exporter only when its inputs changed since it last wrote its files:
the manifest (its bytes), the plan (picks and rejections change it), the exporter's
options and assetpipe's version. What each one last wrote, and from which inputs, is
kept in ``.assetpipe/exports.json``, sealed like the stamp (:mod:`~pipeline.api.sealing`):
a record counts only while every file it names still holds the bytes it recorded, so a
deleted or edited export is written again. ``assetpipe export`` always renders every
exporter; either way a file whose bytes did not change is left untouched.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pipeline
from pipeline.api.buildlock import project_lock
from pipeline.api.sealing import Sealer, user_sealer
from pipeline.api.workspace import Request, open_workspace
from pipeline.errors import UsageError
from pipeline.exports import ConfiguredExport, ExportPlan, ExportResult, Prepares
from pipeline.exports import write_exports as run_exporters
from pipeline.exports.base import PROJECT
from pipeline.fsutil import UnsafePathError, check_folder, read_regular, write_atomic
from pipeline.hashing import canonical_json, sha256_bytes, sha256_file
from pipeline.jobs import Plan
from pipeline.output import MANIFEST, ManifestEntry, OutputTree, load_manifest
from pipeline.output.manifest import read_manifest_bytes
from pipeline.settings import Settings
from pipeline.spec.lock import read_lock

log = logging.getLogger("assetpipe.exports")

RECORD_FILE = "exports.json"
MAX_RECORD_BYTES = 16 * 1000 * 1000
_VERSION = 1
_PURPOSE = "exports"


@dataclass(frozen=True, slots=True)
class ExportReport:
    """What ``assetpipe export`` did: each exporter's files, and which it rewrote."""

    output: Path
    results: tuple[ExportResult, ...]


def export_plan(settings: Settings, tree: OutputTree, plan: Plan) -> ExportPlan:
    """What the exporters are handed besides the entries."""
    return ExportPlan(
        tree=tree,
        title=f"assetpipe: {settings.root.resolve().name}",
        plan=plan,
        lock=read_lock(settings.root),
        provider=settings.provider,
        free=settings.provider_entry.free,
        project=OutputTree(settings.root),
    )


def prepare_exports(exports: Sequence[ConfiguredExport]) -> threading.Thread | None:
    """Start, on a thread of its own, what the configured exporters can do before the
    build's files are in (:class:`~pipeline.exports.Prepares`); a build with work to do
    (requests to send, results to restore from a cache, files to render) calls this as
    that work starts, when the CPU would otherwise wait on the network or the disk, and
    the exporters would otherwise do it after the last file, on the build's clock. The
    thread is returned (None when no exporter prepares); nobody needs to wait for it."""
    ready = [e.cls for e in exports if isinstance(e.cls, Prepares)]
    if not ready:
        return None
    thread = threading.Thread(
        target=_prepare, args=(ready,), name="assetpipe-prepare-exports", daemon=True
    )
    thread.start()
    return thread


def _prepare(classes: Sequence[Prepares]) -> None:
    for cls in classes:
        try:
            cls.prepare()
        except Exception as exc:  # rendering meets it again, and reports it there
            log.debug("preparing the %s export failed: %s", getattr(cls, "name", cls), exc)


def build_exports(
    settings: Settings,
    tree: OutputTree,
    entries: Sequence[ManifestEntry],
    plan: Plan,
    plan_digest: str | None,
    *,
    always: bool = False,
) -> list[ExportResult]:
    """Run the exporters whose inputs changed (``always``: every one) over ``entries``,
    the manifest just written; the caller holds the project and output locks."""
    sealer = user_sealer()
    manifest = read_manifest_bytes(tree.root / MANIFEST) or b""
    inputs = _inputs(manifest, plan_digest)
    record = {} if always or inputs is None else _read_record(settings.cache_dir, sealer)

    project = OutputTree(settings.root)

    def unchanged(export: ConfiguredExport) -> Mapping[str, str] | None:
        last = record.get(export.key)
        if last is None or last.get("inputs") != inputs:
            return None
        files = last.get("files")
        where = project if export.root == PROJECT else tree
        return files if isinstance(files, dict) and _still(where, files) else None

    results = run_exporters(
        tree, settings.exports, entries, export_plan(settings, tree, plan), unchanged=unchanged
    )
    if inputs is not None or always:
        _write_record(settings.cache_dir, sealer, inputs, results)
    return results


def owned_files(results: Sequence[ExportResult]) -> Iterator[str]:
    """Every file the exporters own now in the output folder (those in the project
    folder enter the build's stamp through :func:`~pipeline.exports.exports_digest`)."""
    for result in results:
        if result.root != PROJECT:
            yield from result.files


def export_outputs(req: Request) -> ExportReport:
    """``assetpipe export``: run every exporter over the current manifest; no API call,
    no build. The specs are planned (pure) for what the exporters show of them."""
    ws = open_workspace(req, credentials=False, reuse=True)
    settings = ws.settings
    tree = OutputTree(settings.output_dir)
    if read_manifest_bytes(tree.root / MANIFEST) is None:
        raise UsageError(
            f"no manifest at {tree.root / MANIFEST}: nothing to export yet; run assetpipe "
            "build first (or point --output at the build's folder)"
        )
    check_folder(settings.cache_dir, "cache folder", "--cache-dir")
    check_folder(tree.root, "output folder", "--output")
    with project_lock(settings.cache_dir), tree.lock():
        entries = list(load_manifest(tree.root).entries.values())
        results = build_exports(settings, tree, entries, ws.full_plan, ws.plan_digest, always=True)
    return ExportReport(output=tree.root, results=tuple(results))


def _inputs(manifest: bytes, plan_digest: str | None) -> str | None:
    """The digest of an exporter's inputs besides its options; None when the plan is not
    known by a digest (then every exporter runs)."""
    if plan_digest is None:
        return None
    doc = {
        "manifest": sha256_bytes(manifest),
        "plan": plan_digest,
        "version": pipeline.__version__,
    }
    return sha256_bytes(canonical_json(doc).encode("utf-8"))


def _still(tree: OutputTree, files: Mapping[str, object]) -> bool:
    """Whether every recorded file is a regular file in the tree with the recorded sha256."""
    for rel, sha in files.items():
        if not isinstance(rel, str) or not isinstance(sha, str) or not tree.exists(rel):
            return False
        try:
            if sha256_file(tree.path(rel)) != sha:
                return False
        except (OSError, ValueError, UnsafePathError):
            return False
    return True


def _read_record(cache_dir: Path, sealer: Sealer) -> dict[str, dict[str, object]]:
    """The last record, or an empty one when it is missing, not this user's, or damaged."""
    try:
        data = read_regular(cache_dir / RECORD_FILE, MAX_RECORD_BYTES)
        opened = sealer.open(_PURPOSE, data) if data is not None else None
        doc = json.loads(opened) if opened is not None else None
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(doc, dict) or doc.get("version") != _VERSION:
        return {}
    exports = doc.get("exports")
    if not isinstance(exports, dict):
        return {}
    return {k: v for k, v in exports.items() if isinstance(k, str) and isinstance(v, dict)}


def _write_record(
    cache_dir: Path, sealer: Sealer, inputs: str | None, results: Sequence[ExportResult]
) -> None:
    """Record what each exporter owns now and from which inputs (none: never reused)."""
    exports = {r.key: {"inputs": inputs, "files": dict(r.files)} for r in results}
    body = json.dumps({"version": _VERSION, "exports": exports}, separators=(",", ":"))
    sealed = sealer.seal(_PURPOSE, body.encode("utf-8"))
    if sealed is None:
        return
    try:
        write_atomic(cache_dir / RECORD_FILE, sealed, fsync=False)
    except OSError as exc:
        log.debug("no record of the exports: %s", exc)
