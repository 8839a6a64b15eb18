"""Effective generation settings of an asset, checked against its model.

Precedence: asset > spec ``defaults`` > project (``assetpipe.yaml`` / ``--model``) >
built-in. Each check says which model rule failed and what would be right, because a
400 from the API after paying for the rest of the batch is the worst place to learn it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from pipeline.catalog import Catalog, ModelInfo, ModelPolicy
from pipeline.errors import Location, SpecError, did_you_mean
from pipeline.jobs import PlanWarning
from pipeline.planner.resolve import ResolvedAsset

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


def effective_settings(
    asset: ResolvedAsset,
    catalog: Catalog,
    project_model: str | None,
    model_policy: ModelPolicy,
    today: dt.date,
    warnings: list[PlanWarning],
) -> Effective:
    """Merge and check the settings of one asset."""
    spec, defaults = asset.spec, asset.collection.defaults

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
    quality = str(pick("quality") or BUILTIN_QUALITY)
    background = str(pick("background") or BUILTIN_BACKGROUND)
    fmt = str(pick("format") or BUILTIN_FORMAT)
    compression = pick("compression")
    moderation = pick("moderation")
    fidelity = pick("input_fidelity")

    if model.qualities and quality not in model.qualities:
        raise SpecError(
            f"{model.name} does not take quality '{quality}'",
            where("quality"),
            "use one of " + ", ".join(model.qualities),
        )
    if background == "transparent":
        if model.transparency == "no":
            raise SpecError(
                f"{model.name} cannot make transparent backgrounds",
                where("background"),
                "use gpt-image-2.5-flare or -sunburst",
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
        if model.transparency == "preview":
            warnings.append(
                PlanWarning(
                    f"transparent backgrounds are in preview on {model.name}; the alpha channel "
                    "of each result is checked",
                    where("background"),
                )
            )
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
