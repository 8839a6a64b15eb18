"""A cap on each event of a streamed answer (server-sent events, ``stream: true``).

The capped HTTP client cannot read a streamed body whole before the SDK sees it: the
events must reach the caller while the image is still being made. The SDK, though, holds
each event whole until the blank line that ends it, so a server that never ends an event
(or inflates a small gzip into one) would grow memory without bound. :class:`CappedEvents`
passes the decoded body on as it arrives and counts the bytes since the last blank line;
an event longer than the cap raises :class:`EventTooLarge` before it is passed on. The
cap is the client's body cap: the last event carries the final image, which may be as
large as a whole unstreamed answer, so a stream never holds more than an answer could.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import openai

EVENT_STREAM = "text/event-stream"

_BLANK_LINES = (b"\n\n", b"\r\r", b"\n\r")
"""Two line ends in a row, in every spelling the SSE format allows (LF, CR, CRLF): each
blank line, the end of an event, holds one of these (``\\r\\n\\r\\n`` holds ``\\n\\r``),
and a single CRLF holds none."""


class EventTooLarge(openai.OpenAIError):
    """One event of a streamed answer (after decoding) longer than the client accepts."""

    def __init__(self, limit: int):
        super().__init__(
            f"an event of the streamed answer is longer than {limit // (1024 * 1024)} MiB; "
            "no image answer is that large, so it was not read"
        )
        self.limit = limit


def is_event_stream(response: httpx2.Response) -> bool:
    """Whether ``response`` is a stream of server-sent events."""
    kind = response.headers.get("content-type", "")
    return kind.split(";", 1)[0].strip().lower() == EVENT_STREAM


class CappedEvents(httpx2.AsyncByteStream):
    """The decoded body of ``response``, passed on as it arrives, with no event over
    ``limit`` bytes (:class:`EventTooLarge` instead)."""

    def __init__(self, response: httpx2.Response, limit: int):
        self._response = response
        self._limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        since = 0  # bytes since the last blank line
        last = b""  # the previous piece's last byte: a line end may be split across pieces
        async for piece in self._response.aiter_bytes():
            window = last + piece
            found = max(window.rfind(blank) for blank in _BLANK_LINES)
            since = since + len(piece) if found < 0 else len(window) - (found + 2)
            if since > self._limit:
                raise EventTooLarge(self._limit)
            last = piece[-1:]
            yield piece

    async def aclose(self) -> None:
        """Close the response underneath (and its connection)."""
        await self._response.aclose()


def capped_events(response: httpx2.Response, limit: int) -> httpx2.Response:
    """``response`` (a stream of events) with each event capped at ``limit`` decoded bytes.

    The new response carries the decoded body, so the headers that describe the wire
    form of it (the encoding, the length) are dropped, as they are for a body read whole.
    """
    headers = [
        (name, value)
        for name, value in response.headers.multi_items()
        if name.lower() not in {"content-encoding", "content-length", "transfer-encoding"}
    ]
    return httpx2.Response(
        response.status_code,
        headers=headers,
        stream=CappedEvents(response, limit),
        request=response.request,
        extensions=response.extensions,
        history=response.history,
    )
