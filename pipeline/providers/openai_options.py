"""The ``options:`` the OpenAI, Azure and preview providers take on an asset."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class OpenAIOptions(BaseModel):
    """``options:`` on an asset (or in ``defaults:``) for the OpenAI, Azure and preview
    providers: the Images API parameters that assetpipe has no setting of its own for."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    user: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    """An id for the end user the image is made for, which OpenAI uses to spot abuse."""
