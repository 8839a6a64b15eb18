"""Provider-neutral types every layer shares: jobs, their names and keys, the plan graph,
and the provider contract.

The planner builds these, the runner and the dispatchers read them, providers implement
:class:`Provider` (and a batch backend :class:`pipeline.jobs.batch.BatchBackend`, imported
from its module). Nothing here imports an SDK, a store or the planner, so each of those
can be replaced or tested with plain data.
"""

from pipeline.jobs.api_keys import api_cache_key, api_request
from pipeline.jobs.job import (
    ApiJob,
    Fit,
    InputRef,
    Job,
    JobBase,
    JobKind,
    LocalJob,
    PinnedJob,
    RenditionJob,
    RenditionOp,
    SheetJob,
)
from pipeline.jobs.keys import (
    EXTENSIONS,
    delivery_request,
    frame_name,
    job_id,
    output_path,
    pick_cache_key,
    pick_request,
    rendition_cache_key,
    rendition_request,
    sheet_request,
)
from pipeline.jobs.plan import PALETTE_SKIPPED, Plan, PlanWarning, select, topological
from pipeline.jobs.provider import (
    ACCOUNT_KINDS,
    RETRYABLE_KINDS,
    Endpoint,
    FailureKind,
    ImageInput,
    ImageRequest,
    ImageResult,
    ParamValue,
    Provider,
    ProviderFailure,
    RateLimitInfo,
    Usage,
)

__all__ = [
    "ACCOUNT_KINDS",
    "EXTENSIONS",
    "PALETTE_SKIPPED",
    "RETRYABLE_KINDS",
    "ApiJob",
    "Endpoint",
    "FailureKind",
    "Fit",
    "ImageInput",
    "ImageRequest",
    "ImageResult",
    "InputRef",
    "Job",
    "JobBase",
    "JobKind",
    "LocalJob",
    "ParamValue",
    "PinnedJob",
    "Plan",
    "PlanWarning",
    "Provider",
    "ProviderFailure",
    "RateLimitInfo",
    "RenditionJob",
    "RenditionOp",
    "SheetJob",
    "Usage",
    "api_cache_key",
    "api_request",
    "delivery_request",
    "frame_name",
    "job_id",
    "output_path",
    "pick_cache_key",
    "pick_request",
    "rendition_cache_key",
    "rendition_request",
    "select",
    "sheet_request",
    "topological",
]
