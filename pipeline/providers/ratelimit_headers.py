"""Reading OpenAI's rate-limit and retry headers (provider-neutral, so it is unit-testable)."""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping

from pipeline.jobs import RateLimitInfo

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str | None) -> float | None:
    """``"1s"``, ``"120ms"``, ``"1m30s"`` or plain seconds to seconds; None if unreadable."""
    if not text:
        return None
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNITS[u] for n, u in parts)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asks us to wait: ``retry-after-ms``, then ``retry-after``."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    when = email.utils.parsedate_to_datetime(value) if value else None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


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
