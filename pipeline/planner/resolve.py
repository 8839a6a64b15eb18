"""From an asset's YAML tree and one matrix combination to a validated, rendered asset.

Every string value of an asset is a template rendered with the matrix values, ``vars``
and ``brand`` before validation, so ``aspect: "{{ ratio }}"`` works. The prompt renders
last, because it may also use ``asset`` (id, size, aspect, variants) — the final values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import Location, SpecError
from pipeline.planner.matrix import Combo
from pipeline.spec.loader import Collection, read_vars
from pipeline.spec.models import ASSET_KEYS, AssetSpec, BrandKit
from pipeline.spec.validation import validate
from pipeline.spec.yamlsource import YMap, YSeq, locate
from pipeline.templating import TemplateEngine, render_text

UNRENDERED = frozenset({"matrix", "prompt", "vars"})


@dataclass(frozen=True, slots=True)
class ResolvedAsset:
    """One asset after matrix substitution, validation and prompt rendering."""

    collection: Collection
    spec: AssetSpec
    prompt: str
    tree: YMap
    combo: Mapping[str, Any]
    brand: BrandKit | None = None
    """The asset's brand: its own ``brand:`` file, else the spec's."""
    brand_dir: Path | None = None
    """Where the brand's relative paths (its logo) start."""

    @property
    def location(self) -> Location:
        """Where the asset starts in its spec file."""
        return self.tree.location

    def where(self, *path: str | int, key: bool = False) -> Location:
        """The location of a value of this asset: in the asset, else in the spec's
        ``defaults:`` when the value comes from there, else the asset itself."""
        found = locate(self.tree, path, key=key)
        if found is not None:
            return found
        first = path[0] if path else None
        if isinstance(first, str) and first not in self.tree:
            default = self.collection.defaults_locations.get(first)
            if default is not None:
                return default
        return self.tree.location

    @property
    def source(self) -> str:
        """``file:line`` for the manifest."""
        return f"{self.location.file}:{self.location.line}"


def base_context(collection: Collection) -> dict[str, Any]:
    """What every template of a collection sees: brand, vars, and vars flattened.

    A brand field that is not set (``style``, ``voice``, ``logo``) is left out, so a
    template using it fails at its line instead of printing "None" into a paid prompt."""
    ctx: dict[str, Any] = {"vars": dict(collection.vars), **collection.vars}
    if collection.brand is not None:
        ctx["brand"] = collection.brand.model_dump(exclude_none=True)
    return ctx


def _own_vars(tree: YMap, engine: TemplateEngine, ctx: Mapping[str, Any]) -> dict[str, Any]:
    """The asset's ``vars:``, rendered with the spec's vars and the matrix values."""
    raw = read_vars(tree, "an asset's 'vars'", 'e.g. vars: {mood: "triumphant"}')
    if raw is None:
        return {}
    rendered = _render(raw, ["vars"], tree, engine, ctx)
    return dict(rendered) if isinstance(rendered, dict) else {}


def _render(
    value: Any, path: list[str | int], tree: YMap, engine: TemplateEngine, ctx: Mapping[str, Any]
) -> Any:
    if isinstance(value, str):
        origin = locate(tree, path) or tree.location
        return render_text(engine, value, origin, ctx)
    if isinstance(value, YMap):
        return {k: _render(v, [*path, k], tree, engine, ctx) for k, v in value.items()}
    if isinstance(value, YSeq):
        return [_render(v, [*path, i], tree, engine, ctx) for i, v in enumerate(value)]
    return value


BrandReader = Callable[[str, Location], tuple[BrandKit, Path]]
"""Reads an asset's own brand kit file (as written, relative to its spec) once per path."""


def resolve_asset(
    collection: Collection,
    tree: YMap,
    combo: Combo,
    engine: TemplateEngine,
    base: Mapping[str, Any],
    read_brand: BrandReader | None = None,
) -> ResolvedAsset:
    """Render every string of ``tree`` with ``combo``, validate it, then render the prompt.

    Template context, later winning: the spec's ``vars`` and ``brand``, the asset's own
    ``vars`` (rendered with the matrix values), the matrix values."""
    ctx = {**base, **combo} if combo else base
    own = _own_vars(tree, engine, ctx)
    if own:
        ctx = {**base, "vars": {**base.get("vars", {}), **own}, **own, **combo}
    data = {
        key: (value if key in UNRENDERED else _render(value, [key], tree, engine, ctx))
        for key, value in tree.items()
        if key not in ("matrix", "vars")
    }
    data = collection.defaults.fill(data)
    spec = validate(AssetSpec, data, tree, tree.location, known_extra=sorted(ASSET_KEYS))
    brand, brand_dir = collection.brand, collection.brand_dir
    if spec.brand is not None and read_brand is not None:
        brand, brand_dir = read_brand(spec.brand, locate(tree, ["brand"]) or tree.location)
        ctx = {**ctx, "brand": brand.model_dump(exclude_none=True)}
    facts = {
        "id": spec.id,
        "size": spec.size,
        "aspect": spec.aspect,
        "variants": spec.variants,
        "tags": list(spec.tags),
        "collection": collection.name,
    }
    # A value the asset does not have is undefined, not the word "None" in a paid prompt.
    asset_ctx = {**ctx, "asset": {k: v for k, v in facts.items() if v is not None}}
    if spec.template is not None:
        origin = locate(tree, ["template"]) or tree.location
        prompt = engine.file(spec.template, origin).render(asset_ctx)
    else:
        origin = locate(tree, ["prompt"]) or tree.location
        text = spec.prompt or ""
        prompt = render_text(engine, text, origin, asset_ctx)
    prompt = prompt.strip()
    if not prompt:
        raise SpecError(
            "the prompt is empty after rendering", origin, "write what the image should show"
        )
    return ResolvedAsset(
        collection=collection,
        spec=spec,
        prompt=prompt,
        tree=tree,
        combo=combo,
        brand=brand,
        brand_dir=brand_dir,
    )
