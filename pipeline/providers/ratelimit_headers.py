"""Reading OpenAI's rate-limit and retry headers (provider-neutral, so it is unit-testable).

Every value here comes from the server and is untrusted (see the threat model in
docs/reliability.md): a number that is not finite (``inf``, ``nan``, ``1e999``) or is
negative is unreadable and reads as None, never as a wait. Capping long but finite waits is
the runner's job (``MAX_RETRY_AFTER_S``).
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Mapping

from pipeline.jobs import RateLimitInfo

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_MAX_HEADER_CHARS = 64
"""Longer values are not numbers or durations worth parsing (and regexes stay cheap)."""


def _seconds(value: float) -> float | None:
    """``value`` if it is a usable number of seconds (finite, not negative), else None."""
    return value if math.isfinite(value) and value >= 0 else None


def _number(text: str) -> float | None:
    try:
        return _seconds(float(text))
    except ValueError:
        return None


def parse_duration(text: str | None) -> float | None:
    """``"1s"``, ``"120ms"``, ``"1m30s"`` or plain seconds to seconds; None if unreadable."""
    if not text or len(text) > _MAX_HEADER_CHARS:
        return None
    text = text.strip()
    try:
        return _seconds(float(text))
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return _seconds(sum(float(n) * _UNITS[u] for n, u in parts))


def _int(value: str | None) -> int | None:
    """A count header (limits, remaining): a non-negative integer, else None."""
    if value is None or len(value) > _MAX_HEADER_CHARS:
        return None
    try:
        number = int(value)
    except ValueError:
        return None
    return number if number >= 0 else None


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asks us to wait: ``retry-after-ms``, then ``retry-after``.

    An unreadable ``retry-after-ms`` (junk, ``inf``, ``nan``, negative) falls back to
    ``retry-after``; an HTTP date already past means no wait (0).
    """
    ms = headers.get("retry-after-ms")
    if ms and len(ms) <= _MAX_HEADER_CHARS:
        seconds = _number(ms)
        if seconds is not None:
            return seconds / 1000
    value = headers.get("retry-after")
    if not value or len(value) > _MAX_HEADER_CHARS:
        return None
    try:
        return _seconds(float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (ValueError, TypeError, IndexError, OverflowError):
        return None
    return _seconds(max(0.0, when.timestamp() - time.time()))


def rate_limit_info(headers: Mapping[str, str]) -> RateLimitInfo | None:
    """The ``x-ratelimit-*`` headers, or None when the server sent none."""
    if not any(k.lower().startswith("x-ratelimit-") for k in headers):
        return None
    return RateLimitInfo(
        limit_requests=_int(headers.get("x-ratelimit-limit-requests")),
        remaining_requests=_int(headers.get("x-ratelimit-remaining-requests")),
        reset_requests_s=parse_duration(headers.get("x-ratelimit-reset-requests")),
        limit_images=_int(headers.get("x-ratelimit-limit-images")),
        remaining_images=_int(headers.get("x-ratelimit-remaining-images")),
        reset_images_s=parse_duration(headers.get("x-ratelimit-reset-images")),
    )
