"""The ``options:`` the OpenAI, Azure and preview providers take on an asset."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

SvgEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]


class SvgOptions(BaseModel):
    """``svg:`` among the options of a ``format: svg`` asset: which model authors the SVG
    and how hard it reasons. The API takes them only where the organisation may choose
    the author model, and then needs ``model``; without this option the API's default
    author is used."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: Annotated[str, Field(min_length=1, max_length=100)]
    """The SVG author model (the API requires it whenever ``svg`` is sent)."""
    effort: SvgEffort | None = None
    """How much the author reasons; None: the author model's default."""


class OpenAIOptions(BaseModel):
    """``options:`` on an asset (or in ``defaults:``) for the OpenAI, Azure and preview
    providers: the Images API parameters that assetpipe has no setting of its own for."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    user: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    """An id for the end user the image is made for, which OpenAI uses to spot abuse."""
    svg: SvgOptions | None = None
    """The SVG author and its reasoning effort (``format: svg`` only)."""
