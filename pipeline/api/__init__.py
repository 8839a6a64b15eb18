"""The public API and the composition root: every command of the CLI is one call here.

Only this package (with :mod:`pipeline.settings`) reads settings and the environment, and
only it picks concrete implementations (the provider from the registry, the store, the
dispatcher, the pricing) to hand to the runner. Its submodules:

- :mod:`~pipeline.api.workspace`: load and plan a project; :mod:`~pipeline.api.status`:
  each job's state and ``check``; :mod:`~pipeline.api.caches`: ``cache stats|gc|clear``;
- :mod:`~pipeline.api.stores`: which result store (local, or local over the shared one);
- :mod:`~pipeline.api.workspace` also reuses a stored plan (:mod:`~pipeline.api.plancache`);
- :mod:`~pipeline.api.building`: a build's entry points and the answer "nothing to do"
  (:mod:`~pipeline.api.stamps`) before :mod:`~pipeline.api.running` wires and runs the
  build, writing its manifest and gallery; both share :mod:`~pipeline.api.results` (a
  build's options, result and exit code) and :mod:`~pipeline.api.buildlock`;
- :mod:`~pipeline.api.reports`: what ``plan`` and ``build --json`` print;
- :mod:`~pipeline.api.review`, :mod:`~pipeline.api.rerolls`, :mod:`~pipeline.api.pages`:
  picks, rejections, quoted rerolls and what the review page shows;
  :mod:`~pipeline.api.previewing`: the previews a reroll from the page streams back to it;
- :mod:`~pipeline.api.previews`: ``assetpipe watch``'s preview builds;
- :mod:`~pipeline.api.scaffold`: ``assetpipe init``'s starter project.

Names not in ``__all__`` are internal and may change.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names as mypy and readers see them; loaded on first use below
    from pipeline.api.approval import ReviewProblem, VariantRequired, review_problems
    from pipeline.api.batches import OpenBatch, cancel_batches, open_batches
    from pipeline.api.building import answer_unchanged, build, run_workspace
    from pipeline.api.caches import (
        cache_clear,
        cache_folder,
        cache_gc,
        cache_stats,
        cache_tiers,
    )
    from pipeline.api.exports import ExportReport, export_outputs
    from pipeline.api.pages import ReviewView, page_title, review_view
    from pipeline.api.previewing import previewing_provider
    from pipeline.api.previews import (
        PreviewResult,
        fingerprint,
        page_paths,
        preview_build,
        source_paths,
        watch_folders,
        watched_paths,
    )
    from pipeline.api.qa_status import JudgingEstimate, QaProblem, judging_estimate
    from pipeline.api.reports import (
        build_summary,
        error_summary,
        graph_text,
        job_json,
        plan_document,
        plan_error_document,
        plan_totals,
        route_factor,
        write_plan_document,
    )
    from pipeline.api.rerolls import ACTIONS, Quote, QuoteChanged, confirm, quote
    from pipeline.api.results import BuildOptions, BuildResult, exit_code
    from pipeline.api.review import PickResult, pick, reject, unpick
    from pipeline.api.routes import (
        BATCH_PRICE_FACTOR,
        direct_models,
        make_provider,
        price_factor,
    )
    from pipeline.api.scaffold import InitResult, init_project
    from pipeline.api.status import Assessed, CheckResult, assess_workspace, check, job_states
    from pipeline.api.workspace import (
        TODAY_VARIABLE,
        Request,
        Workspace,
        lifecycle_date,
        open_workspace,
        read_image_facts,
    )

_WHERE: dict[str, str] = {
    "ACTIONS": "pipeline.api.rerolls",
    "BATCH_PRICE_FACTOR": "pipeline.api.routes",
    "BuildOptions": "pipeline.api.results",
    "BuildResult": "pipeline.api.results",
    "CheckResult": "pipeline.api.status",
    "InitResult": "pipeline.api.scaffold",
    "JudgingEstimate": "pipeline.api.qa_status",
    "QaProblem": "pipeline.api.qa_status",
    "OpenBatch": "pipeline.api.batches",
    "PickResult": "pipeline.api.review",
    "PreviewResult": "pipeline.api.previews",
    "Quote": "pipeline.api.rerolls",
    "QuoteChanged": "pipeline.api.rerolls",
    "Request": "pipeline.api.workspace",
    "ReviewProblem": "pipeline.api.approval",
    "ReviewView": "pipeline.api.pages",
    "ExportReport": "pipeline.api.exports",
    "export_outputs": "pipeline.api.exports",
    "TODAY_VARIABLE": "pipeline.api.workspace",
    "VariantRequired": "pipeline.api.approval",
    "Workspace": "pipeline.api.workspace",
    "answer_unchanged": "pipeline.api.building",
    "build": "pipeline.api.building",
    "build_summary": "pipeline.api.reports",
    "cache_clear": "pipeline.api.caches",
    "cache_folder": "pipeline.api.caches",
    "cache_gc": "pipeline.api.caches",
    "cache_stats": "pipeline.api.caches",
    "cache_tiers": "pipeline.api.caches",
    "cancel_batches": "pipeline.api.batches",
    "check": "pipeline.api.status",
    "confirm": "pipeline.api.rerolls",
    "error_summary": "pipeline.api.reports",
    "exit_code": "pipeline.api.results",
    "fingerprint": "pipeline.api.previews",
    "graph_text": "pipeline.api.reports",
    "init_project": "pipeline.api.scaffold",
    "job_json": "pipeline.api.reports",
    "job_states": "pipeline.api.status",
    "judging_estimate": "pipeline.api.qa_status",
    "assess_workspace": "pipeline.api.status",
    "Assessed": "pipeline.api.status",
    "lifecycle_date": "pipeline.api.workspace",
    "make_provider": "pipeline.api.routes",
    "open_batches": "pipeline.api.batches",
    "open_workspace": "pipeline.api.workspace",
    "page_paths": "pipeline.api.previews",
    "page_title": "pipeline.api.pages",
    "pick": "pipeline.api.review",
    "plan_document": "pipeline.api.reports",
    "plan_error_document": "pipeline.api.reports",
    "plan_totals": "pipeline.api.reports",
    "preview_build": "pipeline.api.previews",
    "previewing_provider": "pipeline.api.previewing",
    "price_factor": "pipeline.api.routes",
    "route_factor": "pipeline.api.reports",
    "write_plan_document": "pipeline.api.reports",
    "direct_models": "pipeline.api.routes",
    "quote": "pipeline.api.rerolls",
    "read_image_facts": "pipeline.api.workspace",
    "reject": "pipeline.api.review",
    "review_problems": "pipeline.api.approval",
    "review_view": "pipeline.api.pages",
    "run_workspace": "pipeline.api.building",
    "source_paths": "pipeline.api.previews",
    "unpick": "pipeline.api.review",
    "watch_folders": "pipeline.api.previews",
    "watched_paths": "pipeline.api.previews",
}
"""Which submodule defines each public name. The CLI imports this package for every
command, even ``--help``; loading the planner, the runner and the SDK only when a name is
first used keeps that instant (PEP 562)."""


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'pipeline.api' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "ACTIONS",
    "BATCH_PRICE_FACTOR",
    "TODAY_VARIABLE",
    "Assessed",
    "BuildOptions",
    "BuildResult",
    "CheckResult",
    "ExportReport",
    "InitResult",
    "JudgingEstimate",
    "OpenBatch",
    "PickResult",
    "PreviewResult",
    "QaProblem",
    "Quote",
    "QuoteChanged",
    "Request",
    "ReviewProblem",
    "ReviewView",
    "VariantRequired",
    "Workspace",
    "answer_unchanged",
    "assess_workspace",
    "build",
    "build_summary",
    "cache_clear",
    "cache_folder",
    "cache_gc",
    "cache_stats",
    "cache_tiers",
    "cancel_batches",
    "check",
    "confirm",
    "direct_models",
    "error_summary",
    "exit_code",
    "export_outputs",
    "fingerprint",
    "graph_text",
    "init_project",
    "job_json",
    "job_states",
    "judging_estimate",
    "lifecycle_date",
    "make_provider",
    "open_batches",
    "open_workspace",
    "page_paths",
    "page_title",
    "pick",
    "plan_document",
    "plan_error_document",
    "plan_totals",
    "preview_build",
    "previewing_provider",
    "price_factor",
    "quote",
    "read_image_facts",
    "reject",
    "review_problems",
    "review_view",
    "route_factor",
    "run_workspace",
    "source_paths",
    "unpick",
    "watch_folders",
    "watched_paths",
    "write_plan_document",
]
