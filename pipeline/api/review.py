"""Picking and pinning: ``assetpipe pick``, ``unpick``, and the review page's rejections.

A pick records, in ``assetpipe.lock``, the variant a person approved: its request's cache
key and the sha256 of its delivered image. Only a variant that has been built can be
picked (its bytes must be known, in the output tree or the cache), so the lock never names
an image nobody has seen. Nothing here calls the API or writes outside the lock file.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
from dataclasses import dataclass

from pipeline.api.approval import VariantRequired, drop_pick, record_pick, set_rejected
from pipeline.api.status import job_states
from pipeline.api.workspace import Request, Workspace, open_workspace
from pipeline.errors import UsageError
from pipeline.jobs import ApiJob
from pipeline.spec.lock import Pick

_REF = re.compile(r"(?P<asset>.+/[a-z0-9][a-z0-9._-]*)(?:#(?P<k>\d{1,3}))?")


@dataclass(frozen=True, slots=True)
class PickResult:
    """What ``pick`` recorded."""

    asset: str
    pick: Pick
    job: str


def pick(req: Request, ref: str, *, now: dt.datetime | None = None) -> PickResult:
    """Record variant ``K`` of ``collection/asset#K`` as the asset's approved image;
    ``collection/asset`` alone only when the asset has just one variant (approving
    variant 1 of several because nobody said otherwise would ship an image no one chose:
    :class:`VariantRequired` lists the choices)."""
    ws, asset, k, job = _variant(req, ref, choose=False)
    state = job_states(ws).get(job.id)
    if state is None or state.sha256 is None or state.cache_key is None:
        raise UsageError(
            f"{job.id} is not built yet, so there is no image to approve; build it first: "
            f"assetpipe build --only '{job.id}'"
        )
    when = (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    chosen = Pick(
        variant=k,
        cache_key=state.cache_key,
        sha256=state.sha256,
        format=job.format,
        by=_who(ws),
        at=when,
    )
    record_pick(ws.settings.root, asset, chosen)
    return PickResult(asset=asset, pick=chosen, job=job.id)


def unpick(req: Request, ref: str) -> str:
    """Forget ``collection/asset``'s pick (its rerolls and rejections stay)."""
    asset, _ = parse_ref(ref)
    drop_pick(req.project, asset)
    return asset


def reject(req: Request, ref: str, *, rejected: bool = True) -> str:
    """Set variant ``K`` of ``collection/asset#K`` aside (``rejected`` in the lock), or
    restore it with ``rejected=False``; returns the variant's job id.

    A rejected variant stays built and reachable; the review page dims it. The picked
    variant cannot be rejected: pick another one first, or unpick.
    """
    ws, asset, k, job = _variant(req, ref)
    set_rejected(ws.settings.root, asset, k, rejected)
    return job.id


def _variant(req: Request, ref: str, *, choose: bool = True) -> tuple[Workspace, str, int, ApiJob]:
    """The planned project and variant ``K`` of ``collection/asset#K`` (UsageError when
    there is no such variant). A bare ``collection/asset`` is variant 1 when ``choose``,
    else only when the asset has one variant. Planning needs no API key: nothing here
    calls a provider."""
    asset, named = _parse(ref)
    ws = open_workspace(
        Request(project=req.project, flags=req.flags, today=req.today), credentials=False
    )
    variants = variants_of(ws, asset)
    if named is None and not choose and len(variants) > 1:
        raise VariantRequired(
            asset, [(f"{asset}#{j.variant}", _shown_path(ws, j)) for j in variants]
        )
    k = named or 1
    job = next((j for j in variants if j.variant == k), None)
    if job is None:
        raise UsageError(
            f"{asset} has no variant {k}; it has {len(variants)} (#1 to #{len(variants)})"
        )
    return ws, asset, k, job


def parse_ref(ref: str) -> tuple[str, int]:
    """``(collection/asset, K)`` of ``collection/asset#K`` (K is 1 when left out)."""
    asset, k = _parse(ref)
    return asset, k or 1


def _parse(ref: str) -> tuple[str, int | None]:
    """``(collection/asset, K)`` of ``collection/asset#K``; K is None when left out."""
    m = _REF.fullmatch(ref.strip())
    if m is None:
        raise UsageError(
            f"'{ref}' is not a variant; write collection/asset#K, e.g. characters/hero#2"
        )
    return m["asset"], int(m["k"]) if m["k"] else None


def _shown_path(ws: Workspace, job: ApiJob) -> str:
    """Where ``job``'s file is (or will be), relative to the project when it is inside:
    the path a person opens to look at the variant before picking it."""
    path = ws.settings.output_dir / job.output_path
    try:
        return str(path.relative_to(ws.settings.root))
    except ValueError:
        return str(path)


def variants_of(ws: Workspace, asset: str) -> list[ApiJob]:
    """The API jobs (one per variant) of ``collection/asset`` in the full plan."""
    found = [
        j
        for j in ws.full_plan.jobs
        if isinstance(j, ApiJob) and f"{j.collection}/{j.asset}" == asset
    ]
    if not found:
        raise UsageError(f"no asset {asset} in the specs; `assetpipe plan` lists the job ids")
    return found


def _who(ws: Workspace) -> str:
    """``Name <email>`` from git config in the project, when git and the config exist."""
    git = shutil.which("git")
    if git is None:
        return ""
    parts = []
    for key in ("user.name", "user.email"):
        try:
            found = subprocess.run(  # noqa: S603 - fixed argv; `config --get` runs nothing
                [git, "config", "--get", key],
                cwd=ws.settings.root,
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        parts.append(found.stdout.strip() if found.returncode == 0 else "")
    name, email = parts
    who = f"{name} <{email}>" if name and email else name or email
    return who if who.isprintable() and len(who) <= 200 else ""
