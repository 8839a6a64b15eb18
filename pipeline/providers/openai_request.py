"""OpenAI's wording of an image request: its endpoints, parameters and ``options:``.

The planner resolves an asset's settings; this module turns them into the Images API's
parameters, exactly as they go on the wire and into the cache key. The preview and Azure
providers word requests the same way (the preview provider stands in for OpenAI; Azure
serves the same API). It imports no SDK, so planning never pays for loading one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pipeline.jobs import ParamValue
from pipeline.jobs.wire import CannotWord, RequestSettings, WireRequest

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
    "complexity",
    "frame_count",
    "frame_duration_ms",
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
    "complexity",
    "frame_count",
    "frame_duration_ms",
    "user",
    "n",
)
SVG_MODEL = "svg[model]"
SVG_EFFORT = "svg[reasoning][effort]"
"""The ``svg`` object's fields as a request's parameters: flat, as the multipart form
names them (a parameter is a string or a number), nested again by :func:`svg_param`."""
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
        if settings.complexity is not None:
            params["complexity"] = settings.complexity
        user = settings.options.get("user")
        if isinstance(user, str):
            params["user"] = user
        params.update(_animated_or_vector(settings))
        return WireRequest(ENDPOINTS[settings.kind], params)


def _animated_or_vector(settings: RequestSettings) -> dict[str, ParamValue]:
    """The GIF's ``frame_count``/``frame_duration_ms`` and the SVG's ``svg`` object, as
    the API names them; :class:`CannotWord` for ``svg`` options on another format."""
    out: dict[str, ParamValue] = {}
    if settings.format == "gif":
        if settings.frames is not None:
            out["frame_count"] = settings.frames
        if settings.frame_ms is not None:
            out["frame_duration_ms"] = settings.frame_ms
    svg = settings.options.get("svg")
    if isinstance(svg, Mapping):
        if settings.format != "svg":
            raise CannotWord(
                f"options.svg applies to format: svg, not {settings.format}",
                "remove options.svg, or set format: svg",
            )
        out[SVG_MODEL] = str(svg["model"])
        if svg.get("effort") is not None:
            out[SVG_EFFORT] = str(svg["effort"])
    return out


def svg_param(params: Mapping[str, ParamValue]) -> dict[str, Any]:
    """The API's ``svg`` object from a request's flat parameters (``{}`` when it has none),
    for the SDK and the Batch API's JSON bodies."""
    if SVG_MODEL not in params:
        return {}
    author: dict[str, Any] = {"model": params[SVG_MODEL]}
    if SVG_EFFORT in params:
        author["reasoning"] = {"effort": params[SVG_EFFORT]}
    return {"svg": author}


OPENAI_FORMAT = OpenAIRequestFormat()
