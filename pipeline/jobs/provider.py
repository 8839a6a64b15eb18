"""What a provider is asked and what it answers: the contract of every image backend.

An API job becomes an :class:`ImageRequest`; a :class:`Provider` turns it into an
:class:`ImageResult` or raises a classified :class:`ProviderFailure`. These types carry no
SDK, so the runner, the dispatchers and third-party providers (registered through the
``assetpipe.providers`` entry point group) meet here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from pipeline.errors import PipelineError

Endpoint = Literal["generate", "edit"]

ParamValue = str | int
"""Request parameters are plain strings and integers, as they go on the wire."""


@dataclass(frozen=True, slots=True)
class ImageInput:
    """An image sent to an edit: the exact bytes and how to name them on the wire."""

    filename: str
    data: bytes
    mime: str


@dataclass(frozen=True, slots=True)
class ImageRequest:
    """One paid call: everything a provider needs and nothing it must not see.

    ``label`` and ``palette`` only serve the offline preview provider, which draws them;
    real providers ignore both and they are not part of the cache key.
    """

    endpoint: Endpoint
    model: str
    prompt: str
    params: Mapping[str, ParamValue]
    images: tuple[ImageInput, ...] = ()
    mask: ImageInput | None = None
    markup: ImageInput | None = None
    label: str = ""
    palette: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    """What the server said about the account's limits on a response (all optional)."""

    limit_requests: int | None = None
    remaining_requests: int | None = None
    reset_requests_s: float | None = None
    limit_images: int | None = None
    remaining_images: int | None = None
    reset_images_s: float | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage of one call, as the API reports it; the basis of the actual cost."""

    input_text_tokens: int = 0
    input_image_tokens: int = 0
    output_tokens: int = 0
    svg_input_tokens: int = 0
    """Tokens the SVG author read (an SVG's ``svg_usage``, reported apart from the image's)."""
    svg_output_tokens: int = 0
    """Tokens the SVG author wrote, its reasoning included."""

    def as_dict(self) -> dict[str, int]:
        """The manifest's ``usage`` object (the SVG author's figures only for an SVG)."""
        out = {
            "input_text_tokens": self.input_text_tokens,
            "input_image_tokens": self.input_image_tokens,
            "output_tokens": self.output_tokens,
        }
        if self.svg_input_tokens or self.svg_output_tokens:
            out["svg_input_tokens"] = self.svg_input_tokens
            out["svg_output_tokens"] = self.svg_output_tokens
        return out


@dataclass(frozen=True, slots=True)
class ImageResult:
    """The image bytes exactly as the API returned them, plus what it echoed."""

    data: bytes
    output_format: str
    size: str | None = None
    quality: str | None = None
    background: str | None = None
    usage: Usage | None = None
    request_id: str | None = None
    rate: RateLimitInfo | None = None
    notes: tuple[str, ...] = ()
    """Warnings about the answer that did not stop it (say, usage figures that could not be
    used); the runner shows them and records them in the job's checks."""
    batch_id: str | None = None
    """The batch that made it, when it came through the Batch API (the manifest says so)."""


FailureKind = Literal[
    "rate_limit",
    "server",
    "timeout",
    "connection",
    "moderation",
    "invalid_request",
    "auth",
    "permission",
    "not_found",
    "quota",
    "bad_response",
]

RETRYABLE_KINDS: frozenset[str] = frozenset(
    {"rate_limit", "server", "timeout", "connection", "bad_response"}
)
"""Failures worth another attempt; everything else gives the same answer again."""

ACCOUNT_KINDS: frozenset[str] = frozenset({"auth", "permission", "quota"})
"""Failures about the account, not the job: no further job can succeed, so stop starting them."""


class ProviderFailure(PipelineError):
    """A provider call that did not produce an image, classified for the retry policy."""

    def __init__(
        self,
        kind: FailureKind,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        request_id: str | None = None,
        retry_after_s: float | None = None,
        details: Mapping[str, object] | None = None,
        rate: RateLimitInfo | None = None,
        too_large: bool = False,
    ):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.code = code
        self.status = status
        self.request_id = request_id
        self.retry_after_s = retry_after_s
        self.details = dict(details or {})
        self.rate = rate
        self.too_large = too_large
        """An answer over one of assetpipe's caps (the body, the image, the SVG): the model
        that made it makes as much again, and the answer was probably billed, so it is
        never retried."""
        self.attempts = 1

    @property
    def retryable(self) -> bool:
        """Whether trying the same request again can succeed."""
        return self.kind in RETRYABLE_KINDS and not self.too_large


class Provider(Protocol):
    """The one small interface every image backend implements."""

    name: str

    async def generate(self, request: ImageRequest) -> ImageResult:
        """Run one request; raise :class:`ProviderFailure` when no image came back."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
