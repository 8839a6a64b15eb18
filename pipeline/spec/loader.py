"""Finding and loading a project's spec files and brand kits.

Loading reads files but renders nothing: it checks each file's top-level shape, resolves
its brand kit and validates its ``defaults``, and keeps each asset as its YAML tree so
the planner can substitute matrix values into every string before validating it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import (
    UNPRINTABLE,
    Location,
    SpecError,
    SpecErrors,
    did_you_mean,
    printable,
    raise_collected,
)
from pipeline.spec.brand import load_brand
from pipeline.spec.models import (
    NOT_DEFAULTS,
    SPEC_KEYS,
    AssetDefaults,
    BrandKit,
    SheetSpec,
)
from pipeline.spec.paths import display_path, inside
from pipeline.spec.validation import validate
from pipeline.spec.yamlsource import YMap, YSeq, load_yaml, parse_yaml

__all__ = [
    "SPEC_SUFFIXES",
    "Collection",
    "Project",
    "check_var_names",
    "collection_from_text",
    "collection_from_tree",
    "collection_name",
    "display_path",
    "find_spec_files",
    "folder_links_leaving",
    "inside",
    "link_display",
    "load_collection",
    "load_project",
    "read_vars",
    "select_files",
]


@dataclass(frozen=True, slots=True)
class Collection:
    """One spec file: its name, brand, defaults, vars and unexpanded asset trees."""

    name: str
    file: str
    path: Path
    brand: BrandKit | None
    brand_dir: Path
    brand_file: str
    defaults: AssetDefaults
    vars: Mapping[str, Any]
    assets: tuple[YMap, ...]
    location: Location
    defaults_locations: Mapping[str, Location] = field(default_factory=dict)
    """Where each key of ``defaults:`` is written, so a rule broken by a default points there."""
    defaults_tree: YMap | None = None
    """``defaults:`` as written, for values deeper than one key (a default's options)."""
    sheets: tuple[tuple[SheetSpec, YMap], ...] = ()
    """Sprite sheets, each with its YAML tree for error locations."""


@dataclass(frozen=True, slots=True)
class Project:
    """Every collection of a project that loaded, in a stable order, and the errors of the
    spec files that did not."""

    root: Path
    collections: tuple[Collection, ...]
    errors: tuple[SpecError, ...] = ()
    """Mistakes that kept a spec file from loading (a YAML error, an unknown top-level
    key). The planner reports them with the mistakes it finds in the files that did load,
    so a broken file does not hide every other file's errors."""
    unloaded: frozenset[str] = frozenset()
    """The collections of the files that did not load: a reference into one of them may
    name an asset whose file is already reported, and is not reported again."""


SPEC_SUFFIXES = (".yaml", ".yml")


def find_spec_files(specs_dir: Path) -> list[Path]:
    """Every ``*.yaml``/``*.yml`` file below ``specs_dir``, sorted for a stable plan.

    Links to folders are not followed (``rglob`` does not); :func:`load_project` reports
    the ones that point out of the specs folder.
    """
    if not specs_dir.is_dir():
        return []
    found = [p for p in specs_dir.rglob("*") if p.suffix in SPEC_SUFFIXES and p.is_file()]
    return sorted(found)


def folder_links_leaving(specs_dir: Path) -> list[Path]:
    """Symbolic links below ``specs_dir`` to folders outside it.

    ``rglob`` does not follow them, so their spec files would silently not load; they are
    reported instead (links to single spec files are checked as each file loads).
    """
    if not specs_dir.is_dir():
        return []
    return sorted(
        p
        for p in specs_dir.rglob("*")
        if p.is_symlink() and p.is_dir() and not inside(p, specs_dir)
    )


def link_display(path: Path, root: Path) -> str:
    """A link's own path as users see it (``display_path`` would show its target)."""
    try:
        return path.absolute().relative_to(root.absolute()).as_posix()
    except ValueError:
        return path.as_posix()


def collection_name(path: Path, specs_dir: Path) -> str:
    """``specs/ui/buttons.yaml`` is the collection ``ui/buttons``."""
    rel = path.resolve().relative_to(specs_dir.resolve())
    return rel.with_suffix("").as_posix()


def load_project(root: Path, specs_dir: Path, files: Iterable[Path] | None = None) -> Project:
    """Load the spec files of a project (all under ``specs_dir`` unless ``files`` is given).

    Errors from every file are collected in :attr:`Project.errors` rather than raised, so
    the planner can still check the files that loaded and one run shows every mistake of
    every file. Nothing is read through a link that leaves the specs folder.
    """
    paths = list(files) if files is not None else find_spec_files(specs_dir)
    collections: list[Collection] = []
    errors: list[SpecError] = []
    unloaded: set[str] = set()
    for link in folder_links_leaving(specs_dir) if files is None else []:
        errors.append(
            SpecError(
                "a symbolic link to a folder outside the specs folder; its files are not read",
                Location(link_display(link, root)),
                "keep spec files inside the specs folder; copy them in rather than link them",
            )
        )
    for path in paths:
        if not inside(path, specs_dir):
            # A spec read through a link could come from anywhere on disk (and its text
            # be echoed back in error messages), and would have no collection name.
            what = "a symbolic link to a file" if path.is_symlink() else "a spec file"
            errors.append(
                SpecError(
                    f"{what} outside the specs folder; it is not read",
                    Location(link_display(path, root)),
                    "keep spec files inside the specs folder; copy them in rather than link them",
                )
            )
            continue
        found = _load_one(path, root, specs_dir)
        if isinstance(found, Collection):
            collections.append(found)
        else:
            errors.extend(found)
            unloaded.add(collection_name(path, specs_dir))
    return Project(
        root=root,
        collections=tuple(collections),
        errors=tuple(errors),
        unloaded=frozenset(unloaded),
    )


def _load_one(path: Path, root: Path, specs_dir: Path) -> Collection | list[SpecError]:
    """One spec file's collection, or every error that kept it from loading."""
    try:
        return load_collection(path, root, specs_dir)
    except SpecError as exc:
        return [exc]
    except SpecErrors as exc:  # several mistakes in one file: report each
        return list(exc.errors)
    except Exception as exc:  # pragma: no cover - defensive: report, never crash
        where = Location(display_path(path, root))
        return [SpecError(f"cannot load this spec: {exc}", where)]


def load_collection(path: Path, root: Path, specs_dir: Path) -> Collection:
    """Load one spec file."""
    display = display_path(path, root)
    return collection_from_tree(load_yaml(path, display), path, root, specs_dir, display)


def collection_from_text(text: str, path: Path, root: Path, specs_dir: Path) -> Collection:
    """A collection from spec text that claims to be ``path``, with nothing read from disk
    unless the text names a brand file: how planner tests build a project from plain data."""
    display = display_path(path, root)
    return collection_from_tree(parse_yaml(text, display), path, root, specs_dir, display)


def collection_from_tree(
    tree: Any, path: Path, root: Path, specs_dir: Path, display: str
) -> Collection:
    """A collection from the parsed YAML of the spec file at ``path``."""
    top = Location(display, 1, 1)
    if tree is None:
        tree = YMap()
        tree.location, tree.key_locations, tree.value_locations = top, {}, {}
    if not isinstance(tree, YMap):
        raise SpecError(
            "a spec file is a mapping with 'assets:' (and optionally brand, defaults, vars)",
            getattr(tree, "location", top),
            "start the file with 'assets:' and indent the list of assets under it",
        )
    errors: list[SpecError] = []
    for key in tree:
        if key not in SPEC_KEYS:
            errors.append(
                SpecError(
                    f"unknown key '{key}'",
                    tree.key_locations[key],
                    did_you_mean(key, SPEC_KEYS) or "allowed keys: " + ", ".join(sorted(SPEC_KEYS)),
                )
            )
    raise_collected(errors)
    brand, brand_dir, brand_file = load_brand(tree, path, root, display)
    defaults = _load_defaults(tree, display)
    variables = _load_vars(tree, display)
    assets = _asset_trees(tree, display)
    sheets = _load_sheets(tree)
    name = collection_name(path, specs_dir)
    unsafe = next((ch for ch in name if unicodedata.category(ch) in UNPRINTABLE), None)
    if unsafe is not None:
        # The name becomes job ids, output folders and log lines: a newline or an ANSI
        # escape in it could forge a "failed" line in a CI log.
        raise SpecError(
            f"the path of this spec file has the control character {unsafe!r}, and the "
            f"path names the collection ('{printable(name)}')",
            Location(display),
            "rename the file (and its folders) with letters, digits, '-', '_' and '.'",
        )
    if any(part in (".", "..") for part in name.split("/")):
        # `specs/..yaml` would be the collection "." and write to the output root.
        raise SpecError(
            f"the file name {path.name!r} gives no collection name",
            Location(display),
            "name spec files after their collection, e.g. specs/icons.yaml",
        )
    return Collection(
        name=name,
        file=display,
        path=path,
        brand=brand,
        brand_dir=brand_dir,
        brand_file=brand_file,
        defaults=defaults,
        vars=variables,
        assets=assets,
        location=tree.location,
        defaults_locations=_defaults_locations(tree),
        defaults_tree=raw_defaults
        if isinstance(raw_defaults := tree.get("defaults"), YMap)
        else None,
        sheets=sheets,
    )


def _load_sheets(tree: YMap) -> tuple[tuple[SheetSpec, YMap], ...]:
    raw = tree.get("sheets")
    if raw is None:
        return ()
    if not isinstance(raw, YSeq):
        raise SpecError(
            "'sheets' is a list of sprite sheets",
            tree.value_locations["sheets"],
            'e.g. sheets: [{id: icons-atlas, assets: ["icon-*"]}]',
        )
    out = []
    seen: dict[str, Location] = {}
    for i, item in enumerate(raw):
        if not isinstance(item, YMap):
            raise SpecError(
                "a sheet is a mapping with 'id' and 'assets' or 'tags'",
                raw.item_locations[i],
                'e.g. - {id: icons-atlas, assets: ["icon-*"]}',
            )
        sheet = validate(SheetSpec, item, item, item.location)
        if sheet.id in seen:
            raise SpecError(
                f"duplicate sheet id '{sheet.id}' (first at line {seen[sheet.id].line})",
                item.location,
                "give each sheet its own id",
            )
        seen[sheet.id] = item.location
        out.append((sheet, item))
    return tuple(out)


def _load_defaults(tree: YMap, display: str) -> AssetDefaults:
    raw = tree.get("defaults")
    if raw is None:
        return AssetDefaults()
    if not isinstance(raw, YMap):
        raise SpecError(
            "'defaults' is a mapping of asset settings",
            tree.value_locations["defaults"],
            "e.g. defaults: {model: gpt-image-2.5-flare, quality: medium, size: 512x512}",
        )
    for key in raw:
        if key in NOT_DEFAULTS:
            raise SpecError(
                f"'{key}' cannot be a default: it says what an asset is, so each asset "
                "sets its own",
                raw.key_locations[key],
                "move it to the assets; defaults take settings such as size, quality, "
                "variants, renditions and tags",
            )
    return validate(AssetDefaults, raw, raw, raw.location)


def _defaults_locations(tree: YMap) -> dict[str, Location]:
    raw = tree.get("defaults")
    return dict(raw.value_locations) if isinstance(raw, YMap) else {}


def _load_vars(tree: YMap, display: str) -> Mapping[str, Any]:
    return read_vars(tree, "'vars'", 'e.g. vars: {style: "flat vector icon"}') or {}


def read_vars(tree: YMap, what: str, example: str) -> YMap | None:
    """The ``vars:`` mapping of ``tree`` (a spec's or an asset's), its names checked; None
    when there is none."""
    raw = tree.get("vars")
    if raw is None:
        return None
    if not isinstance(raw, YMap):
        raise SpecError(
            f"{what} is a mapping of template variables", tree.value_locations["vars"], example
        )
    check_var_names(raw)
    return raw


RESERVED_VARS = frozenset({"brand", "vars", "asset"})
"""Names the template context already uses."""


def check_var_names(raw: YMap) -> None:
    """Every key of a ``vars:`` mapping (a spec's or an asset's) is a usable name."""
    for key in raw:
        if key in RESERVED_VARS or not key.isidentifier():
            raise SpecError(
                f"'{key}' cannot be a template variable name",
                raw.key_locations[key],
                "use letters, digits and '_', and not brand, vars or asset",
            )


def _asset_trees(tree: YMap, display: str) -> tuple[YMap, ...]:
    raw = tree.get("assets")
    if raw is None:
        raise SpecError(
            "a spec file needs an 'assets:' list",
            tree.location,
            "add assets: [{id: hero, prompt: '...'}]",
        )
    if not isinstance(raw, YSeq):
        raise SpecError(
            "'assets' is a list of assets",
            tree.value_locations["assets"],
            "start each asset with '- id: ...'",
        )
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, YMap):
            raise SpecError(
                "an asset is a mapping with at least 'id' and 'prompt' or 'template'",
                raw.item_locations[i],
                "write '- id: hero' and, indented below it, 'prompt: ...'",
            )
        out.append(item)
    return tuple(out)


def select_files(paths: Sequence[Path], specs_dir: Path) -> list[Path]:
    """Expand user-given spec paths (files or folders) into spec files.

    Each must be a spec file, or a folder, inside the specs folder: a path elsewhere
    names no collection.
    """
    out: list[Path] = []
    for p in paths:
        if not p.exists():
            raise SpecError(
                f"no such spec file or folder: {p}", None, f"spec files live under {specs_dir}"
            )
        if not inside(p, specs_dir):
            raise SpecError(
                f"{p} is not in the specs folder", None, f"spec files live under {specs_dir}"
            )
        if p.is_dir():
            out.extend(find_spec_files(p))
        elif p.is_file() and p.suffix in SPEC_SUFFIXES:
            out.append(p)
        else:
            raise SpecError(f"{p} is not a spec file", None, "spec files are .yaml (or .yml) files")
    return out
