"""The public API and the composition root: every command of the CLI is one call here.

Only this package (with :mod:`pipeline.settings`) reads settings and the environment, and
only it picks concrete implementations (the provider from the registry, the store, the
dispatcher, the pricing) to hand to the runner. Its submodules:

- :mod:`~pipeline.api.workspace`: load and plan a project; ``check`` and ``cache``;
- :mod:`~pipeline.api.stores`: which result store (local, or local over the shared one);
- :mod:`~pipeline.api.building`: wire and run one build, write its manifest and gallery;
- :mod:`~pipeline.api.reports`: what ``plan`` and ``build --json`` print;
- :mod:`~pipeline.api.review`, :mod:`~pipeline.api.rerolls`, :mod:`~pipeline.api.pages`:
  picks, rejections, quoted rerolls and what the review page shows;
- :mod:`~pipeline.api.previews`: ``assetpipe watch``'s preview builds.

Names not in ``__all__`` are internal and may change.
"""

from pipeline.api.approval import ReviewProblem, review_problems
from pipeline.api.batches import OpenBatch, cancel_batches, open_batches
from pipeline.api.building import (
    BuildOptions,
    BuildResult,
    build,
    exit_code,
    run_workspace,
)
from pipeline.api.pages import ReviewView, page_title, review_view
from pipeline.api.previews import (
    PreviewResult,
    fingerprint,
    page_paths,
    preview_build,
    source_paths,
    watch_folders,
    watched_paths,
)
from pipeline.api.reports import (
    build_summary,
    error_summary,
    graph_text,
    job_json,
    plan_document,
    plan_totals,
)
from pipeline.api.rerolls import ACTIONS, Quote, QuoteChanged, confirm, quote
from pipeline.api.review import PickResult, pick, reject, unpick
from pipeline.api.routes import BATCH_PRICE_FACTOR, make_provider, price_factor
from pipeline.api.workspace import (
    TODAY_VARIABLE,
    CheckResult,
    Request,
    Workspace,
    cache_clear,
    cache_folder,
    cache_gc,
    cache_stats,
    cache_tiers,
    check,
    job_states,
    lifecycle_date,
    open_workspace,
    read_image_facts,
)

__all__ = [
    "ACTIONS",
    "BATCH_PRICE_FACTOR",
    "TODAY_VARIABLE",
    "BuildOptions",
    "BuildResult",
    "CheckResult",
    "OpenBatch",
    "PickResult",
    "PreviewResult",
    "Quote",
    "QuoteChanged",
    "Request",
    "ReviewProblem",
    "ReviewView",
    "Workspace",
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
    "error_summary",
    "exit_code",
    "fingerprint",
    "graph_text",
    "job_json",
    "job_states",
    "lifecycle_date",
    "make_provider",
    "open_batches",
    "open_workspace",
    "page_paths",
    "page_title",
    "pick",
    "plan_document",
    "plan_totals",
    "preview_build",
    "price_factor",
    "quote",
    "read_image_facts",
    "reject",
    "review_problems",
    "review_view",
    "run_workspace",
    "source_paths",
    "unpick",
    "watch_folders",
    "watched_paths",
]
