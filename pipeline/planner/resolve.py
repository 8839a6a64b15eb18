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
from pipeline.jobs.mold import Mold
from pipeline.planner.matrix import Combo
from pipeline.spec.loader import Collection, read_vars
from pipeline.spec.models import (
    ASSET_ID,
    ASSET_KEYS,
    MAX_ID_LENGTH,
    AssetDefaults,
    AssetSpec,
    BrandKit,
)
from pipeline.spec.validation import validate
from pipeline.spec.yamlsource import YMap, YSeq, locate
from pipeline.templating import Prompt, TemplateEngine, is_template, render_text

UNRENDERED = frozenset({"matrix", "prompt", "vars"})


@dataclass(frozen=True, slots=True)
class ResolvedAsset:
    """One asset after matrix substitution, validation and prompt rendering."""

    collection: Collection
    base: AssetSpec
    """The asset's validated spec, but for its id: for a matrix combination whose values
    differ from another's only in ``id``, that other combination's spec itself (its
    ``shape``), which the planner reads for everything but the id; :attr:`id` is this
    asset's own. :attr:`spec` is the spec with this asset's id."""
    id: str
    prompt: str
    tree: YMap
    combo: Mapping[str, Any]
    brand: BrandKit | None = None
    """The asset's brand: its own ``brand:`` file, else the spec's."""
    brand_dir: Path | None = None
    """Where the brand's relative paths (its logo) start."""
    shape: AssetSpec | None = None
    """The spec of the combination this one shares everything but its id with (then
    :attr:`base` is it), for the matrix combinations of one asset whose other values
    render the same: everything the planner derives from the spec but the id and the
    prompt is the same for each of them, so the later stages work it out once per shape,
    and no spec is copied per combination. None: an asset of its own."""

    @property
    def spec(self) -> AssetSpec:
        """The asset's spec, with its own id: :attr:`base` itself, or a copy of it made on
        each call (the planner reads :attr:`base` and :attr:`id` instead)."""
        base = self.base
        return base if base.id == self.id else base.model_copy(update={"id": self.id})

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


class AssetMemo:
    """What stays the same across the matrix combinations of one asset's ``tree``: which
    of its values are templates (the others render to themselves, and so do the values
    ``defaults:`` fills in), each template compiled once, and the last spec validated, so
    that a combination whose rendered values differ from the previous one's only in
    ``id`` copies that spec with its id (checked by the id's own rule) instead of
    validating every value again. Pure memoisation: the spec is the one ``validate``
    would make from the same values."""

    __slots__ = (
        "filled",
        "fixed",
        "has_vars",
        "last_rendered",
        "last_spec",
        "mold",
        "origins",
        "prompts",
        "shape_facts",
        "top",
    )

    def __init__(self, tree: YMap):
        self.fixed: dict[str, Any] = {}
        """Values (as plain data) of the keys with no template anywhere in them."""
        self.origins: dict[tuple[str | int, ...], Location] = {}
        self.prompts: dict[tuple[str, tuple[str | int, ...]], Prompt] = {}
        self.top: dict[str, tuple[str, Prompt | None]] = {}
        """The template of each of the asset's own string values (None: plain text)."""
        self.filled: dict[str, Any] | None = None
        """What ``defaults:`` adds to this asset's values (the same keys every time)."""
        self.last_rendered: dict[str, Any] | None = None
        self.last_spec: AssetSpec | None = None
        self.shape_facts: tuple[AssetSpec, dict[str, Any]] | None = None
        self.has_vars = "vars" in tree
        """Whether the asset has ``vars:`` of its own (rendered per combination)."""
        self.mold: Mold[ResolvedAsset] | None = None
        """Makes this tree's resolved assets (their collection and tree are the same)."""
        for key, value in tree.items():
            if key not in UNRENDERED and not _has_template(value):
                self.fixed[key] = _plain(value)

    def origin(self, tree: YMap, path: list[str | int]) -> Location:
        key = tuple(path)
        found = self.origins.get(key)
        if found is None:
            found = self.origins[key] = locate(tree, path) or tree.location
        return found

    def render(
        self,
        engine: TemplateEngine,
        text: str,
        tree: YMap,
        path: list[str | int],
        ctx: Mapping[str, Any],
    ) -> str:
        """:func:`render_text` of the string at ``path``, its template found once."""
        key = (text, tuple(path))
        prompt = self.prompts.get(key)
        if prompt is None:
            if not is_template(text):
                return text
            prompt = self.prompts[key] = engine.inline(text, self.origin(tree, path))
        return prompt.render(ctx)

    def render_top(
        self, engine: TemplateEngine, key: str, text: str, tree: YMap, ctx: Mapping[str, Any]
    ) -> str:
        """:meth:`render` of the string value of the asset's own ``key``."""
        known = self.top.get(key)
        if known is None or known[0] != text:
            prompt = None
            if is_template(text):
                prompt = engine.inline(text, self.origin(tree, [key]))
            known = self.top[key] = (text, prompt)
        return text if known[1] is None else known[1].render(ctx)

    def fill(self, data: dict[str, Any], defaults: AssetDefaults) -> dict[str, Any]:
        """``defaults.fill(data)``: what it adds depends only on which keys ``data`` has,
        which every combination of the asset shares."""
        if self.filled is None:
            out = defaults.fill(data)
            self.filled = {k: v for k, v in out.items() if k not in data}
            return out
        data.update(self.filled)
        return data

    def spec(
        self, data: dict[str, Any], rendered: dict[str, Any], tree: YMap
    ) -> tuple[AssetSpec, AssetSpec | None]:
        """The validated spec of ``data`` (whose templated values are ``rendered``) but
        perhaps its id, and the shape it shares (then the first is the shape, whose id
        differs: ``data["id"]`` is the asset's, and checked)."""
        last, last_spec = self.last_rendered, self.last_spec
        asset_id = data.get("id")
        if (
            last is not None
            and last_spec is not None
            and "id" in rendered
            and type(asset_id) is str
            and len(asset_id) <= MAX_ID_LENGTH
            and ASSET_ID.fullmatch(asset_id)
            and (len(rendered) == 1 or all(k == "id" or last[k] == v for k, v in rendered.items()))
        ):
            # The same values but the id (every other value is the same object each time,
            # or rendered again to an equal text), and the id passes the id's rule: the
            # spec validation would make is the last one with this id.
            return last_spec, last_spec
        spec = validate(AssetSpec, data, tree, tree.location, known_extra=sorted(ASSET_KEYS))
        self.last_rendered, self.last_spec = rendered, spec
        return spec, None

    def resolved(
        self,
        collection: Collection,
        tree: YMap,
        *varying: object,
    ) -> ResolvedAsset:
        """``ResolvedAsset(collection, tree, ...)`` with the values of :data:`_VARYING`,
        made by one mold per tree."""
        mold = self.mold
        if mold is None:
            mold = self.mold = Mold(
                ResolvedAsset, _VARYING, {"collection": collection, "tree": tree}
            )
        return mold.make(*varying)

    def facts(
        self, spec: AssetSpec, asset_id: str, shape: AssetSpec | None, collection: str
    ) -> dict[str, Any]:
        """What templates see as ``asset``: its values that are set, id first. All but the
        id are the shape's, found once per shape (the tags in a list of their own each
        time: a template may change a list)."""
        known = self.shape_facts
        if shape is None or known is None or known[0] is not shape:
            facts = _facts(spec, asset_id, collection)
            self.shape_facts = (spec, dict(facts))  # a copy: a template may change its own
            return facts
        facts = dict(known[1])
        facts["id"] = asset_id
        if "tags" in facts:
            facts["tags"] = list(spec.tags)
        return facts


_VARYING = ("base", "id", "prompt", "combo", "brand", "brand_dir", "shape")
"""The fields of a :class:`ResolvedAsset` that differ between the combinations of one
asset (its collection and tree do not)."""


def _facts(spec: AssetSpec, asset_id: str, collection: str) -> dict[str, Any]:
    facts = {
        "id": asset_id,
        "size": spec.size,
        "aspect": spec.aspect,
        "variants": spec.variants,
        "tags": list(spec.tags),
        "collection": collection,
    }
    # A value the asset does not have is undefined, not the word "None" in a paid prompt.
    return {k: v for k, v in facts.items() if v is not None}


def _has_template(value: Any) -> bool:
    if isinstance(value, str):
        return is_template(value)
    if isinstance(value, YMap):
        return any(_has_template(v) for v in value.values())
    if isinstance(value, YSeq):
        return any(_has_template(v) for v in value)
    return False


def _plain(value: Any) -> Any:
    """A YAML value as the plain data :func:`_render` makes of it (no template in it)."""
    if isinstance(value, YMap):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, YSeq):
        return [_plain(v) for v in value]
    return value


def resolve_asset(
    collection: Collection,
    tree: YMap,
    combo: Combo,
    engine: TemplateEngine,
    base: Mapping[str, Any],
    read_brand: BrandReader | None = None,
    memo: AssetMemo | None = None,
) -> ResolvedAsset:
    """Render every string of ``tree`` with ``combo``, validate it, then render the prompt.

    Template context, later winning: the spec's ``vars`` and ``brand``, the asset's own
    ``vars`` (rendered with the matrix values), the matrix values. ``memo`` (one per
    ``tree``, kept across its combinations) saves the work that does not depend on them."""
    ctx = {**base, **combo} if combo else base
    own = _own_vars(tree, engine, ctx) if memo is None or memo.has_vars else None
    if own:
        ctx = {**base, "vars": {**base.get("vars", {}), **own}, **own, **combo}
    shape: AssetSpec | None = None
    if memo is None:
        data = {
            key: (value if key in UNRENDERED else _render(value, [key], tree, engine, ctx))
            for key, value in tree.items()
            if key not in ("matrix", "vars")
        }
        data = collection.defaults.fill(data)
        spec = validate(AssetSpec, data, tree, tree.location, known_extra=sorted(ASSET_KEYS))
        asset_id = spec.id
    else:
        spec, shape, asset_id = _memo_spec(collection, tree, engine, ctx, memo)
    brand, brand_dir = collection.brand, collection.brand_dir
    if spec.brand is not None and read_brand is not None:
        brand, brand_dir = read_brand(spec.brand, locate(tree, ["brand"]) or tree.location)
        ctx = {**ctx, "brand": brand.model_dump(exclude_none=True)}
    if memo is None:
        facts = _facts(spec, asset_id, collection.name)
    else:
        facts = memo.facts(spec, asset_id, shape, collection.name)
    asset_ctx: dict[str, Any]
    if isinstance(ctx, dict) and ctx is not base:
        asset_ctx = ctx  # this combination's own dict, which nothing else holds: add to it
        asset_ctx["asset"] = facts
    else:
        asset_ctx = {**ctx, "asset": facts}
    if spec.template is not None:
        origin = locate(tree, ["template"]) or tree.location
        prompt = engine.file(spec.template, origin).render(asset_ctx)
    elif memo is not None:
        origin = None  # found only for the error below (memo.origin): rarely needed
        prompt = memo.render_top(engine, "prompt", spec.prompt or "", tree, asset_ctx)
    else:
        origin = locate(tree, ["prompt"]) or tree.location
        text = spec.prompt or ""
        prompt = render_text(engine, text, origin, asset_ctx)
    prompt = prompt.strip()
    if not prompt:
        if origin is None:
            origin = memo.origin(tree, ["prompt"]) if memo is not None else tree.location
        raise SpecError(
            "the prompt is empty after rendering", origin, "write what the image should show"
        )
    if memo is not None:
        return memo.resolved(
            collection, tree, spec, asset_id, prompt, combo, brand, brand_dir, shape
        )
    return ResolvedAsset(
        collection=collection,
        base=spec,
        id=asset_id,
        prompt=prompt,
        tree=tree,
        combo=combo,
        brand=brand,
        brand_dir=brand_dir,
        shape=shape,
    )


def _memo_spec(
    collection: Collection,
    tree: YMap,
    engine: TemplateEngine,
    ctx: Mapping[str, Any],
    memo: AssetMemo,
) -> tuple[AssetSpec, AssetSpec | None, str]:
    """The spec of one combination rendered with ``memo``, the shape it shares (or None)
    and its id (see :meth:`AssetMemo.spec`)."""
    fixed = memo.fixed
    rendered: dict[str, Any] = {}
    data: dict[str, Any] = {}
    for key, value in tree.items():
        if key in fixed:
            data[key] = fixed[key]
        elif key in UNRENDERED:
            if key not in ("matrix", "vars"):
                data[key] = value
        elif type(value) is str:
            data[key] = rendered[key] = memo.render_top(engine, key, value, tree, ctx)
        else:
            data[key] = rendered[key] = _render_memo(value, [key], tree, engine, ctx, memo)
    data = memo.fill(data, collection.defaults)
    spec, shape = memo.spec(data, rendered, tree)
    return spec, shape, spec.id if shape is None else data["id"]


def _render_memo(
    value: Any,
    path: list[str | int],
    tree: YMap,
    engine: TemplateEngine,
    ctx: Mapping[str, Any],
    memo: AssetMemo,
) -> Any:
    """:func:`_render`, with each string's location found once per asset."""
    if isinstance(value, str):
        return memo.render(engine, value, tree, path, ctx)
    if isinstance(value, YMap):
        return {k: _render_memo(v, [*path, k], tree, engine, ctx, memo) for k, v in value.items()}
    if isinstance(value, YSeq):
        return [_render_memo(v, [*path, i], tree, engine, ctx, memo) for i, v in enumerate(value)]
    return value
