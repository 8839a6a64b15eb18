"""Animated GIFs from the API: bounded before decoding, delivered as they came, and
split into frames.

A GIF is delivered byte for byte (it is what the API signed), and a game wants its
frames as separate images (and packed into a sheet): :func:`frames` decodes each one
to RGBA, composited as a player shows it. The header is read first and nothing is
decoded when it claims more than :data:`MAX_FRAMES` frames or more pixels than an API
image may have, so a crafted GIF cannot make the build decode thousands of frames.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Final

from PIL import Image, ImageSequence, UnidentifiedImageError

from pipeline.errors import PipelineError

MAX_FRAMES: Final = 16
"""The most frames the API makes (``frame_count`` is 2-16); a GIF with more is refused."""
MAX_GIF_PIXELS: Final = 4096 * 4096
"""Largest frame accepted (the bound on any API image)."""


class GifError(PipelineError):
    """Bytes that should be an animated GIF but cannot be used as one."""


@dataclass(frozen=True, slots=True)
class GifInfo:
    """What a GIF's header says: its size, frame count and each frame's duration."""

    width: int
    height: int
    frames: int
    durations_ms: tuple[int, ...]


def is_gif(data: bytes) -> bool:
    """Whether ``data`` starts as a GIF file."""
    return data[:6] in (b"GIF87a", b"GIF89a")


def inspect(data: bytes) -> GifInfo:
    """The GIF's size, frame count and durations, from its headers; :class:`GifError`
    when it is not a GIF, is too large, or has more than :data:`MAX_FRAMES` frames."""
    image = _open(data)
    try:
        count = int(getattr(image, "n_frames", 1))
        if count > MAX_FRAMES:
            raise GifError(f"the GIF has {count} frames; at most {MAX_FRAMES} are accepted")
        durations = []
        for index in range(count):
            image.seek(index)
            durations.append(int(image.info.get("duration", 0)))
        return GifInfo(image.width, image.height, count, tuple(durations))
    except (OSError, EOFError, ValueError) as exc:
        raise GifError(f"cannot read the GIF: {exc}") from None
    finally:
        image.close()


def deliver_gif(data: bytes, size: tuple[int, int], notes: list[str]) -> tuple[bytes, Image.Image]:
    """The delivered file of an API GIF: its own bytes (never re-encoded), and its first
    frame's pixels for the checks; a size other than ``size`` is noted, not cropped (a
    crop would re-encode every frame and drop what the API signed)."""
    info = inspect(data)
    if (info.width, info.height) != size:
        notes.append(
            f"the GIF is {info.width}x{info.height}, not the {size[0]}x{size[1]} asked for; "
            "delivered as it is"
        )
    return data, frame(data, 0)


def frames(data: bytes) -> list[Image.Image]:
    """Every frame as RGBA pixels, in order (checked by :func:`inspect` first)."""
    inspect(data)
    image = _open(data)
    try:
        return [frame.convert("RGBA") for frame in ImageSequence.Iterator(image)]
    except (OSError, EOFError, ValueError) as exc:
        raise GifError(f"cannot decode the GIF's frames: {exc}") from None
    finally:
        image.close()


def frame(data: bytes, index: int) -> Image.Image:
    """Frame ``index`` (0-based) as RGBA pixels; :class:`GifError` when it has no such frame."""
    found = frames(data)
    if not 0 <= index < len(found):
        raise GifError(f"the GIF has {len(found)} frames, not a frame {index + 1}")
    return found[index]


def _open(data: bytes) -> Image.Image:
    """The GIF opened (header only) after its size is checked."""
    if not is_gif(data):
        raise GifError(f"not a GIF ({len(data)} bytes, starting {data[:12]!r})")
    try:
        image = Image.open(io.BytesIO(data), formats=["GIF"])
    except UnidentifiedImageError:  # Pillow's message names a BytesIO object: say ours
        raise GifError(
            f"cannot read the GIF ({len(data)} bytes): it starts as a GIF but is damaged"
        ) from None
    except (OSError, Image.DecompressionBombError) as exc:
        raise GifError(f"cannot read the GIF: {exc}") from None
    if image.width * image.height > MAX_GIF_PIXELS:
        image.close()
        raise GifError(
            f"the GIF claims {image.width}x{image.height} pixels, more than assetpipe decodes"
        )
    return image
