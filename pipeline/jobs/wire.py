"""How a provider words a request: assetpipe's settings in, the provider's call out.

The planner resolves an asset's settings in assetpipe's own terms (a size, a quality, a
background, a format, and the ``options:`` the provider declares) and hands them to the
chosen provider's :class:`RequestFormat`, which returns what goes on the wire: the name
of its call and its parameters. That pair is what the cache key hashes, so a provider
that adds a parameter, or a backend with parameters of its own (a local diffusion model's
``steps``), changes nothing in the planner, the runner or the keys of other providers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pipeline.jobs.provider import Endpoint, ParamValue

if TYPE_CHECKING:  # `assetpipe --help` lists providers without loading pydantic
    from pydantic import BaseModel


@dataclass(frozen=True, slots=True)
class RequestSettings:
    """An API job's settings in assetpipe's terms, checked against the model's rules."""

    kind: Endpoint
    width: int
    height: int
    quality: str
    background: str
    format: str
    compression: int | None = None
    moderation: str | None = None
    input_fidelity: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    """The asset's ``options:`` after the provider's options model validated them (fields
    left unset are absent, so a new optional field never changes an existing key)."""
    complexity: str | None = None
    """How much the model plans the image (``low``, ``medium``, ``high``); None: unset,
    and absent from the request so existing keys stay put."""
    frames: int | None = None
    """The frame count of an animated (``gif``) image; None for every other format."""
    frame_ms: int | None = None
    """How long each frame shows, in milliseconds; None: the provider's default."""


@dataclass(frozen=True, slots=True)
class WireRequest:
    """A request as the provider sends it: hashed into the cache key as it is."""

    endpoint: str
    """The provider's name for the call (``images/generations`` on OpenAI)."""
    params: Mapping[str, ParamValue]


class CannotWord(ValueError):
    """Raised by :meth:`RequestFormat.wire` for settings the provider cannot send (an
    edit to a provider that only generates): the planner reports it at the asset, with
    ``hint`` saying what would work, before anything is paid for."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


class RequestFormat(Protocol):
    """A provider's request wording; lives with the provider, used by the planner."""

    @property
    def options(self) -> type[BaseModel] | None:
        """The model a spec's ``options:`` mapping is validated against (None: the
        provider takes no options, and a spec that gives some is told so)."""
        ...

    def wire(self, settings: RequestSettings) -> WireRequest:
        """The call and parameters for ``settings``: pure, no I/O."""
        ...
