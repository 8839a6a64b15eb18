"""The planner: specs in, a job graph out; pure apart from the injected file reader.

The graph's types (jobs, keys, :class:`~pipeline.jobs.Plan`, selection) live in
:mod:`pipeline.jobs`, which the runner reads without importing the planner.
"""

from pipeline.planner.graph import (
    DEFAULT_MAX_JOBS,
    FileFacts,
    FileReader,
    PlanOptions,
    plan,
)

__all__ = [
    "DEFAULT_MAX_JOBS",
    "FileFacts",
    "FileReader",
    "PlanOptions",
    "plan",
]
