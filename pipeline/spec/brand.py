"""Brand kits: a spec's ``brand:`` as a path to a kit file or as an inline mapping.

A kit is read only from inside the project, and its logo must stay inside it too: a
brand file is a path like any other, and checked when the kit loads rather than only when
an edit uses ``{brand: logo}``.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import Location, SpecError
from pipeline.spec.models import BrandKit
from pipeline.spec.paths import display_path, inside
from pipeline.spec.validation import validate
from pipeline.spec.yamlsource import YMap, load_yaml


def load_brand(
    tree: YMap, path: Path, root: Path, display: str
) -> tuple[BrandKit | None, Path, str]:
    """The brand kit of a spec (``brand:`` as a file path or an inline mapping), the folder
    its relative paths start from, and how to name it in messages."""
    raw = tree.get("brand")
    if raw is None:
        return None, path.parent, display
    where = tree.value_locations["brand"]
    if isinstance(raw, str):
        return read_brand_file(path.parent / raw, raw, root, where)
    if isinstance(raw, YMap):
        kit = validate(BrandKit, raw, raw, where)
        check_logo(kit, raw, path.parent, root)
        return kit, path.parent, display
    raise SpecError(
        "'brand' is a path to a brand kit file or an inline mapping",
        where,
        "e.g. brand: ../brands/acme.yaml",
    )


def read_brand_file(
    brand_path: Path, written: str, root: Path, where: Location
) -> tuple[BrandKit, Path, str]:
    """A brand kit file named ``written`` at ``where``: the kit, its folder, its name in
    messages. Used for a spec's ``brand:`` and for an asset's own (per-brand campaigns)."""
    if not inside(brand_path, root):
        raise SpecError(
            f"brand file '{written}' is outside the project folder",
            where,
            "keep brand kits inside the project, e.g. brands/acme.yaml",
        )
    if not brand_path.is_file():
        raise SpecError(
            f"brand file '{written}' not found (looked at {display_path(brand_path, root)})",
            where,
            "paths are relative to the spec file; e.g. ../brands/acme.yaml",
        )
    brand_display = display_path(brand_path, root)
    brand_tree = load_yaml(brand_path, brand_display)
    if not isinstance(brand_tree, YMap):
        raise SpecError(
            "a brand kit is a mapping with name, colors, style, voice, logo",
            getattr(brand_tree, "location", Location(brand_display, 1, 1)),
            'e.g. name: Acme, then colors: {primary: "#E4572E"}',
        )
    kit = validate(BrandKit, brand_tree, brand_tree, brand_tree.location)
    check_logo(kit, brand_tree, brand_path.parent, root)
    return kit, brand_path.parent, brand_display


def check_logo(kit: BrandKit, tree: YMap, brand_dir: Path, root: Path) -> None:
    """A brand's logo is a path like any other: it must stay inside the project, checked
    when the kit loads rather than only when an edit uses ``{brand: logo}``."""
    if kit.logo is not None and not inside(brand_dir / kit.logo, root):
        raise SpecError(
            f"brand logo '{kit.logo}' is outside the project folder",
            tree.value_locations.get("logo", tree.location),
            "keep the logo inside the project, e.g. brands/acme-logo.png",
        )
