"""The provider of a build started by the review page: the settings' own, streaming previews.

A reroll from the page passes ``--partials-fd N``; its build then makes each image with
:class:`PreviewingProvider`, which asks the provider underneath for
``review.partial_images`` previews (when it can stream) and writes them to the pipe
(:mod:`~pipeline.api.partials`). Every image the build pays for is asked for this way, a
generation or an edit alike: which of them can stream (not an SVG or a GIF) is the
provider's to know. What it returns is the provider's final image alone, and the request
it passes on is the one the cache key was made from, so the cache and the output tree
hold exactly what they would without previews.
"""

from __future__ import annotations

import asyncio

from pipeline.api.partials import PreviewPipe, Streaming
from pipeline.api.routes import DeferredProvider
from pipeline.jobs import ImageRequest, ImageResult, Provider
from pipeline.settings import Settings


class PreviewingProvider:
    """The settings' provider, asked to stream ``count`` previews of each image it makes
    (when it can) and to hand them to ``pipe``; its results are the final images alone.

    The provider underneath is made on the first request, as a build's always is, and
    made again after it was closed (a quality gate's rerolls run on after the first
    round closed it)."""

    def __init__(self, settings: Settings, count: int, pipe: PreviewPipe):
        self.name = settings.provider
        self.count = count
        self.pipe = pipe
        self._settings = settings
        self._inner: DeferredProvider | None = None

    async def generate(self, request: ImageRequest) -> ImageResult:
        """Make the image, streaming previews to the pipe when the provider can."""
        if self._inner is None:
            self._inner = DeferredProvider(self._settings)
        made = await self._inner.make()
        if self.count > 0 and isinstance(made, Streaming):
            result = await made.generate_streaming(request, self.count, self.pipe.send)
            await asyncio.to_thread(self.pipe.drain)  # the previews arrive before the image
            return result
        return await made.generate(request)

    async def aclose(self) -> None:
        """Close the provider underneath (the pipe stays open for the rest of the build)."""
        inner, self._inner = self._inner, None
        if inner is not None:
            await inner.aclose()


def previewing_provider(settings: Settings, fd: int | None) -> Provider | None:
    """The provider of a build that sends its previews to pipe ``fd`` (None: no pipe, the
    build's usual provider)."""
    if fd is None:
        return None
    return PreviewingProvider(settings, settings.review_partial_images, PreviewPipe.open(fd))
