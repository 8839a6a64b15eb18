"""Provider-neutral types shared by the planner, the providers and the runner.

A :class:`Job` is one node of the plan. API jobs (``generate``/``edit``) turn an
:class:`ImageRequest` into an :class:`ImageResult` through a :class:`Provider`; local
``rendition`` jobs derive files from a delivered image. Keeping these types free of any
SDK means the planner can be tested with plain data and a provider is just a plugin.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from pipeline.errors import PipelineError

JobKind = Literal["generate", "edit", "rendition", "sheet"]
Endpoint = Literal["generate", "edit"]
Fit = Literal["cover", "contain", "stretch"]

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

    def as_dict(self) -> dict[str, int]:
        """The manifest's ``usage`` object."""
        return {
            "input_text_tokens": self.input_text_tokens,
            "input_image_tokens": self.input_image_tokens,
            "output_tokens": self.output_tokens,
        }


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
        self.attempts = 1

    @property
    def retryable(self) -> bool:
        """Whether trying the same request again can succeed."""
        return self.kind in RETRYABLE_KINDS


class Provider(Protocol):
    """The one small interface every image backend implements."""

    name: str

    async def generate(self, request: ImageRequest) -> ImageResult:
        """Run one request; raise :class:`ProviderFailure` when no image came back."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


@dataclass(frozen=True, slots=True)
class InputRef:
    """An input image of an edit: another job's delivered file, or a file in the project."""

    job: str | None = None
    path: str | None = None
    sha256: str | None = None
    width: int = 0
    height: int = 0
    format: str = ""
    bytes: int | None = None
    """Known for project files; None for another job's output (made during the build)."""


@dataclass(frozen=True, slots=True)
class RenditionOp:
    """How a rendition derives from its source image."""

    width: int
    height: int
    fit: Fit
    format: str
    compression: int | None

    def as_dict(self) -> dict[str, ParamValue]:
        """The operation as hashed into the rendition's cache key."""
        out: dict[str, ParamValue] = {
            "width": self.width,
            "height": self.height,
            "fit": self.fit,
            "format": self.format,
        }
        if self.compression is not None:
            out["compression"] = self.compression
        return out


@dataclass(frozen=True, slots=True)
class Job:
    """One node of the plan.

    ``cache_key`` is None while it depends on bytes not produced yet (an edit of another
    asset, a rendition); the runner computes it once those inputs exist.
    """

    id: str
    kind: JobKind
    collection: str
    asset: str
    variant: int
    model: str
    provider: str
    prompt: str
    params: Mapping[str, ParamValue]
    size: tuple[int, int]
    requested_size: tuple[int, int]
    output_path: str
    source: str
    depends_on: tuple[str, ...] = ()
    inputs: tuple[InputRef, ...] = ()
    mask: InputRef | None = None
    cache_key: str | None = None
    estimated_cost_usd: float = 0.0
    rendition: RenditionOp | None = None
    palette: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    extra: Mapping[str, object] = field(default_factory=dict)

    @property
    def is_api(self) -> bool:
        """Whether running this job is a paid provider call."""
        return self.kind in ("generate", "edit")

    @property
    def format(self) -> str:
        """The delivered file format."""
        if self.rendition is not None:
            return self.rendition.format
        if self.kind == "sheet":
            return str(self.params["format"])
        return str(self.params.get("output_format", "png"))
