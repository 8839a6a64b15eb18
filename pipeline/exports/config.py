"""``exports:`` in ``assetpipe.yaml``: which exporters run, with which options.

Each entry is ``{format: NAME, ...options}``; the options are validated against that
exporter's own model, so a misspelt key or a bad value is an error at its line, like the
rest of ``assetpipe.yaml``. The gallery runs unless ``exports:`` turns it off
(``{format: gallery, enabled: false}``). What each exporter reserves is checked here,
before anything is built: a path outside the output folder, or one two exporters (or an
exporter and the output tree itself) would both write, is an error naming the entry.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.errors import Location, SpecError, did_you_mean, raise_collected, shortened
from pipeline.exports.base import Exporter, ExportOptions, covers, path_problem
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


@dataclass(frozen=True, slots=True)
class ConfiguredExport:
    """One exporter as ``assetpipe.yaml`` configures it."""

    format: str
    options: ExportOptions
    cls: ExporterClass
    reserved: tuple[str, ...]
    where: Location | None = None
    """Its entry in ``assetpipe.yaml`` (None: on by default)."""

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
    """One sha256 over every configured exporter, in order."""
    return sha256_bytes("\n".join(e.key for e in exports).encode("utf-8"))


def reserved_paths(exports: Sequence[ConfiguredExport]) -> dict[str, str]:
    """Every reserved path, with what keeps it (for messages)."""
    return {path: f"the {e.format} export" for e in exports for path in e.reserved}


def configured_exports(
    raw: Sequence[Any] | None, tree: YMap | None
) -> tuple[ConfiguredExport, ...]:
    """The exporters ``exports:`` asks for (``raw``, already a list of mappings), plus the
    ones on by default that it does not mention; SpecErrors at their lines otherwise."""
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
    result = (*defaults, *out)
    raise_collected(_collisions(result, tree))
    return result


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
        reserved = tuple(cls(options).reserved())  # type: ignore[call-arg]
    except Exception as exc:  # a plugin's own code: its failure is the entry's error
        raise SpecError(f"the {name} export cannot use these options: {exc}", where) from None
    for rel in reserved:
        problem = path_problem(rel)
        if problem is not None:
            raise SpecError(
                f"the {name} export would write {shortened(repr(rel))}: {problem}",
                where,
                "give a path inside the output folder, e.g. path: index.csv",
            )
    return ConfiguredExport(name, options, cls, reserved, where)


def fold(path: str) -> str:
    """The form in which two paths name one file on any file system we write to."""
    return unicodedata.normalize("NFC", path).casefold()


def _collisions(exports: Sequence[ConfiguredExport], tree: YMap | None) -> list[SpecError]:
    """An error for each reserved path another exporter, or the tree itself, holds."""
    taken: list[tuple[str, str]] = [(fold(p), what) for p, what in TREE_FILES.items()]
    errors: list[SpecError] = []
    for export in exports:
        mine: list[tuple[str, str]] = []
        for rel in export.reserved:
            folded = fold(rel)
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


def _where(tree: YMap | None, path: Sequence[str | int]) -> Location | None:
    return locate(tree, path) if tree is not None else None
