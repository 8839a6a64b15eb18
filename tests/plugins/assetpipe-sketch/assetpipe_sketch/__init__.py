"""assetpipe-sketch: a provider with its own model, option and price, drawn locally.

It shows the three things a provider owns: a model table (``models.toml``, parsed with
``pipeline.catalog.parse_catalog``), the ``options:`` it takes (``strokes``), and how a
request is worded on its wire (``sketch/draw`` with ``size``, ``quality``, ``strokes``).
"""

from __future__ import annotations

import hashlib
import io
import random
from functools import cache
from importlib import resources
from typing import Annotated

from PIL import Image, ImageDraw
from pydantic import BaseModel, ConfigDict, Field

from pipeline.catalog import Catalog, parse_catalog
from pipeline.jobs import ImageRequest, ImageResult, ProviderFailure
from pipeline.jobs.wire import CannotWord, RequestSettings, WireRequest
from pipeline.providers.registry import ProviderEntry, ProviderOptions

DEFAULT_STROKES = 24


class SketchOptions(BaseModel):
    """``options:`` of an asset built with the sketch provider."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    strokes: Annotated[int, Field(ge=1, le=64)] = DEFAULT_STROKES
    """How many strokes the sketch has."""


class SketchFormat:
    """How the sketch provider words a request."""

    options = SketchOptions

    def wire(self, settings: RequestSettings) -> WireRequest:
        if settings.kind != "generate":
            raise CannotWord("it only generates", "remove 'edit:' and 'reference:'")
        return WireRequest(
            "sketch/draw",
            {
                "size": f"{settings.width}x{settings.height}",
                "quality": settings.quality,
                "strokes": int(settings.options.get("strokes", DEFAULT_STROKES)),
            },
        )


class SketchProvider:
    """Draws the strokes: seeded by the prompt, so one request is always one image."""

    name = "sketch"

    async def generate(self, request: ImageRequest) -> ImageResult:
        if request.endpoint != "generate":
            raise ProviderFailure("invalid_request", "sketch only generates images")
        width, height = (int(n) for n in str(request.params["size"]).split("x"))
        strokes = int(request.params["strokes"])
        seed = hashlib.sha256(request.prompt.encode("utf-8")).digest()
        rnd = random.Random(seed)
        image = Image.new("RGB", (width, height), "white")
        draw = ImageDraw.Draw(image)
        for _ in range(strokes):
            points = [(rnd.randrange(width), rnd.randrange(height)) for _ in range(2)]
            draw.line(points, fill=(20, 20, 20), width=3)
        out = io.BytesIO()
        image.save(out, "PNG")
        return ImageResult(data=out.getvalue(), output_format="png", size=f"{width}x{height}")

    async def aclose(self) -> None:
        return None


@cache
def sketch_models() -> Catalog:
    return parse_catalog(resources.files(__name__).joinpath("models.toml").read_text("utf-8"))


def _make(_options: ProviderOptions) -> SketchProvider:
    return SketchProvider()


ENTRY = ProviderEntry(
    "sketch",
    "strokes drawn locally, priced per image (a plugin)",
    _make,
    models=sketch_models,
    request_format=SketchFormat(),
)
