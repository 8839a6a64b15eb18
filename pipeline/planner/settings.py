"""Effective generation settings of an asset, checked against its model.

Precedence: asset > spec ``defaults`` > project (``assetpipe.yaml`` / ``--model``) >
built-in. Each check says which model rule failed and what would be right, because a
400 from the API after paying for the rest of the batch is the worst place to learn it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import BaseModel, ValidationError

from pipeline.catalog import Catalog, ModelInfo, ModelPolicy
from pipeline.colors import delta_e_2000, hex_to_rgb, rgb_to_lab
from pipeline.errors import Location, SpecError, SpecErrors, did_you_mean
from pipeline.jobs import PlanWarning
from pipeline.jobs.wire import RequestFormat
from pipeline.planner.resolve import ResolvedAsset
from pipeline.spec.models import MAX_GIF_FRAMES
from pipeline.spec.yamlsource import locate

BUILTIN_QUALITY = "medium"
BUILTIN_BACKGROUND = "auto"
BUILTIN_FORMAT = "png"


@dataclass(frozen=True, slots=True)
class Effective:
    """The settings one asset's requests are made with."""

    model: ModelInfo
    quality: str
    background: str
    format: str
    compression: int | None
    moderation: str | None
    input_fidelity: str | None
    options: Mapping[str, Any] = field(default_factory=dict)
    """The provider's options, validated by its options model (unset fields absent)."""
    complexity: str | None = None
    """``low``, ``medium`` or ``high`` where the spec sets it and the model takes it."""
    frames: int | None = None
    """The frame count of a ``format: gif`` asset (None for other formats)."""
    frame_ms: int | None = None
    """Each GIF frame's duration in ms, when the spec sets it."""
    chroma: ChromaPlan | None = None
    """How a transparent background is made when not (only) by the API; None: natively
    or not asked."""


@dataclass(frozen=True, slots=True)
class ChromaPlan:
    """The chroma-key route of a transparent asset: its ``key`` color, and whether it is
    the request (``now``: the model cannot, or the spec says ``transparency: chroma``) or
    the fallback for when the API refuses ``background: transparent``."""

    key: str
    now: bool

    @property
    def sentence(self) -> str:
        """What the prompt says so the model draws on the key color alone."""
        return (
            f"Isolated on a perfectly flat solid {self.key} background, no shadows, "
            "no gradients, no other use of that color."
        )


KEY_COLORS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("#FF00FF", ("magenta", "pink", "purple", "violet", "fuchsia")),
    ("#00FF00", ("green", "lime", "emerald")),
    ("#0000FF", ("blue", "azure", "navy", "cobalt")),
)
"""The key colors a chroma route may ask for, each with the words a prompt that uses it
would say: saturated, so few subjects carry them."""


def key_color(palette: tuple[str, ...], prompt: str) -> str:
    """The key color for an asset: one its prompt does not name, and of those the
    farthest (CIEDE2000) from the brand's colors, which the subject will carry."""
    words = set(re.findall(r"[a-z]+", prompt.lower()))
    unnamed = [c for c, names in KEY_COLORS if not words & set(names)]
    candidates = unnamed or [c for c, _ in KEY_COLORS]
    labs = []
    for value in palette:
        try:
            labs.append(rgb_to_lab(hex_to_rgb(value)))
        except ValueError:
            continue
    if not labs:
        return candidates[0]

    def distance(color: str) -> float:
        lab = rgb_to_lab(hex_to_rgb(color))
        return min(delta_e_2000(lab, other) for other in labs)

    return max(candidates, key=distance)  # the first of equals: the list's order


@dataclass(frozen=True, slots=True)
class ProviderRules:
    """What the chosen provider says about planning: its name (for messages), its model
    table, how a spec's model name is read, and its request wording and options."""

    name: str
    catalog: Catalog
    model_policy: ModelPolicy
    request_format: RequestFormat


def effective_settings(
    asset: ResolvedAsset,
    provider: ProviderRules,
    project_model: str | None,
    today: dt.date,
    warnings: list[PlanWarning],
) -> Effective:
    """Merge and check the settings of one asset."""
    catalog, model_policy = provider.catalog, provider.model_policy
    spec, defaults = asset.base, asset.collection.defaults

    def pick(name: str) -> object:
        value = getattr(spec, name)
        return value if value is not None else getattr(defaults, name)

    def where(name: str) -> Location:
        """Where the value in effect is written: the asset, else the spec's defaults."""
        if name in asset.tree:
            return asset.where(name)
        return asset.collection.defaults_locations.get(name, asset.location)

    model_name = pick("model")
    origin = ""
    if model_name is None:
        model_name = project_model or catalog.default_model
        origin = (
            " (the project model, from assetpipe.yaml, ASSETPIPE_MODEL or --model)"
            if project_model
            else " (the built-in default model)"
        )
    # A project-wide model is not written in this spec: its errors and warnings carry no
    # location (the message names the origin), so they are reported once, not per asset.
    model_where = None if origin else where("model")
    model = _model(str(model_name), catalog, model_policy, today, model_where, warnings, origin)
    quality = str(pick("quality") or _default_quality(model))
    background = str(pick("background") or BUILTIN_BACKGROUND)
    fmt = str(pick("format") or BUILTIN_FORMAT)
    compression = pick("compression")
    moderation = pick("moderation")
    fidelity = pick("input_fidelity")
    complexity = pick("complexity")

    if model.qualities and quality not in model.qualities:
        raise SpecError(
            f"{model.name} does not take quality '{quality}'",
            where("quality"),
            _quality_hint(quality, model, catalog),
        )
    route = str(pick("transparency") or "auto")
    chroma: ChromaPlan | None = None
    if background == "transparent" and route != "native":
        palette = tuple(asset.brand.colors.values()) if asset.brand else ()
        now = route == "chroma" or model.transparency == "no"
        chroma = ChromaPlan(key_color(palette, asset.prompt), now)
        if now and route == "auto":
            warnings.append(
                PlanWarning(
                    f"{model.name} cannot make transparent backgrounds: each image is asked "
                    "for on a flat key color, which is keyed out here (set transparency: "
                    "chroma to say so, or native to refuse)",
                    where("background"),
                )
            )
    if background == "transparent":
        if model.transparency == "no" and route == "native":
            raise SpecError(
                f"{model.name} cannot make transparent backgrounds",
                where("transparency"),
                f"models that can: {capable(catalog, 'transparency', today)}; or "
                "transparency: chroma (a flat key color keyed out here)",
            )
        if fmt not in ("png", "webp"):
            # Point at whichever of the two the asset itself sets; else at the defaults.
            at = (
                "background"
                if "background" in asset.tree and "format" not in asset.tree
                else "format"
            )
            raise SpecError(
                f"a transparent background needs format png or webp, not {fmt}",
                where(at),
                "set format: png (or webp), or background: opaque",
            )
        if model.transparency == "preview" and not (chroma and chroma.now):
            warnings.append(
                PlanWarning(
                    f"transparent backgrounds are in preview on {model.name}; the alpha channel "
                    "of each result is checked",
                    where("background"),
                )
            )
    _check_capabilities(asset, model, catalog, today, fmt, complexity is not None, where)
    frames, frame_ms = _animation(asset, fmt, pick, where)
    if compression is not None and fmt == "png":
        raise SpecError(
            "'compression' applies to webp and jpeg only",
            where("compression"),
            "remove it, or set format: webp or jpeg",
        )
    if fidelity is not None:
        if not spec.is_edit:
            raise SpecError(
                "'input_fidelity' applies to edits only",
                where("input_fidelity"),
                "remove it, or add 'edit:' with input images",
            )
        if fidelity not in model.input_fidelity:
            allowed = ", ".join(model.input_fidelity)
            raise SpecError(
                f"{model.name} does not take input_fidelity '{fidelity}'",
                where("input_fidelity"),
                f"use one of {allowed}" if allowed else "remove it; this model has no such option",
            )
    return Effective(
        model=model,
        quality=quality,
        background=background,
        format=fmt,
        compression=int(compression) if isinstance(compression, int) else None,
        moderation=str(moderation) if moderation else None,
        input_fidelity=str(fidelity) if fidelity else None,
        options=provider_options(asset, provider),
        complexity=str(complexity) if complexity else None,
        frames=frames,
        frame_ms=frame_ms,
        chroma=chroma,
    )


GIF_FRAMES = 9
"""A GIF's frame count when the spec gives none: the API's own default, said explicitly
so the plan knows how many frame files there are."""


def _animation(
    asset: ResolvedAsset,
    fmt: str,
    pick: Callable[[str], object],
    where: Callable[[str], Location],
) -> tuple[int | None, int | None]:
    """``frames`` and ``frame_ms`` of a GIF asset; refused on any other format, and the
    settings a GIF or an SVG cannot have (``compression``, ``ops:``, a GIF's mask) too."""
    frames, frame_ms = pick("frames"), pick("frame_ms")
    if fmt != "gif":
        for name, value in (("frames", frames), ("frame_ms", frame_ms)):
            if value is not None:
                raise SpecError(
                    f"'{name}' applies to format: gif only, not {fmt}",
                    where(name),
                    f"remove it, or set format: gif (an animation of 2-{MAX_GIF_FRAMES} frames)",
                )
    if fmt in ("svg", "gif"):
        if pick("compression") is not None:
            raise SpecError(
                f"'compression' does not apply to format {fmt}",
                where("compression"),
                "remove it",
            )
        if asset.base.ops:  # the spec's defaults are filled in already
            raise SpecError(
                f"image operations ('ops:') need a raster format, not {fmt}",
                where("ops"),
                "remove ops:, or use them on a png rendition",
            )
        edit = asset.base.edit
        if fmt == "gif" and edit is not None and edit.mask is not None:
            raise SpecError(
                "a GIF cannot be made with a mask",
                asset.where("edit", "mask"),
                "remove the mask, or choose format png",
            )
    if fmt != "gif":
        return None, None
    count = int(frames) if isinstance(frames, int) else GIF_FRAMES
    return count, int(frame_ms) if isinstance(frame_ms, int) else None


def _check_capabilities(
    asset: ResolvedAsset,
    model: ModelInfo,
    catalog: Catalog,
    today: dt.date,
    fmt: str,
    complexity: bool,
    where: Callable[[str], Location],
) -> None:
    """The settings only some models take (an SVG or GIF format, ``complexity``, a
    markup image, more input images than the model reads), each refused here with the
    models that can, before anything is paid for. ``where`` locates a setting in effect
    (the asset's, else its spec's ``defaults:``)."""
    if fmt in ("svg", "gif") and not getattr(model, fmt):
        raise SpecError(
            f"{model.name} cannot make format {fmt}",
            where("format"),
            f"models that can: {capable(catalog, fmt, today)}",
        )
    if complexity and not model.complexity:
        raise SpecError(
            f"{model.name} does not take complexity",
            where("complexity"),
            f"models that can: {capable(catalog, 'complexity', today)}; or remove it",
        )
    spec = asset.base
    count = len(spec.input_images()) if spec.is_edit else 0
    if count > model.max_input_images:
        more = [
            m.name
            for m in catalog.models.values()
            if m.lifecycle_on(today) != "shutdown" and m.max_input_images >= count
        ]
        raise SpecError(
            f"{count} input images; {model.name} takes at most {model.max_input_images}",
            asset.where("edit", "images") if spec.edit is not None else asset.where("reference"),
            f"list at most {model.max_input_images} images (the mask is not one of them); "
            f"models that take {count}: {', '.join(more) or 'none'}",
        )
    edit = spec.edit
    if edit is None or edit.markup is None:
        return
    if not model.markup:
        raise SpecError(
            f"{model.name} does not take a markup image",
            asset.where("edit", "markup"),
            f"models that can: {capable(catalog, 'markup', today)}",
        )
    if edit.mask is not None:
        raise SpecError(
            "an edit takes a mask or a markup image, not both",
            asset.where("edit", "markup"),
            "remove 'mask:' or 'markup:'",
        )


def capable(catalog: Catalog, capability: str, today: dt.date) -> str:
    """The models of ``catalog`` not shut down on ``today`` that have ``capability`` (a
    ``ModelInfo`` field: true, or for ``transparency`` anything but ``no``), for the hint of
    an error that says a model lacks it; a plan-time error names the way out."""
    names = [
        m.name
        for m in catalog.models.values()
        if m.lifecycle_on(today) != "shutdown"
        and getattr(m, capability) not in (False, "no", 0, None)
    ]
    return ", ".join(names) if names else "none in this provider's table"


def _quality_hint(quality: str, model: ModelInfo, catalog: Catalog) -> str:
    """The model's qualities, after a did-you-mean when the word is no model's quality at
    all (a typo); ``xhigh`` on a model without it is not a misspelt ``high``."""
    listed = "use one of " + ", ".join(model.qualities)
    anywhere = {q for m in catalog.models.values() for q in m.qualities}
    guess = None if quality in anywhere else did_you_mean(quality, model.qualities)
    return f"{guess} {listed}" if guess else listed


def _default_quality(model: ModelInfo) -> str:
    """``medium`` where the model has it, else the first quality its table lists (a
    provider's model may name its qualities its own way)."""
    if not model.qualities or BUILTIN_QUALITY in model.qualities:
        return BUILTIN_QUALITY
    return model.qualities[0]


def provider_options(asset: ResolvedAsset, provider: ProviderRules) -> dict[str, Any]:
    """The asset's ``options:`` (over those of ``defaults:``), checked by the provider's
    options model; every mistake is reported at its key, with what the provider takes."""
    given = {**(asset.collection.defaults.options or {}), **(asset.base.options or {})}
    if not given:
        return {}
    model = provider.request_format.options
    if model is None:
        raise SpecError(
            f"provider {provider.name} takes no options",
            asset.where("options"),
            "remove 'options:', or choose a provider that takes these",
        )
    try:
        checked = model.model_validate(given)
    except ValidationError as exc:
        raise SpecErrors(
            [_option_error(asset, provider.name, model, error) for error in exc.errors()]
        ) from None
    return checked.model_dump(mode="json", exclude_unset=True, exclude_none=True)


def _option_error(
    asset: ResolvedAsset, provider: str, model: type[BaseModel], error: Mapping[str, Any]
) -> SpecError:
    """One pydantic error of an option, at its key (or value) in the spec."""
    loc = tuple(error.get("loc", ()))
    name = str(loc[0]) if loc else ""
    known = ", ".join(model.model_fields) or "none"
    unknown = error.get("type") == "extra_forbidden"
    own = asset.base.options or {}
    defaults = asset.collection.defaults_tree
    if name not in own and defaults is not None:  # the value comes from `defaults:`
        where = locate(defaults, ("options", *loc), key=unknown) or asset.where("options")
    else:
        where = asset.where("options", *loc, key=unknown)
    if unknown:
        return SpecError(
            f"unknown option '{name}' for provider {provider}",
            where,
            did_you_mean(name, model.model_fields) or f"{provider} takes: {known}",
        )
    return SpecError(
        f"option '{name}': {error.get('msg', 'is not valid')}",
        where,
        f"see the {provider} provider's options ({known})",
    )


def _model(
    name: str,
    catalog: Catalog,
    model_policy: ModelPolicy,
    today: dt.date,
    where: Location | None,
    warnings: list[PlanWarning],
    origin: str = "",
) -> ModelInfo:
    """Look a model up and check its lifecycle on ``today``; ``origin`` says where the name
    came from when no spec names it."""
    info = catalog.get(name)
    if info is None and model_policy == "deployment":
        # On Azure `model` is a deployment name; plan it with the default model's rules.
        base = catalog.models[catalog.default_model]
        warnings.append(
            PlanWarning(
                f"'{name}' is not a model assetpipe knows; here it is taken as a deployment "
                f"of {base.name} (its sizes, qualities and prices)",
                where,
            )
        )
        return replace(base, name=name)
    if info is None:
        hint = did_you_mean(name, catalog.models) or (
            "current models: "
            + ", ".join(n for n, m in catalog.models.items() if m.lifecycle_on(today) == "active")
        )
        raise SpecError(f"unknown model '{name}'{origin}", where, hint)
    status = info.lifecycle_on(today)
    if status == "shutdown":
        when = info.shutdown.isoformat() if info.shutdown else "an earlier date"
        raise SpecError(
            f"model '{name}' was shut down on {when}{origin}",
            where,
            f"use {info.replacement} instead" if info.replacement else None,
        )
    if status == "deprecated" and info.shutdown:
        warnings.append(
            PlanWarning(
                f"model '{name}'{origin} is deprecated and shuts down on "
                f"{info.shutdown.isoformat()}; move to {info.replacement}",
                where,
            )
        )
    return info
