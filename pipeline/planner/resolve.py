"""From an asset's YAML tree and one matrix combination to a validated, rendered asset.

Every string value of an asset is a template rendered with the matrix values, ``vars``
and ``brand`` before validation, so ``aspect: "{{ ratio }}"`` works. The prompt renders
last, because it may also use ``asset`` (id, size, aspect, variants) — the final values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.errors import Location, SpecError
from pipeline.planner.matrix import Combo
from pipeline.spec.loader import Collection
from pipeline.spec.models import ASSET_KEYS, AssetSpec
from pipeline.spec.validation import validate
from pipeline.spec.yamlsource import YMap, YSeq, locate
from pipeline.templating import TemplateEngine, render_text

UNRENDERED = frozenset({"matrix", "prompt"})


@dataclass(frozen=True, slots=True)
class ResolvedAsset:
    """One asset after matrix substitution, validation and prompt rendering."""

    collection: Collection
    spec: AssetSpec
    prompt: str
    tree: YMap
    combo: Mapping[str, Any]

    @property
    def location(self) -> Location:
        """Where the asset starts in its spec file."""
        return self.tree.location

    def where(self, *path: str | int, key: bool = False) -> Location:
        """The location of a value of this asset (or the asset itself when unknown)."""
        return locate(self.tree, path, key=key) or self.tree.location

    @property
    def source(self) -> str:
        """``file:line`` for the manifest."""
        return f"{self.location.file}:{self.location.line}"


def base_context(collection: Collection) -> dict[str, Any]:
    """What every template of a collection sees: brand, vars, and vars flattened."""
    ctx: dict[str, Any] = {"vars": dict(collection.vars), **collection.vars}
    if collection.brand is not None:
        ctx["brand"] = collection.brand.model_dump()
    return ctx


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


def resolve_asset(
    collection: Collection,
    tree: YMap,
    combo: Combo,
    engine: TemplateEngine,
    base: Mapping[str, Any],
) -> ResolvedAsset:
    """Render every string of ``tree`` with ``combo``, validate it, then render the prompt."""
    ctx = {**base, **combo} if combo else base
    data = {
        key: (value if key in UNRENDERED else _render(value, [key], tree, engine, ctx))
        for key, value in tree.items()
        if key != "matrix"
    }
    spec = validate(AssetSpec, data, tree, tree.location, known_extra=sorted(ASSET_KEYS))
    asset_ctx = {
        **ctx,
        "asset": {
            "id": spec.id,
            "size": spec.size,
            "aspect": spec.aspect,
            "variants": spec.variants,
            "tags": list(spec.tags),
            "collection": collection.name,
        },
    }
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
    return ResolvedAsset(collection=collection, spec=spec, prompt=prompt, tree=tree, combo=combo)
