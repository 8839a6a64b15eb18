"""The planner: specs in, a job graph out; pure apart from the injected file reader."""

from pipeline.planner.graph import (
    DEFAULT_MAX_JOBS,
    FileFacts,
    FileReader,
    Plan,
    PlanOptions,
    plan,
)
from pipeline.planner.keys import api_cache_key, rendition_cache_key
from pipeline.planner.order import select
from pipeline.planner.settings import PlanWarning
from pipeline.planner.sheets import frame_name, sheet_cache_key, sheet_frames

__all__ = [
    "DEFAULT_MAX_JOBS",
    "FileFacts",
    "FileReader",
    "Plan",
    "PlanOptions",
    "PlanWarning",
    "api_cache_key",
    "frame_name",
    "plan",
    "rendition_cache_key",
    "select",
    "sheet_cache_key",
    "sheet_frames",
]
