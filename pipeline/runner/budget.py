"""Money: what a call is expected to cost, what it did cost, and the ``--max-cost`` budget.

Kept apart from the scheduler so that every route to the API prices and reserves the same
way: a direct call and a batched one differ only in their :class:`Pricing` (the Batch API
bills half), never in how the budget is checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from pipeline.catalog import Catalog
from pipeline.jobs import ApiJob, Usage

BUDGET_SLACK = 1e-9
"""Float sums of many small estimates may land a hair over an exact cap."""


class Pricing(Protocol):
    """What the composition root tells the runner about money for the chosen route."""

    def estimate(self, job: ApiJob) -> float:
        """USD reserved before the call."""
        ...

    def actual(self, job: ApiJob, usage: Usage | None) -> float:
        """USD the call cost, from the usage the API reported (the estimate without it)."""
        ...

    def actual_for(self, model: str, estimate: float, usage: Usage | None) -> float:
        """:meth:`actual` from a model name and the planner's estimate alone (for a paid
        result no job of this plan asked for, kept from a batch journal)."""
        ...


@dataclass(frozen=True, slots=True)
class CatalogPricing:
    """Prices from the model table, times ``factor``: 1 for direct calls, 0 for a free
    provider (estimates shown by ``plan`` stay the real price), 0.5 for the Batch API;
    the ``direct`` models of a batch build (the Batch API does not take them) pay all of it."""

    catalog: Catalog
    factor: float = 1.0
    direct: frozenset[str] = frozenset()

    def factor_for(self, model: str) -> float:
        """The share of the table's price that ``model``'s requests pay on this route."""
        return 1.0 if model in self.direct else self.factor

    def estimate(self, job: ApiJob) -> float:
        """The planner's estimate of the job, scaled by the route's factor."""
        return job.estimated_cost_usd * self.factor_for(job.model)

    def actual(self, job: ApiJob, usage: Usage | None) -> float:
        """Token usage at the model's prices, or the estimate when there is none."""
        return self.actual_for(job.model, job.estimated_cost_usd, usage)

    def actual_for(self, model: str, estimate: float, usage: Usage | None) -> float:
        """See :meth:`Pricing.actual_for`."""
        info = self.catalog.get(model)
        factor = self.factor_for(model)
        if usage is None or info is None:
            return estimate * factor
        # The SVG author's tokens are priced at the image model's text-input and output
        # rates: no table lists the author's own prices, and a budget must not undercount.
        cost = info.actual_cost(
            usage.input_text_tokens + usage.svg_input_tokens,
            usage.input_image_tokens,
            usage.output_tokens + usage.svg_output_tokens,
        )
        return cost * factor if math.isfinite(cost) else estimate * factor


class Budget:
    """Spent plus reserved must stay under the cap: a job is started only when its
    estimate fits, and it holds that reservation until its answer is paid for."""

    def __init__(self, cap: float | None):
        self.cap = cap
        self.spent = 0.0
        self.reserved = 0.0
        self.hit = False

    def reserve(self, estimate: float) -> Reservation | None:
        """Hold ``estimate`` for one call, or None (and remember it) when it would not fit.

        Synchronous on purpose: concurrent jobs see each other's reservations because no
        await happens between the check and the hold."""
        if self.cap is not None and self.spent + self.reserved + estimate > self.cap + BUDGET_SLACK:
            self.hit = True
            return None
        self.reserved += estimate
        return Reservation(self, estimate)

    def refusal(self) -> str:
        """Why a job was not started, for its outcome."""
        return (
            f"starting it would exceed --max-cost ${self.cap or 0:.2f} "
            f"(spent ${self.spent:.2f}, in flight ${self.reserved:.2f})"
        )


class Reservation:
    """One call's hold on the budget: settled with what it cost, or released unused."""

    def __init__(self, budget: Budget, amount: float):
        self.budget = budget
        self.amount = amount

    def settle(self, cost: float) -> None:
        """The call was paid for: its reservation becomes ``cost`` spent."""
        self.release()
        self.budget.spent += cost

    def release(self) -> None:
        """Give the reservation back (no answer, or already settled). Idempotent."""
        self.budget.reserved -= self.amount
        self.amount = 0.0
