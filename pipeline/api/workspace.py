"""A loaded project: settings resolved and specs planned (or the stored plan reused).

What the cache and the output tree say about each job is :mod:`~pipeline.api.status`;
the cache commands are :mod:`~pipeline.api.caches`.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import stat
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.api.judged import read_judged, stale_records, with_judged
from pipeline.api.plancache import KnownPlan, SpecLister, plan_context, reuse_or_plan
from pipeline.api.sealing import user_sealer
from pipeline.catalog import Catalog
from pipeline.errors import UsageError, raise_collected
from pipeline.exports import reserved_paths
from pipeline.exports.collisions import identifier_errors, reserved_path_errors
from pipeline.hashing import sha256_bytes
from pipeline.jobs import Plan, select
from pipeline.jobs.shards import Shard, paid_share, shard_plan, shared_limit
from pipeline.providers import registry
from pipeline.reads import note_read
from pipeline.settings import Settings, echo, resolve_settings
from pipeline.spec.loader import (
    Project,
    collection_name,
    find_spec_files,
    folder_links_leaving,
    load_project,
    select_files,
)
from pipeline.spec.lock import read_lock

if TYPE_CHECKING:
    from pipeline.planner import FileFacts

MAX_INPUT_FILE_BYTES = 50 * 1000 * 1000


@dataclass(frozen=True, slots=True)
class Request:
    """What a command was asked: the project folder, spec paths, flags and selections."""

    project: Path = Path()
    paths: Sequence[Path] = ()
    flags: Mapping[str, Any] | None = None
    only: Sequence[str] = ()
    today: dt.date | None = None
    shard: Shard | None = None
    """``--shard i/n``: only the dependency chains this CI machine owns."""
    picks: bool = True
    """False: plan as if nothing were picked (``assetpipe watch``'s previews, which have
    no approved image to deliver); rerolls in the lock still count."""


@dataclass(frozen=True, slots=True)
class Workspace:
    """A loaded project and the plan of the selected jobs."""

    settings: Settings
    catalog: Catalog
    project: Project | None
    """The parsed specs; None when the plan was reused (nothing was parsed)."""
    plan: Plan
    full_plan: Plan
    plan_digest: str | None = None
    """Names exactly this selection of a stored plan (None: the plan is not stored)."""
    stored_plan: KnownPlan | None = None
    """The plan as a build stores it (:meth:`KnownPlan.keep`, once it holds its folders)."""
    request: Request | None = None
    """What the workspace was opened for: the quality gate plans it again after a reroll."""

    def specs(self) -> Project:
        """The parsed specs: :attr:`project`, or parsed now when the plan was reused."""
        if self.project is not None:
            return self.project
        return load_project(self.settings.root, self.settings.specs_dir)


def read_image_facts(path: Path) -> FileFacts:
    """Hash and measure an input image without decoding its pixels.

    Refuses what would hang or swamp a validate: a FIFO or device (its read never ends),
    a file over the API's 50 MB, and a header claiming more pixels than Pillow's
    decompression-bomb limit (Pillow raises its own error type for those, and only
    warns between one and two times the limit).
    """
    # Pillow and the planner load only when a project is planned afresh.
    from PIL import Image, UnidentifiedImageError  # noqa: PLC0415

    from pipeline.planner import FileFacts  # noqa: PLC0415
    from pipeline.postprocess import DECODE_FORMATS  # noqa: PLC0415

    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise ValueError("it is not a regular file")
    size = info.st_size
    if size > MAX_INPUT_FILE_BYTES:
        raise ValueError(f"it is {size:,} bytes; edit inputs must be under 50 MB")
    data = path.read_bytes()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=DECODE_FORMATS) as image:
                fmt = (image.format or "").lower()
                width, height = image.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValueError(
            f"its header claims more than {Image.MAX_IMAGE_PIXELS or 0:,} pixels"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise ValueError("it is not an image Pillow can read") from None
    sha256 = sha256_bytes(data)
    note_read(path, data, sha256)
    return FileFacts(
        sha256=sha256,
        width=width,
        height=height,
        format="jpeg" if fmt == "jpg" else fmt,
        bytes=size,
    )


TODAY_VARIABLE = "ASSETPIPE_TODAY"


def lifecycle_date(environ: Mapping[str, str] | None = None) -> dt.date:
    """The date model lifecycles are judged on: ``ASSETPIPE_TODAY`` (YYYY-MM-DD) or today.

    Pinning it makes a CI run reproducible across a model's shutdown date, and lets a team
    ask ahead of time whether its specs still plan after an announced shutdown.
    """
    text = (os.environ if environ is None else environ).get(TODAY_VARIABLE, "").strip()
    if not text:
        return dt.date.today()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"{TODAY_VARIABLE}={echo(text)} is not a date; write it as YYYY-MM-DD (e.g. 2026-12-01)"
        ) from None


def open_workspace(
    req: Request, *, credentials: bool = True, reuse: bool = False, store_plan: bool = False
) -> Workspace:
    """Load settings and specs and plan them (no network).

    ``credentials=False`` plans a provider's jobs without its key (``validate``, ``plan``,
    ``check``: nothing is sent to the provider). ``reuse`` takes the plan a build stored
    when no file it was made from changed (:mod:`~pipeline.api.plancache`); the project
    is then not parsed at all, and ``Workspace.project`` is None. ``store_plan`` (a build)
    stores a fresh plan for the next run; without it nothing is written."""
    settings = resolve_settings(req.project, dict(req.flags or {}), credentials=credentials)
    catalog = settings.catalog()
    if not settings.specs_dir.is_dir():
        raise UsageError(
            f"no specs folder at {settings.specs_dir}; create it with a spec, or point "
            "--project at your project folder"
        )
    files = select_files(list(req.paths), settings.specs_dir) if req.paths else None
    today = req.today or lifecycle_date()
    loaded: list[Project] = []

    def make() -> Plan:
        project = load_project(settings.root, settings.specs_dir)
        loaded.append(project)
        return _plan_project(project, settings, catalog, today, picks=req.picks)

    known = None
    if reuse:
        context, folders, list_specs = stored_plan_lookup(settings, today, picks=req.picks)
        known = reuse_or_plan(
            settings.cache_dir,
            context,
            folders,
            list_specs,
            make,
            store=store_plan,
            sealer=user_sealer(),
        )
        full = known.plan
    else:
        full = make()
    # Exporters' paths come from assetpipe.yaml, not the specs: checked on every run.
    raise_collected(
        [
            *reserved_path_errors(full.jobs, reserved_paths(settings.exports)),
            *identifier_errors(full.jobs, settings.exports),
        ]
    )
    collections = (
        {collection_name(f, settings.specs_dir) for f in files} if files is not None else None
    )
    selected = select(full, req.only, collections)
    if req.only and not selected.jobs:
        raise UsageError(
            f"--only {' '.join(req.only)} matches no job; `assetpipe plan` lists the job ids"
        )
    if req.shard is not None:
        whole = selected
        selected = shard_plan(selected, req.shard)
        # The shards share the rate limits, each by its part of the paid jobs.
        settings = replace(
            settings,
            shards=req.shard.count,
            shard_share=paid_share(selected, whole),
            shared_limit=shared_limit(whole, req.shard),
        )
    return Workspace(
        settings=settings,
        catalog=catalog,
        project=loaded[0] if loaded else None,
        plan=selected,
        full_plan=full,
        plan_digest=(
            selection_digest(known.digest, [job.id for job in selected.jobs])
            if known and known.digest
            else None
        ),
        stored_plan=known if known and known.path else None,
        request=req,
    )


def stored_plan_lookup(
    settings: Settings, today: dt.date, *, picks: bool
) -> tuple[str, tuple[Path, ...], SpecLister]:
    """Where a stored plan of this project is found and what it is checked against: its
    key (:func:`_plan_context`), the folders every file it read must lie in, and the
    spec files it must have been made from."""
    folders = (
        settings.root,
        settings.specs_dir,
        settings.templates_dir,
        *((settings.cache_dir,) if settings.qa is not None else ()),  # judged.json
    )

    def list_specs() -> list[Path]:
        return [*find_spec_files(settings.specs_dir), *folder_links_leaving(settings.specs_dir)]

    return _plan_context(settings, today, picks=picks), folders, list_specs


def selection_digest(plan_digest: str, job_ids: Sequence[str]) -> str:
    """The stored plan's sha256 and the ids of the jobs selected from it (``--only``, spec
    paths, ``--shard``): what the last build's stamp is keyed by."""
    ids = "\n".join(job_ids)
    return sha256_bytes(f"{plan_digest}\n{ids}".encode())


def _plan_project(
    project: Project, settings: Settings, catalog: Catalog, today: dt.date, *, picks: bool
) -> Plan:
    """Expand ``project`` into the full plan (the lock is read here: it is a plan input)."""
    from pipeline.planner import PlanOptions, plan  # noqa: PLC0415 - only on a miss
    from pipeline.templating import TemplateEngine  # noqa: PLC0415

    engine = TemplateEngine(
        settings.templates_dir if settings.templates_dir.is_dir() else None,
        display_dir=settings.templates_dir.name,
    )
    lock = read_lock(settings.root)
    lock = lock if picks else lock.without_picks()
    options = PlanOptions(
        catalog=catalog,
        request_format=settings.provider_entry.request_format,
        provider=settings.provider,
        model_policy=settings.provider_entry.model_policy,
        model=settings.model,
        today=today,
        max_jobs=settings.max_jobs,
        lock=lock,
        placeholders=settings.provider_entry.free,
    )
    if settings.qa is None:
        return plan(project, engine, options, read_image_facts)
    # The gate's rerolls and winners (.assetpipe/judged.json) count as the lock's, unless
    # the spec changed under them: then the judge chose among images of an older request.
    judged = read_judged(settings.cache_dir, user_sealer())
    with_lock = replace(options, lock=with_judged(lock, judged, picks=picks))
    planned = plan(project, engine, with_lock, read_image_facts)
    stale = stale_records(planned, judged)
    if not stale:
        return planned
    fresh = {name: record for name, record in judged.items() if name not in stale}
    with_lock = replace(options, lock=with_judged(lock, fresh, picks=picks))
    return plan(project, engine, with_lock, read_image_facts)


def _plan_context(settings: Settings, today: dt.date, *, picks: bool) -> str:
    """What a plan depends on besides the files it reads (see :func:`_plan_project`)."""
    return plan_context(
        {
            "root": str(settings.root.absolute()),
            "specs": str(settings.specs_dir.absolute()),
            "templates": str(settings.templates_dir.absolute()),
            "templates_exist": settings.templates_dir.is_dir(),
            "provider": settings.provider,
            "model_policy": settings.provider_entry.model_policy,
            "model": settings.model,
            "prices": settings.prices,
            "provider_rules": registry.fingerprint(settings.provider_entry),
            "today": today.isoformat(),
            "max_jobs": settings.max_jobs,
            "picks": picks,
            # With the gate on, the plan reads its rerolls and winners too (judged.json);
            # the key is left out without it, so other projects' stored plans stay valid.
            **({"qa": True} if settings.qa is not None else {}),
        }
    )
