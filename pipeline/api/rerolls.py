"""Paid work asked for on the review page: a reroll (one more variant) or a real build of
one asset, each quoted before it runs.

Nothing is paid for without a person seeing the price first: :func:`quote` says which
requests would go out and what they cost, with a digest of exactly that; :func:`confirm`
recomputes the quote and refuses when the digest differs (the spec, the lock or the cache
moved in between), so a confirm always pays for what was shown. A reroll adds one to the
asset's ``rerolls`` in ``assetpipe.lock`` (the plan then has variant N+1), and the build
that follows makes only that new variant.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, replace
from typing import Literal

from pipeline.api.approval import add_reroll
from pipeline.api.review import variants_of
from pipeline.api.routes import price_factor
from pipeline.api.status import job_states
from pipeline.api.workspace import Request, open_workspace
from pipeline.errors import UsageError
from pipeline.jobs import ApiJob
from pipeline.settings import resolve_settings
from pipeline.spec.lock import MAX_REROLLS, read_lock

Action = Literal["reroll", "build"]
ACTIONS: tuple[Action, ...] = ("reroll", "build")


class QuoteChanged(UsageError):
    """The work or its price changed since the quote was shown: look again."""


@dataclass(frozen=True, slots=True)
class Quote:
    """What one confirm on the page would run, and what it would cost."""

    action: Action
    asset: str
    jobs: tuple[str, ...]
    """The API jobs that would be made (each a paid call on a paying provider)."""
    cost_usd: float
    """The estimate at this provider's prices (0 on a free one such as preview)."""
    list_usd: float
    """The estimate at the model table's prices, whatever the provider."""
    provider: str
    digest: str
    previews: int = 0
    """Previews the reroll's build streams to the page (``review.partial_images``)."""

    @property
    def summary(self) -> str:
        """One paragraph for the confirm dialog."""
        if self.action == "reroll":
            what = f"Reroll {self.asset}: generate one more variant ({self.jobs[0]})"
        elif self.jobs:
            listed = ", ".join(self.jobs)
            what = f"Build {self.asset}: generate {len(self.jobs)} image(s) ({listed})"
        else:
            what = f"Build {self.asset}: nothing to generate (files come from the cache)"
        if not self.jobs:
            price = "cost $0.00"
        elif self.cost_usd == 0:
            price = f"free on {self.provider} (${self.list_usd:.4f} at API prices)"
        else:
            price = f"estimated cost ${self.cost_usd:.4f} on {self.provider}"
        if self.previews and self.cost_usd > 0:
            price += (
                f", with {self.previews} preview(s) shown while it is made "
                "(each may add a few output tokens; review.partial_images: 0 turns them off)"
            )
        return f"{what}.\n{price}.\nNothing is sent until you confirm."


def quote(req: Request, action: str, asset: str) -> Quote:
    """What ``action`` on ``collection/asset`` would make and cost (no network, no writes)."""
    if action not in ACTIONS:
        raise UsageError(f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")
    base = Request(project=req.project, flags=req.flags, today=req.today)
    if action == "reroll":
        ws = open_workspace(base, credentials=False)
        variants = variants_of(ws, asset)
        rerolls = read_lock(ws.settings.root).entry(asset).rerolls
        if rerolls >= MAX_REROLLS:
            raise UsageError(
                f"{asset} already has {rerolls} rerolls, the most the lock keeps; pick one, "
                "or raise variants in the spec"
            )
        last = variants[-1]
        jobs: tuple[str, ...] = (f"{asset}#{last.variant + 1}",)
        list_usd = last.estimated_cost_usd
        requests = [_request(last)]
    else:
        ws = open_workspace(
            replace(base, only=(_glob(asset), _glob(asset) + "#*")), credentials=False
        )
        variants_of(ws, asset)  # a clear error for an asset no spec has
        states = job_states(ws)
        made = [j for j in ws.plan.jobs if j.is_api and states[j.id].status == "generate"]
        jobs = tuple(j.id for j in made)
        list_usd = sum(j.estimated_cost_usd for j in made)
        requests = [_request(j) for j in made if isinstance(j, ApiJob)]
    cost = list_usd * price_factor(ws.settings, batch=False)
    provider = ws.settings.provider
    previews = ws.settings.review_partial_images if action == "reroll" else 0
    payload = [action, asset, list(jobs), requests, round(cost, 6), provider, previews]
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
    return Quote(action, asset, jobs, cost, list_usd, provider, digest, previews)


def confirm(req: Request, action: str, asset: str, digest: str) -> tuple[Quote, tuple[str, ...]]:
    """Accept what :func:`quote` showed, if it is still exactly that (QuoteChanged if not),
    and return the ``--only`` patterns of the build that makes it.

    For a reroll this is where the lock gets its extra variant; the build itself is the
    caller's (the review server runs ``assetpipe build --only ...``, as a person would).
    """
    shown = quote(req, action, asset)
    if shown.digest != digest:
        raise QuoteChanged(
            f"what {action} of {asset} would do changed since its cost was shown; "
            "look at the new quote and confirm again"
        )
    # The provider's key, before anything is written: a reroll recorded in the lock
    # that cannot be built would only confuse.
    settings = resolve_settings(req.project, dict(req.flags or {}))
    if action == "reroll":
        add_reroll(settings.root, asset)
        return shown, tuple(_glob(j) for j in shown.jobs)
    return shown, (_glob(asset), _glob(asset) + "#*")


def _request(job: ApiJob) -> list[object]:
    """What a job asks for, as the quote's digest covers it."""
    return [job.model, job.prompt, dict(job.params), list(job.size)]


def _glob(name: str) -> str:
    """``name`` as a glob that matches only itself (job ids may hold ``[``)."""
    return re.sub(r"([*?\[])", r"[\1]", name)
