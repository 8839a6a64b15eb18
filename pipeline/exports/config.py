"""``exports:`` in ``assetpipe.yaml``: which exporters run, with which options.

Each entry is ``{format: NAME, ...options}``; the options are validated against that
exporter's own model, so a misspelt key or a bad value is an error at its line, like the
rest of ``assetpipe.yaml``. The gallery runs unless ``exports:`` turns it off
(``{format: gallery, enabled: false}``). What each exporter reserves is checked here,
before anything is built: a path outside the output folder (or, for an exporter that
writes into the project, outside the project or inside a folder assetpipe keeps), or one
two exporters (or an exporter and the output tree itself) would both write, is an error
naming the entry.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import Location, SpecError, did_you_mean, raise_collected, shortened
from pipeline.exports.base import (
    OUTPUT,
    PROJECT,
    Exporter,
    ExportOptions,
    covers,
    path_problem,
    root_of,
)
from pipeline.exports.registry import DEFAULT_ON, ExporterClass, exporters
from pipeline.hashing import canonical_json, sha256_bytes
from pipeline.output import MANIFEST, OUTPUT_LOCK
from pipeline.spec.validation import validate
from pipeline.spec.yamlsource import YMap, locate

SETTINGS_FILE = "assetpipe.yaml"
COMMON_KEYS = ("format", "enabled")
"""Keys every entry may have, whatever its format."""
TREE_FILES = {MANIFEST: "the manifest", OUTPUT_LOCK: "the output lock"}
"""Files the output tree keeps for itself: no exporter writes there."""
PROJECT_FILES = {SETTINGS_FILE: "the settings", "assetpipe.lock": "the approvals"}
"""Files of the project folder no exporter writes."""


@dataclass(frozen=True, slots=True)
class ConfiguredExport:
    """One exporter as ``assetpipe.yaml`` configures it."""

    format: str
    options: ExportOptions
    cls: ExporterClass
    reserved: tuple[str, ...]
    where: Location | None = None
    """Its entry in ``assetpipe.yaml`` (None: on by default)."""
    root: str = OUTPUT
    """Whether ``reserved`` is relative to the output folder or to the project."""
    project: Path | None = None
    """The project folder, for an exporter whose root it is."""

    @property
    def key(self) -> str:
        """The format and options as canonical JSON: what says two configurations are
        the same, for the record of what an exporter last wrote."""
        return canonical_json(
            {"format": self.format, "options": self.options.model_dump(mode="json")}
        )

    def make(self) -> Exporter:
        """A fresh exporter for one run."""
        return self.cls(self.options)  # type: ignore[call-arg]


def exports_digest(exports: Sequence[ConfiguredExport]) -> str:
    """One sha256 over every configured exporter, in order, and the status (size,
    mtime, ctime, inode) of each file an exporter keeps in the project folder.

    A build with nothing to do answers from its stamp, which covers the output folder's
    files; the status of the project's export files enters it here, so deleting or
    editing ``src/assets.ts`` makes the next build run (and write it again)."""
    lines = [e.key for e in exports]
    for export in exports:
        if export.root == PROJECT and export.project is not None:
            lines.extend(f"{rel}\t{_status(export.project, rel)}" for rel in export.reserved)
    return sha256_bytes("\n".join(lines).encode("utf-8"))


def _status(root: Path, rel: str) -> str:
    """What says a file is still the one written: its own status, never a link's."""
    try:
        info = (root / rel).lstat()
    except (OSError, ValueError):
        return "-"
    return f"{info.st_mode} {info.st_size} {info.st_mtime_ns} {info.st_ctime_ns} {info.st_ino}"


def reserved_paths(exports: Sequence[ConfiguredExport]) -> dict[str, str]:
    """Every path reserved in the output folder, with what keeps it (for messages)."""
    return {
        path: f"the {e.format} export" for e in exports if e.root == OUTPUT for path in e.reserved
    }


def configured_exports(
    raw: Sequence[Any] | None,
    tree: YMap | None,
    *,
    project: Path | None = None,
    keep_out: Mapping[str, Path] | None = None,
) -> tuple[ConfiguredExport, ...]:
    """The exporters ``exports:`` asks for (``raw``, already a list of mappings), plus the
    ones on by default that it does not mention; SpecErrors at their lines otherwise.

    ``project`` is the project folder, where exporters whose root it is write; none of
    their paths may lie in a folder of ``keep_out`` (``{"output folder": path}``)."""
    known = exporters()
    out: list[ConfiguredExport] = []
    mentioned: set[str] = set()
    errors: list[SpecError] = []
    for index, entry in enumerate(raw or ()):
        try:
            configured = _entry(index, entry, tree, known)
        except SpecError as exc:
            errors.append(exc)
            continue
        if configured is None:  # enabled: false
            mentioned.add(str(entry.get("format")))
            continue
        mentioned.add(configured.format)
        out.append(configured)
    raise_collected(errors)
    defaults = [
        _configured(name, known[name], known[name].Options(), None)
        for name in DEFAULT_ON
        if name not in mentioned and name in known
    ]
    result = tuple(_in_project(e, project) if e.root == PROJECT else e for e in (*defaults, *out))
    raise_collected(_collisions(result, tree))
    raise_collected(_project_problems(result, keep_out or {}))
    return result


def _in_project(export: ConfiguredExport, project: Path | None) -> ConfiguredExport:
    return ConfiguredExport(
        export.format,
        export.options,
        export.cls,
        export.reserved,
        export.where,
        export.root,
        project,
    )


def _entry(
    index: int, entry: Any, tree: YMap | None, known: dict[str, ExporterClass] | Any
) -> ConfiguredExport | None:
    path: list[str | int] = ["exports", index]
    where = _where(tree, path)
    name = entry.get("format")
    if name is None:
        raise SpecError(
            "an export needs 'format'", where, f"e.g. format: gallery; known: {', '.join(known)}"
        )
    if not isinstance(name, str) or name not in known:
        shown = repr(shortened(name)) if isinstance(name, str) else repr(name)
        hint = did_you_mean(name, known) if isinstance(name, str) else None
        raise SpecError(
            f"unknown export format {shown}",
            _where(tree, [*path, "format"]) or where,
            (hint + "; " if hint else "") + f"known formats: {', '.join(sorted(known))}",
        )
    enabled = entry.get("enabled", True)
    if not isinstance(enabled, bool):
        raise SpecError(
            f"'enabled' is true or false, not {shortened(repr(enabled))}",
            _where(tree, [*path, "enabled"]) or where,
            "e.g. enabled: false turns this export off",
        )
    if not enabled:
        return None
    cls = known[name]
    data = {k: v for k, v in entry.items() if k not in COMMON_KEYS}
    options = validate(
        cls.Options,
        data,
        tree,
        where or Location(SETTINGS_FILE),
        base_path=path,
        known_extra=COMMON_KEYS,
    )
    return _configured(name, cls, options, where)


def _configured(
    name: str, cls: ExporterClass, options: ExportOptions, where: Location | None
) -> ConfiguredExport:
    """The configured exporter, once its reserved paths are known to be fit to write."""
    try:
        exporter = cls(options)  # type: ignore[call-arg]
        reserved = tuple(exporter.reserved())
    except Exception as exc:  # a plugin's own code: its failure is the entry's error
        raise SpecError(f"the {name} export cannot use these options: {exc}", where) from None
    root = root_of(exporter)
    for rel in reserved:
        problem = path_problem(rel)
        if problem is not None:
            raise SpecError(
                f"the {name} export would write {shortened(repr(rel))}: {problem}",
                where,
                f"give a path inside the {root} folder, e.g. path: index.csv",
            )
    return ConfiguredExport(name, options, cls, reserved, where, root)


def fold(path: str) -> str:
    """The form in which two paths name one file on any file system we write to."""
    return unicodedata.normalize("NFC", path).casefold()


def _collisions(exports: Sequence[ConfiguredExport], tree: YMap | None) -> list[SpecError]:
    """An error for each reserved path another exporter, or the tree itself, holds."""
    taken: list[tuple[str, str]] = [
        *((f"{OUTPUT}:{fold(p)}", what) for p, what in TREE_FILES.items()),
        *((f"{PROJECT}:{fold(p)}", what) for p, what in PROJECT_FILES.items()),
    ]
    errors: list[SpecError] = []
    for export in exports:
        mine: list[tuple[str, str]] = []
        for rel in export.reserved:
            folded = f"{export.root}:{fold(rel)}"
            clash = next(
                (what for other, what in taken if covers(other, folded) or covers(folded, other)),
                None,
            )
            if clash is not None:
                errors.append(
                    SpecError(
                        f"the {export.format} export would write '{rel}', where {clash} writes",
                        export.where or (tree.location if tree is not None else None),
                        "give each export its own path",
                    )
                )
                break
            mine.append((folded, f"the {export.format} export"))
        taken.extend(mine)
    return errors


def _project_problems(
    exports: Sequence[ConfiguredExport], keep_out: Mapping[str, Path]
) -> list[SpecError]:
    """An error for each project path in a hidden folder or in a folder assetpipe keeps
    (its output, cache, specs or templates): there it would be deleted, read as a spec or
    template, or taken for the build's own file."""
    errors: list[SpecError] = []
    for export in exports:
        if export.root != PROJECT or export.project is None:
            continue
        for rel in export.reserved:
            problem = _kept_folder(export.project, rel, keep_out)
            if problem is not None:
                errors.append(
                    SpecError(
                        f"the {export.format} export would write '{rel}' {problem}",
                        export.where,
                        "give it a path in the project's own source tree, e.g. src/assets.ts",
                    )
                )
                break
    return errors


def _kept_folder(project: Path, rel: str, keep_out: Mapping[str, Path]) -> str | None:
    """Where ``rel`` (relative to ``project``) lies that no exporter may write, or None."""
    if any(part.startswith(".") for part in rel.split("/")):
        return "in a hidden folder or file"
    target = _lexical(project / rel)
    for what, folder in keep_out.items():
        for mine, theirs in (
            (target, _lexical(folder)),
            (_real(target), _real(folder)),
        ):
            if covers(fold(theirs.as_posix()), fold(mine.as_posix())):
                return f"inside the {what}"
    return None


def _lexical(path: Path) -> Path:
    """The absolute path, ``..`` resolved as text (links are :func:`_real`'s)."""
    return Path(os.path.normpath(path.absolute()))


def _real(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path


def _where(tree: YMap | None, path: Sequence[str | int]) -> Location | None:
    return locate(tree, path) if tree is not None else None
