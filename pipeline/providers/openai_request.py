"""OpenAI's wording of an image request: its endpoints, parameters and ``options:``.

The planner resolves an asset's settings; this module turns them into the Images API's
parameters, exactly as they go on the wire and into the cache key. The preview and Azure
providers word requests the same way (the preview provider stands in for OpenAI; Azure
serves the same API). It imports no SDK, so planning never pays for loading one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.jobs import ParamValue
from pipeline.jobs.wire import RequestSettings, WireRequest

if TYPE_CHECKING:
    from pydantic import BaseModel

ENDPOINTS = {"generate": "images/generations", "edit": "images/edits"}
"""The Images API's calls by job kind; these strings are part of every cache key."""

GENERATE_PARAMS = (
    "size",
    "quality",
    "background",
    "output_format",
    "output_compression",
    "moderation",
    "user",
    "n",
)
EDIT_PARAMS = (
    "size",
    "quality",
    "background",
    "output_format",
    "output_compression",
    "input_fidelity",
    "user",
    "n",
)
EDIT_JSON_PARAMS = (*EDIT_PARAMS, "moderation")
"""The JSON edit body (``EditImageBodyJsonParam``) takes ``moderation``; multipart may not."""


class OpenAIRequestFormat:
    """The Images API request for an asset's settings (see :class:`RequestFormat`)."""

    @property
    def options(self) -> type[BaseModel]:
        """:class:`~pipeline.providers.openai_options.OpenAIOptions`, loaded when a plan
        needs it (the registry is imported by ``--help``, which has no use for pydantic)."""
        from pipeline.providers.openai_options import OpenAIOptions  # noqa: PLC0415

        return OpenAIOptions

    def wire(self, settings: RequestSettings) -> WireRequest:
        """``images/generations`` or ``images/edits`` with the parameters the asset
        resolved to; optional parameters appear only when set, so keys stay put."""
        params: dict[str, ParamValue] = {
            "size": f"{settings.width}x{settings.height}",
            "quality": settings.quality,
            "background": settings.background,
            "output_format": settings.format,
            "n": 1,
        }
        if settings.compression is not None:
            params["output_compression"] = settings.compression
        if settings.moderation is not None:
            params["moderation"] = settings.moderation
        if settings.kind == "edit" and settings.input_fidelity is not None:
            params["input_fidelity"] = settings.input_fidelity
        user = settings.options.get("user")
        if isinstance(user, str):
            params["user"] = user
        return WireRequest(ENDPOINTS[settings.kind], params)


OPENAI_FORMAT = OpenAIRequestFormat()
