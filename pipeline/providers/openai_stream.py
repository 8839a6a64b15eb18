"""A streamed Images answer (``stream: true``): partial previews, then the final image.

Generations and edits stream the same events under two names (``image_generation.*``
and ``image_edit.*``, with the same fields), so one reader serves both: it is told which
family to expect, and an event of the other family is not one of its answer's.

Every event is untrusted like any answer: a partial's base64 is measured before it is
decoded, at most the partials asked for are passed on (more is a ``bad_response``), and
the completed event is read by the same code as a plain answer
(:func:`~pipeline.providers.openai_wire.image_result`), so the final image, its usage and
its echoed settings are checked exactly as they would be unstreamed. Partials go only to
the caller's callback: they are never a result, so they never reach the cache or the
output tree.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterable, Callable

from pipeline.jobs import ImageResult, ProviderFailure
from pipeline.providers.openai_wire import base64_limit, field, image_result
from pipeline.providers.redaction import Redactor

MAX_PARTIAL_BYTES = 16 * 1024 * 1024
"""Largest decoded partial passed on: a preview of the largest native size, compressed."""

EVENT_FAMILIES = {"generate": "image_generation", "edit": "image_edit"}
"""The prefix of the events a streamed call sends, by job kind."""

STREAMED_FORMATS = frozenset({"png", "webp", "jpeg"})
"""The formats the API streams: an SVG or a GIF can only be sent whole."""


async def streamed_result(
    events: AsyncIterable[object],
    *,
    family: str,
    partial_images: int,
    on_partial: Callable[[int, bytes], None],
    default_format: str,
    redact: Redactor,
    max_image_bytes: int,
) -> ImageResult:
    """The final image of a stream of ``family`` events (``image_generation`` or
    ``image_edit``); each partial's bytes go to ``on_partial(index, data)`` as they
    arrive (a partial over the cap or not base64 is skipped: a preview is not worth
    failing a paid image for). Events of other types are passed over."""
    seen = 0
    async for event in events:
        kind = field(event, "type")
        if kind == f"{family}.partial_image":
            seen += 1
            if seen > partial_images:
                raise ProviderFailure(
                    "bad_response",
                    f"the stream sent more than the {partial_images} partial image(s) asked for",
                )
            data = _partial(field(event, "b64_json"))
            if data is not None:
                index = field(event, "partial_image_index")
                on_partial(index if isinstance(index, int) and 0 <= index < 3 else seen - 1, data)
        elif kind == f"{family}.completed":
            response = {
                "data": [{"b64_json": field(event, "b64_json")}],
                "usage": field(event, "usage"),
                "output_format": field(event, "output_format"),
                "size": field(event, "size"),
                "quality": field(event, "quality"),
                "background": field(event, "background"),
            }
            return image_result(
                response,
                default_format=default_format,
                request_id=None,
                redact=redact,
                max_image_bytes=max_image_bytes,
            )
    raise ProviderFailure("bad_response", "the stream ended without the final image")


def _partial(b64: object) -> bytes | None:
    """A partial's bytes, measured before they are decoded; None when unusable."""
    if not isinstance(b64, str) or not b64 or len(b64) > base64_limit(MAX_PARTIAL_BYTES):
        return None
    try:
        return base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        return None
