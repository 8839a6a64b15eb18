"""Scrubbing secrets and junk out of text a server sent, before assetpipe keeps any of it.

Error messages, error details, request ids and echoed fields flow into stderr, the manifest,
the gallery and the cache (the API key never appears in any of them). A provider passes
every such string through :class:`Redactor`, which replaces

- the exact key the client was configured with (whatever it looks like),
- any ``sk-...``-looking token (another key, or one the server echoed), and
- any ``Bearer <token>`` credential

with a marker, and bounds the size of what is kept, since a server can send megabytes.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Mapping

KEY_MARKER = "sk-...REDACTED"
"""What a key (the configured one, or anything shaped like an OpenAI key) becomes."""
BEARER_MARKER = "Bearer [redacted]"
"""What a ``Bearer <token>`` credential becomes."""

MAX_TEXT_CHARS = 2000
"""A kept message is cut to this many characters (after redaction)."""
_SCAN_CHARS = 64 * 1024
"""Longer server text is cut to this before it is scanned (regexes over a 64 MiB error page
would cost seconds, and no more than ``MAX_TEXT_CHARS`` of it is kept anyway)."""
_MAX_ITEMS = 50
_MAX_DEPTH = 4
_MIN_KEY_CHARS = 4
"""Shorter "keys" are not secrets, and replacing every ``a`` in a message helps nobody."""

_BEARER = re.compile(r"\bbearer\s+[A-Za-z0-9._~+/=\-]{8,}", re.IGNORECASE)
_SK_TOKEN = re.compile(r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_\-]{8,}")


class Redactor:
    """Redacts the configured secrets and anything key-shaped from server text."""

    def __init__(self, secrets: Iterable[str | None] = ()):
        kept = {s for s in secrets if isinstance(s, str) and len(s) >= _MIN_KEY_CHARS}
        # Longest first, so a key that contains another is replaced whole.
        self._secrets = sorted(kept, key=len, reverse=True)

    def text(self, value: str, limit: int = MAX_TEXT_CHARS) -> str:
        """``value`` with every secret replaced, cut to ``limit`` characters."""
        if len(value) > _SCAN_CHARS:
            # Only the start can be kept, so only the start is scanned; a secret cut in two
            # by that first cut would escape redaction, so its length is dropped as well.
            longest = len(self._secrets[0]) if self._secrets else 0
            value = value[: _SCAN_CHARS - longest]
        for secret in self._secrets:
            value = value.replace(secret, KEY_MARKER)
        value = _BEARER.sub(BEARER_MARKER, value)
        value = _SK_TOKEN.sub(KEY_MARKER, value)
        if len(value) > limit:
            value = value[: max(0, limit - 1)] + "…"
        return value

    def optional(self, value: object, limit: int = MAX_TEXT_CHARS) -> str | None:
        """A redacted string, or None for anything that is not a non-empty string."""
        if not isinstance(value, str) or not value:
            return None
        return self.text(value, limit)

    def data(self, value: object, depth: int = 0) -> object:
        """A JSON-like value (error details) with every string redacted and its size bounded:
        at most 50 items per list or mapping, 4 levels deep; other types become None."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else None
        if depth >= _MAX_DEPTH:
            return None
        if isinstance(value, Mapping):
            return {
                self.text(str(k), 200): self.data(v, depth + 1)
                for k, v in itertools.islice(value.items(), _MAX_ITEMS)
            }
        if isinstance(value, list | tuple):
            return [self.data(v, depth + 1) for v in value[:_MAX_ITEMS]]
        return None
