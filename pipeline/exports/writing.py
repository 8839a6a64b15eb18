"""Running exporters: render, check what came back, and write only what changed.

An exporter's files are compared with the files on disk before anything is written, so
an export whose output did not change leaves its files exactly as they were (same bytes,
same mtime, nothing for a file watcher or a game engine's importer to react to). Every
path an exporter returns must lie in what it reserved, and is written through the
output tree (or, for an exporter whose root is the project, through the same contained
writer over the project folder): atomically, inside that folder, through no link.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from pipeline.errors import PipelineError, shortened
from pipeline.exports.base import (
    PROJECT,
    ExportError,
    ExportPlan,
    Tidies,
    covers,
    path_problem,
)
from pipeline.exports.config import ConfiguredExport, fold
from pipeline.fsutil import UnsafePathError
from pipeline.hashing import sha256_bytes
from pipeline.output import ManifestEntry, OutputTree


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What one exporter did."""

    format: str
    files: Mapping[str, str]
    """Every file it owns now: path -> sha256."""
    written: tuple[str, ...] = ()
    """The files it (re)wrote; the others were already exactly so."""
    skipped: bool = False
    """Its inputs had not changed since it last wrote these very files: not run."""
    key: str = field(default="", compare=False)
    root: str = "output"
    """Whether ``files`` are relative to the output folder or to the project."""


def write_exports(
    tree: OutputTree,
    exports: Sequence[ConfiguredExport],
    entries: Sequence[ManifestEntry],
    plan: ExportPlan,
    *,
    unchanged: Callable[[ConfiguredExport], Mapping[str, str] | None] = lambda _e: None,
) -> list[ExportResult]:
    """Run each exporter over ``entries`` unless ``unchanged`` gives the files it last
    wrote (its inputs being the same and those files still there, as they were)."""
    results: list[ExportResult] = []
    for export in exports:
        kept = unchanged(export)
        if kept is not None:
            results.append(
                ExportResult(
                    export.format, dict(kept), skipped=True, key=export.key, root=export.root
                )
            )
            continue
        exporter = export.make()
        target = _target(export, tree, plan)
        files = _checked(export, _render(export, exporter, entries, plan))
        written = tuple(rel for rel, data in files.items() if _write_if_changed(target, rel, data))
        if isinstance(exporter, Tidies):
            exporter.tidy(plan)
        owned = {rel: sha256_bytes(data) for rel, data in files.items()}
        results.append(
            ExportResult(export.format, owned, written, key=export.key, root=export.root)
        )
    return results


def _target(export: ConfiguredExport, tree: OutputTree, plan: ExportPlan) -> OutputTree:
    """The folder an exporter's paths are relative to."""
    if export.root != PROJECT:
        return tree
    if plan.project is None:
        raise ExportError(
            f"the {export.format} export writes into the project folder, unknown here"
        )
    return plan.project


def _render(
    export: ConfiguredExport, exporter: object, entries: Sequence[ManifestEntry], plan: ExportPlan
) -> object:
    try:
        return exporter.render(entries, plan)  # type: ignore[attr-defined]
    except PipelineError:
        raise
    except Exception as exc:  # a plugin's bug is said as the export that failed, not a trace
        raise ExportError(
            f"the {export.format} export failed: {type(exc).__name__}: {shortened(str(exc))}"
        ) from exc


def _checked(export: ConfiguredExport, files: object) -> dict[str, bytes]:
    """The exporter's files, once each is bytes at a path it reserved."""
    if not isinstance(files, Mapping):
        raise ExportError(
            f"the {export.format} export returned {type(files).__name__}, not a mapping of "
            "paths to bytes"
        )
    reserved = [fold(r) for r in export.reserved]
    out: dict[str, bytes] = {}
    for rel, data in files.items():
        problem = path_problem(rel)
        if problem is not None:
            raise ExportError(
                f"the {export.format} export returned {shortened(repr(rel))}: {problem}"
            )
        if not any(covers(r, fold(rel)) for r in reserved):
            raise ExportError(
                f"the {export.format} export returned '{shortened(rel)}', which it did not "
                f"reserve (it reserves {', '.join(export.reserved) or 'nothing'})"
            )
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ExportError(
                f"the {export.format} export returned {type(data).__name__} for "
                f"'{shortened(rel)}', not bytes"
            )
        out[rel] = bytes(data)
    return out


def _write_if_changed(tree: OutputTree, rel: str, data: bytes) -> bool:
    """Write ``data`` at ``rel`` unless the file already holds exactly it; whether it
    was written."""
    if tree.exists(rel):
        with contextlib.suppress(OSError, ValueError, UnsafePathError):
            if tree.read(rel) == data:
                return False
    tree.write(rel, data, fsync=False)
    return True
