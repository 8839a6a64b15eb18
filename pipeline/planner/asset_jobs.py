"""Planning, stage three: the jobs of one asset, an API job per variant and its renditions.

This is where an asset's settings become what is paid for (the request parameters, the
estimated cost and, for a job that reads no other job's output, its cache key) and where
the model's limits on prompt length, input images and masks are checked, so a spec the
API would refuse fails here instead of after a paid call. Sprite sheets, which pack many
assets, are built in :mod:`pipeline.planner.sheets`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pipeline.catalog import ModelInfo
from pipeline.errors import Location, SpecError
from pipeline.jobs import (
    ApiJob,
    InputRef,
    Job,
    PinnedJob,
    PlanWarning,
    RenditionJob,
    RenditionOp,
    api_cache_key,
    job_id,
    output_path,
    pick_cache_key,
)
from pipeline.jobs.api_keys import ApiKeys, api_key
from pipeline.jobs.job import ChromaRoute, OpCall
from pipeline.jobs.mold import Mold
from pipeline.jobs.wire import CannotWord, RequestSettings, WireRequest
from pipeline.ops import OpContext, plan_ops
from pipeline.ops.chroma_key import chroma_call
from pipeline.planner.inputs import MAX_DELIVERED_SIDE, InputResolver, parsed
from pipeline.planner.resolve import ResolvedAsset
from pipeline.planner.settings import Effective, ProviderRules
from pipeline.sizes import SizePlan, parse_size
from pipeline.spec.lock import Pick
from pipeline.spec.models import FileInput

MAX_RENDITION_CROP = 0.5
"""A ``cover`` rendition that crops away more of its asset is a warning: a social size cut
from the other orientation keeps only a strip of the picture."""


@dataclass(frozen=True, slots=True)
class _Shared:
    """What the jobs of one asset make of its settings and size alone: the same for
    every matrix combination of one shape (see ``ResolvedAsset.shape``)."""

    wire: WireRequest
    keyed: WireRequest | None
    ops: tuple[OpCall, ...]
    operated: tuple[int, int]
    estimates: dict[int, float]
    """The estimated cost by prompt length (in characters), filled as lengths come."""
    mold: Mold[ApiJob]
    """Makes the shape's API jobs from what differs between them (:data:`API_VARYING`)."""
    keys: ApiKeys
    """The cache keys of the shape's requests that read no image, by prompt and variant."""


API_VARYING = (
    "id",
    "asset",
    "variant",
    "prompt",
    "output_path",
    "estimated_cost_usd",
    "cache_key",
    "fallback",
)
"""The fields of an asset's API jobs that differ between the combinations of one shape
(and its variants); the others are the shape's, or an edit's inputs."""


class JobShapes:
    """Per plan: the :class:`_Shared` part of each shape's jobs, worked out once.

    Keyed by the ids of the shape's spec, its settings and its size, which live as long
    as the plan being made (the planner holds them), so an id is never reused meanwhile.
    Edits are never shared: their inputs are resolved per asset."""

    def __init__(self) -> None:
        self._known: dict[tuple[int, int, int], _Shared] = {}

    def get(self, asset: ResolvedAsset, eff: Effective, size: SizePlan) -> _Shared | None:
        if asset.shape is None:
            return None
        return self._known.get((id(asset.shape), id(eff), id(size)))

    def keep(self, asset: ResolvedAsset, eff: Effective, size: SizePlan, shared: _Shared) -> None:
        shape = asset.base
        self._known[(id(shape), id(eff), id(size))] = shared


def asset_jobs(
    asset: ResolvedAsset,
    eff: Effective,
    inputs: InputResolver,
    provider: ProviderRules,
    pick: Pick | None = None,
    shapes: JobShapes | None = None,
) -> list[Job]:
    """Each variant's API job (generate or edit) followed by its renditions; for a picked
    asset, every variant numbered (``#k``, ``.vK``) and the approved image at the asset's
    own id and path, with the renditions made from it. ``shapes`` (one per plan) keeps
    what the matrix combinations of one shape share, so it is worked out once."""
    spec, coll = asset.base, asset.collection
    size = inputs.size((coll.name, asset.id))
    model = eff.model
    keyed_prompt = _keyed_prompt(asset, eff)
    shared = None if spec.is_edit or shapes is None else shapes.get(asset, eff, size)
    fresh = shared is None
    images: tuple[InputRef, ...] = ()
    mask = markup = None
    if shared is None:
        images, mask, markup = _edit_inputs(asset, inputs, model)
        shared = _shared(asset, eff, size, provider)
        if shapes is not None and not spec.is_edit:
            shapes.keep(asset, eff, size, shared)
    keyed = shared.keyed
    estimate = _estimate(shared, eff, size, len(asset.prompt), len(images))
    depends = _depends(images, mask)
    asset_ops = shared.ops
    fallback = None
    if eff.chroma and keyed is not None:
        fallback = ChromaRoute(
            eff.chroma.key, keyed_prompt, keyed.params, (chroma_call(eff.chroma.key), *asset_ops)
        )
    on_chroma = fallback is not None and eff.chroma is not None and eff.chroma.now
    jobs: list[Job] = []
    numbered = pick is not None
    variants: list[ApiJob] = []
    mold = _with_inputs(shared.mold, depends, images, mask, markup)
    for k in range(1, inputs.variants((coll.name, asset.id)) + 1):
        # A job that reads no other job's image has its key now, from the request it
        # makes (computed before the job, so the job is made once).
        key = None
        if not depends and not on_chroma:
            key = _request_key(shared, provider, model.name, asset.prompt, k, images, mask, markup)
        job = mold.make(
            job_id(coll.name, asset.id, k, numbered=numbered),
            asset.id,
            k,
            asset.prompt,
            output_path(coll.name, asset.id, k, None, eff.format, numbered=numbered),
            estimate,
            key,
            fallback,
        )
        if on_chroma:
            job = job.on_chroma()
            if not depends:
                shas = [i.sha256 or "" for i in images]
                job = _with_key(job, shas, mask.sha256 if mask else None)
        variants.append(job)
        jobs.append(job)
        if pick is None:
            if spec.renditions:
                jobs.extend(_renditions(asset, job, eff))
            if eff.frames:
                jobs.extend(frame_jobs(job, eff.frames))
    if pick is not None:
        pinned = _pinned(asset, pick, variants, size.delivered)
        jobs.append(pinned)
        jobs.extend(_renditions(asset, pinned, eff))
        jobs.extend(frame_jobs(pinned, eff.frames if pinned.format == "gif" else None))
    if fresh:  # a shape's warnings once: the later ones would only repeat them
        inputs.warnings.extend(_crop_warnings(asset, shared.operated))
    return jobs


def _request_key(
    shared: _Shared,
    provider: ProviderRules,
    model: str,
    prompt: str,
    variant: int,
    images: tuple[InputRef, ...],
    mask: InputRef | None,
    markup: InputRef | None,
) -> str:
    """The cache key of the request of a job that reads no other job's image: from the
    shape's keys when it reads no image at all, else from its project files' sha256."""
    if not images and mask is None and markup is None:
        return shared.keys(prompt, variant)
    wire = shared.wire
    return api_key(
        provider.name,
        wire.endpoint,
        model,
        prompt,
        wire.params,
        [i.sha256 or "" for i in images],
        mask.sha256 if mask else None,
        variant,
        markup.sha256 if markup is not None else None,
    )


def _with_inputs(
    mold: Mold[ApiJob],
    depends: tuple[str, ...],
    images: tuple[InputRef, ...],
    mask: InputRef | None,
    markup: InputRef | None,
) -> Mold[ApiJob]:
    """The shape's mold, or for an edit one that also gives its jobs its inputs."""
    if not images and mask is None and markup is None:
        return mold
    return mold.but(depends_on=depends, inputs=images, mask=mask, markup=markup)


def _keyed_prompt(asset: ResolvedAsset, eff: Effective) -> str:
    """The prompt as sent on the chroma route (with the key color sentence), refused when
    it is longer than the model takes."""
    model = eff.model
    keyed_prompt = f"{asset.prompt} {eff.chroma.sentence}" if eff.chroma else asset.prompt
    if len(keyed_prompt) > model.max_prompt_chars:
        raise SpecError(
            f"the rendered prompt has {len(keyed_prompt):,} characters"
            f"{' with its key color sentence' if eff.chroma else ''}; "
            f"{model.name} takes at most {model.max_prompt_chars:,}",
            asset.where("template" if asset.base.template else "prompt"),
            "shorten the prompt or the values it includes",
        )
    return keyed_prompt


def _estimate(
    shared: _Shared, eff: Effective, size: SizePlan, prompt_chars: int, images: int
) -> float:
    """The API price even on the preview provider: a dry run should show what the real
    build would cost (the runner charges preview jobs nothing). Without input images it
    depends on the prompt's length alone, once the shape is known."""
    estimate = shared.estimates.get(prompt_chars)
    if estimate is None or images:
        rw, rh = size.requested
        estimate = eff.model.estimate_cost(eff.quality, rw, rh, prompt_chars, images)
        if not images:
            shared.estimates[prompt_chars] = estimate
    return estimate


def _depends(images: tuple[InputRef, ...], mask: InputRef | None) -> tuple[str, ...]:
    """The jobs whose images an edit reads, each once."""
    if not images and mask is None:
        return ()
    refs = (*images, *((mask,) if mask else ()))
    return tuple(dict.fromkeys(r.job for r in refs if r.job is not None))


def _shared(
    asset: ResolvedAsset, eff: Effective, size: SizePlan, provider: ProviderRules
) -> _Shared:
    """The part of an asset's jobs that its settings and size decide."""
    spec = asset.base
    try:
        wire = provider.request_format.wire(_request_settings(eff, size, spec.is_edit))
        keyed = (
            provider.request_format.wire(_request_settings(eff, size, spec.is_edit, "opaque"))
            if eff.chroma
            else None
        )
    except CannotWord as exc:
        raise SpecError(
            f"provider {provider.name} cannot make this: {exc.message}", asset.location, exc.hint
        ) from None
    palette = tuple(asset.brand.colors.values()) if asset.brand else ()
    asset_ops, operated = _ops(asset, spec.ops, size.delivered, "ops")
    mold = Mold(
        ApiJob,
        API_VARYING,
        {
            "kind": "edit" if spec.is_edit else "generate",
            "collection": asset.collection.name,
            "model": eff.model.name,
            "provider": provider.name,
            "endpoint": wire.endpoint,
            "params": wire.params,
            "size": size.delivered,
            "requested_size": size.requested,
            "source": asset.source,  # one string for all the shape's jobs
            "palette": palette,
            "tags": tuple(spec.tags),
            "keep_original": spec.keep_original,
            "ops": asset_ops,
        },
    )
    keys = ApiKeys(provider.name, wire.endpoint, eff.model.name, wire.params)
    return _Shared(wire, keyed, asset_ops, operated, {}, mold, keys)


def _ops(
    asset: ResolvedAsset,
    entries: Sequence[Mapping[str, Any]],
    size: tuple[int, int],
    *path: str | int,
) -> tuple[tuple[OpCall, ...], tuple[int, int]]:
    """The image operations of an ``ops:`` list at ``path`` (the asset's, or its spec's
    ``defaults:``) for an image of ``size``, and the size they make."""
    if not entries:
        return (), size
    context = OpContext(tuple(asset.brand.colors.values()) if asset.brand else ())
    if isinstance(path[0], str) and path[0] in asset.tree:
        return plan_ops(entries, size, asset.tree, path, asset.where(*path), context)
    where = asset.collection.defaults_locations.get(str(path[0]), asset.location)
    return plan_ops(entries, size, None, path, where, context)


def _crop_warnings(asset: ResolvedAsset, delivered: tuple[int, int]) -> list[PlanWarning]:
    """A warning for each ``cover`` rendition that keeps less than half of the asset's
    delivered image, naming the rendition and the share it keeps (like the warning for an
    asset's own size), once per asset rather than once per variant."""
    out = []
    dw, dh = delivered
    for i, r in enumerate(asset.base.renditions):
        wh = parsed(parse_size, r.size)
        if r.fit != "cover" or wh is None:
            continue
        kept = min((dw / dh) / (wh[0] / wh[1]), (wh[0] / wh[1]) / (dw / dh))
        if kept < 1 - MAX_RENDITION_CROP:
            out.append(
                PlanWarning(
                    f"rendition {wh[0]}x{wh[1]} keeps {kept:.0%} of the {dw}x{dh} image "
                    f"({1 - kept:.0%} is cropped away): fit: contain keeps all of it, or "
                    "give the asset a shape closer to the rendition's",
                    asset.where("renditions", i, "size"),
                )
            )
    return out


def _pinned(
    asset: ResolvedAsset, pick: Pick, variants: Sequence[ApiJob], size: tuple[int, int]
) -> PinnedJob:
    """The approved image of a picked asset, at the asset's own id and path."""
    coll, spec = asset.collection, asset.base
    chosen = next((v for v in variants if v.variant == pick.variant), None)
    first = variants[0]
    return PinnedJob(
        id=f"{coll.name}/{asset.id}",
        collection=coll.name,
        asset=asset.id,
        variant=pick.variant,
        output_path=output_path(coll.name, asset.id, 1, None, pick.format),
        source=asset.source,
        size=size,
        cache_key=pick_cache_key(pick.sha256),
        tags=tuple(spec.tags),
        approved=pick.sha256,
        approved_key=pick.cache_key,
        picked=pick.variant,
        picked_job=f"{coll.name}/{asset.id}#{pick.variant}",
        picked_path=chosen.output_path if chosen is not None else None,
        format=pick.format,
        model=first.model,
        provider=first.provider,
        prompt=first.prompt,
        params=first.params,
        palette=first.palette,
    )


def _renditions(
    asset: ResolvedAsset, source: ApiJob | PinnedJob, eff: Effective
) -> list[RenditionJob]:
    out: list[RenditionJob] = []
    seen: set[str] = set()
    for i, r in enumerate(asset.base.renditions):
        wh = parsed(parse_size, r.size)
        if wh is None or max(wh) > MAX_DELIVERED_SIDE:
            raise SpecError(
                f"rendition size '{r.size}' is not a pixel size",
                asset.where("renditions", i, "size"),
                "write WxH, e.g. 256x256",
            )
        fmt = r.format or eff.format
        if fmt == "gif" or (fmt == "svg" and eff.format != "svg"):
            raise SpecError(
                f"a rendition of a {eff.format} asset cannot be {fmt}",
                asset.where("renditions", i, "format" if r.format else "size"),
                "give the rendition format png, webp or jpeg"
                + (" (a GIF's frames are delivered as PNGs already)" if fmt == "gif" else ""),
            )
        if fmt == "svg" and r.ops:
            raise SpecError(
                "image operations need a raster rendition, not svg",
                asset.where("renditions", i, "ops"),
                "remove ops:, or give the rendition format png",
            )
        calls, made = _ops(asset, r.ops, wh, "renditions", i, "ops")
        op = RenditionOp(
            width=wh[0], height=wh[1], fit=r.fit, format=fmt, compression=r.compression, ops=calls
        )
        variant = 1 if source.kind == "pick" else source.variant  # the asset's own renditions
        path = output_path(source.collection, source.asset, variant, wh, fmt)
        if path in seen or path == source.output_path:
            raise SpecError(
                f"rendition {r.size} {fmt} is listed twice",
                asset.where("renditions", i),
                "keep one of them",
            )
        seen.add(path)
        out.append(
            RenditionJob(
                id=f"{source.id}@{wh[0]}x{wh[1]}" + ("" if fmt == eff.format else f".{fmt}"),
                collection=source.collection,
                asset=source.asset,
                variant=source.variant,
                model=source.model,
                provider=source.provider,
                prompt=source.prompt,
                size=made,
                output_path=path,
                source=source.source,
                depends_on=(source.id,),
                op=op,
                palette=source.palette,
                tags=source.tags,
            )
        )
    return out


def frame_jobs(source: ApiJob | PinnedJob, frames: int | None) -> list[RenditionJob]:
    """Each frame of a GIF asset's variant as a PNG of its own (``asset.fK.png``, job
    ``id.fK``), checked like any delivered file and packed by sheets that select the
    asset; none for an asset of another format (``frames`` None)."""
    if not frames:
        return []
    stem = source.output_path.rsplit(".", 1)[0]
    return [
        RenditionJob(
            id=f"{source.id}.f{k}",
            collection=source.collection,
            asset=source.asset,
            variant=source.variant,
            model=source.model,
            provider=source.provider,
            prompt=source.prompt,
            size=source.size,
            output_path=f"{stem}.f{k}.png",
            source=source.source,
            depends_on=(source.id,),
            op=RenditionOp(*source.size, fit="cover", format="png", compression=None, frame=k),
            palette=source.palette,
            tags=source.tags,
        )
        for k in range(1, frames + 1)
    ]


def _request_settings(
    eff: Effective, size: SizePlan, is_edit: bool, background: str | None = None
) -> RequestSettings:
    """The asset's settings in assetpipe's terms, for the provider to word (with another
    ``background`` for the chroma route, which asks for an opaque one)."""
    w, h = size.requested
    return RequestSettings(
        kind="edit" if is_edit else "generate",
        width=w,
        height=h,
        quality=eff.quality,
        background=background or eff.background,
        format=eff.format,
        compression=eff.compression,
        moderation=eff.moderation,
        input_fidelity=eff.input_fidelity,
        options=eff.options,
        complexity=eff.complexity,
        frames=eff.frames,
        frame_ms=eff.frame_ms,
    )


def _with_key(job: ApiJob, input_shas: Sequence[str], mask_sha: str | None) -> ApiJob:
    return replace(job, cache_key=api_cache_key(job, input_shas, mask_sha))


def _edit_inputs(
    asset: ResolvedAsset, inputs: InputResolver, model: ModelInfo
) -> tuple[tuple[InputRef, ...], InputRef | None, InputRef | None]:
    """An edit's input images, mask and markup, each checked as the API would check it
    (how many images a model takes, and whether it takes a markup, are checked with the
    asset's settings, which name the models that can)."""
    spec = asset.base
    if not spec.is_edit:
        return (), None, None
    images = tuple(inputs.input(asset, ref, path) for ref, path in spec.input_images())
    mask = markup = None
    if spec.edit is not None and spec.edit.mask is not None:
        mask = inputs.input(asset, spec.edit.mask, ("edit", "mask"))
        first = images[0]
        if (mask.width, mask.height) != (first.width, first.height):
            raise SpecError(
                f"the mask is {mask.width}x{mask.height} but the first image is "
                f"{first.width}x{first.height}",
                asset.where("edit", "mask"),
                "a mask must have the same size as the first input image",
            )
        _check_mask(mask, model, asset.where("edit", "mask"))
    if spec.edit is not None and spec.edit.markup is not None:
        markup = _markup(asset, inputs, spec.edit.markup, images[0], model)
    return images, mask, markup


def _markup(
    asset: ResolvedAsset,
    inputs: InputResolver,
    ref: FileInput,
    first: InputRef,
    model: ModelInfo,
) -> InputRef:
    """The ``edit.markup`` file, checked as the API would: a PNG of the first image's
    size, under the mask limit."""
    where = asset.where("edit", "markup")
    markup = inputs.input(asset, ref, ("edit", "markup"))
    if (markup.width, markup.height) != (first.width, first.height):
        raise SpecError(
            f"the markup is {markup.width}x{markup.height} but the first image is "
            f"{first.width}x{first.height}",
            where,
            "draw the markup over a copy of the first input image, at its size",
        )
    if markup.format != "png":
        raise SpecError(
            f"the markup is {markup.format or 'not a PNG'}; a markup image is a PNG",
            where,
            "save it as a PNG, transparent where it adds nothing",
        )
    if markup.bytes is not None and markup.bytes > model.max_mask_bytes:
        raise SpecError(
            f"the markup is {markup.bytes:,} bytes; {model.name} takes it under "
            f"{model.max_mask_bytes:,}",
            where,
            "save it as a smaller PNG",
        )
    return markup


def _check_mask(mask: InputRef, model: ModelInfo, where: Location) -> None:
    """The API takes a PNG mask under the model's size limit; say so before paying."""
    if mask.format != "png":
        raise SpecError(
            f"the mask is {mask.format or 'not a PNG'}; a mask is a PNG",
            where,
            "save it as PNG, with alpha 0 where the image may change",
        )
    if mask.bytes is not None and mask.bytes > model.max_mask_bytes:
        raise SpecError(
            f"the mask is {mask.bytes:,} bytes; {model.name} takes masks under "
            f"{model.max_mask_bytes:,}",
            where,
            "a mask needs only its alpha channel: save it as a small PNG (e.g. 1-bit alpha)",
        )
