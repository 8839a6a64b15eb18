"""The offline preview provider: deterministic placeholders that honour the request."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Mapping

import pytest
from PIL import Image

from pipeline.jobs import (
    ImageInput,
    ImageRequest,
    ImageResult,
    ParamValue,
    Provider,
    ProviderFailure,
)
from pipeline.postprocess import ImageInfo, probe
from pipeline.providers.preview import PreviewProvider

PALETTE = ("#E4572E", "#29335C", "#F3A712")


def request(
    params: Mapping[str, ParamValue] | None = None,
    *,
    label: str = "icon-sword-common",
    prompt: str = "A flat vector sword icon with a thick outline on a plain background",
    palette: tuple[str, ...] = PALETTE,
) -> ImageRequest:
    """A generate request as the planner would build it (256x256 unless told otherwise)."""
    return ImageRequest(
        endpoint="generate",
        model="gpt-image-2.5-flare",
        prompt=prompt,
        params={"size": "256x256"} if params is None else params,
        label=label,
        palette=palette,
    )


def edit(image: bytes | None, params: Mapping[str, ParamValue] | None = None) -> ImageRequest:
    """An edit request whose first input image is ``image`` (none when None)."""
    images = () if image is None else (ImageInput("base.png", image, "image/png"),)
    return ImageRequest(
        endpoint="edit",
        model="gpt-image-2.5-flare",
        prompt="The same hero in winter armor",
        params={"size": "256x256"} if params is None else params,
        images=images,
        label="hero-winter",
        palette=("#808080",),
    )


def run(req: ImageRequest) -> ImageResult:
    """Run one request through a fresh provider, closing it afterwards."""

    async def go() -> ImageResult:
        provider = PreviewProvider()
        try:
            return await provider.generate(req)
        finally:
            await provider.aclose()

    return asyncio.run(go())


def fail(req: ImageRequest) -> ProviderFailure:
    """Run a request that must fail and return the failure."""
    with pytest.raises(ProviderFailure) as caught:
        run(req)
    return caught.value


def pixels(data: bytes) -> Image.Image:
    """Decode an image the provider returned."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def px(image: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    """The pixel at ``xy`` as a tuple of band values (RGB or RGBA images only)."""
    value = image.getpixel(xy)
    assert isinstance(value, tuple)
    return value


def solid_png(color: tuple[int, int, int], size: tuple[int, int] = (64, 64)) -> bytes:
    """A one-colour png, as an edit's input image."""
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def test_preview_is_a_provider_named_preview() -> None:
    """PreviewProvider satisfies the Provider protocol under the name 'preview'."""
    provider: Provider = PreviewProvider()
    assert provider.name == "preview"
    assert asyncio.run(provider.aclose()) is None


def test_same_request_gives_identical_bytes() -> None:
    """The preview is deterministic: one request, the same bytes every time."""
    assert run(request()).data == run(request()).data


def test_different_assets_give_different_images() -> None:
    """The label is drawn, so two assets never share a placeholder."""
    assert run(request(label="icon-sword")).data != run(request(label="icon-shield")).data


def test_result_echoes_what_the_api_would() -> None:
    """Format, size, quality and background are echoed; there is no usage or request id."""
    result = run(request({"size": "256x256", "quality": "high"}))
    assert (result.output_format, result.size, result.quality, result.background) == (
        "png",
        "256x256",
        "high",
        "opaque",
    )
    assert (result.usage, result.request_id, result.rate) == (None, None, None)


@pytest.mark.parametrize("quality", [None, "auto"])
def test_quality_defaults_to_medium(quality: str | None) -> None:
    """Like the API, an unset or 'auto' quality is echoed as a concrete value: medium."""
    params: dict[str, ParamValue] = {"size": "64x64"}
    if quality is not None:
        params["quality"] = quality
    assert run(request(params)).quality == "medium"


@pytest.mark.parametrize("size", ["1x1", "16x16", "1536x1024", "1024x1536", "3840x2160"])
def test_size_is_honoured(size: str) -> None:
    """The image has exactly the requested pixels, and the result says so."""
    result = run(request({"size": size, "output_format": "jpeg"}))
    width, height = (int(side) for side in size.split("x"))
    assert result.size == size
    assert probe(result.data) == ImageInfo(width, height, "jpeg", "RGB", False)


@pytest.mark.parametrize("params", [{"size": "auto"}, {}])
def test_auto_or_missing_size_is_1024_square(params: Mapping[str, ParamValue]) -> None:
    """'auto' (and no size at all) draws 1024x1024, as the API's square default."""
    result = run(request(params))
    assert result.size == "1024x1024"
    assert probe(result.data) == ImageInfo(1024, 1024, "png", "RGB", False)


@pytest.mark.parametrize("fmt", ["png", "webp", "jpeg"])
def test_output_format_is_honoured(fmt: str) -> None:
    """The bytes are in the requested format, which the result echoes."""
    result = run(request({"size": "128x96", "output_format": fmt}))
    assert result.output_format == fmt
    assert probe(result.data) == ImageInfo(128, 96, fmt, "RGB", False)


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_transparent_background_is_really_transparent(fmt: str) -> None:
    """background=transparent: transparent corners around an opaque shape in the middle."""
    result = run(request({"size": "200x160", "output_format": fmt, "background": "transparent"}))
    assert result.background == "transparent"
    assert probe(result.data) == ImageInfo(200, 160, fmt, "RGBA", True)
    image = pixels(result.data)
    assert [px(image, corner)[3] for corner in [(0, 0), (199, 0), (0, 159), (199, 159)]] == [
        0,
        0,
        0,
        0,
    ]
    assert px(image, (100, 30))[3] == 255  # inside the shape, above the text


@pytest.mark.parametrize("background", [None, "opaque", "auto"])
@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_other_backgrounds_are_opaque(fmt: str, background: str | None) -> None:
    """Anything but 'transparent' gives an opaque image (has_alpha False)."""
    params: dict[str, ParamValue] = {"size": "64x64", "output_format": fmt}
    if background is not None:
        params["background"] = background
    result = run(request(params))
    assert result.background == "opaque"
    assert probe(result.data) == ImageInfo(64, 64, fmt, "RGB", False)


def test_palette_is_drawn_as_blocks_along_the_bottom() -> None:
    """The brand colours appear, in order, in the bottom band (png keeps them exact)."""
    image = pixels(run(request({"size": "300x200"})).data)
    assert [px(image, (x, 199)) for x in (10, 150, 290)] == [
        (0xE4, 0x57, 0x2E),
        (0x29, 0x33, 0x5C),
        (0xF3, 0xA7, 0x12),
    ]


def test_malformed_palette_entries_are_ignored() -> None:
    """Colours that are not hex are skipped, not fatal: the image is as if they were absent."""
    with_junk = run(request(palette=("#E4572E", "teal-ish", "#29335C"))).data
    assert with_junk == run(request(palette=("#E4572E", "#29335C"))).data


def test_empty_palette_falls_back_to_neutral_colours() -> None:
    """Without a brand palette the preview still draws, deterministically."""
    first = run(request(palette=()))
    assert first.data == run(request(palette=())).data
    assert probe(first.data) == ImageInfo(256, 256, "png", "RGB", False)


def test_output_compression_sets_lossy_quality() -> None:
    """output_compression is the webp/jpeg quality: lower means a smaller file."""
    low = run(request({"size": "256x256", "output_format": "jpeg", "output_compression": 5}))
    high = run(request({"size": "256x256", "output_format": "jpeg", "output_compression": 100}))
    assert len(low.data) < len(high.data)


@pytest.mark.parametrize(
    "size", ["big", "1024", "0x10", "10x0", "1024x1024x3", " 64x64", "5000x64", 1024]
)
def test_malformed_size_is_an_invalid_request(size: ParamValue) -> None:
    """A size that is not 'WxH' within 1..4096 fails like the API's invalid_value, unretried."""
    failure = fail(request({"size": size}))
    assert (failure.kind, failure.code, failure.details) == (
        "invalid_request",
        "invalid_value",
        {"param": "size"},
    )
    assert failure.retryable is False
    assert str(failure).startswith(f"Invalid size {size!r}")


@pytest.mark.parametrize(
    ("params", "param", "message"),
    [
        ({"output_format": "gif"}, "output_format", r"Invalid output_format 'gif'"),
        ({"output_format": "jpg"}, "output_format", r"Invalid output_format 'jpg'"),
        ({"output_compression": 101}, "output_compression", r"Invalid output_compression 101"),
        ({"output_compression": "90"}, "output_compression", r"Invalid output_compression '90'"),
        (
            {"output_format": "jpeg", "background": "transparent"},
            "background",
            r"Transparent background requires output_format 'png' or 'webp'",
        ),
    ],
)
def test_parameters_the_api_rejects_are_invalid_requests(
    params: dict[str, ParamValue], param: str, message: str
) -> None:
    """The preview rejects what the API would, so offline builds catch the same mistakes."""
    with pytest.raises(ProviderFailure, match=message) as caught:
        run(request({"size": "64x64", **params}))
    assert (caught.value.kind, caught.value.details) == ("invalid_request", {"param": param})


def test_edit_draws_the_input_image_tinted() -> None:
    """An edit starts from its first input: a red input shows through a 35% palette tint."""
    result = run(edit(solid_png((255, 0, 0))))
    expected = Image.blend(
        Image.new("RGB", (1, 1), (255, 0, 0)), Image.new("RGB", (1, 1), (0x80, 0x80, 0x80)), 0.35
    ).getpixel((0, 0))
    assert px(pixels(result.data), (4, 4)) == expected


def test_edit_depends_on_the_input() -> None:
    """Different input images give different edits; the same input gives the same bytes."""
    red = run(edit(solid_png((255, 0, 0)))).data
    blue = run(edit(solid_png((0, 0, 255)))).data
    assert red != blue
    assert red == run(edit(solid_png((255, 0, 0)))).data


def test_edit_is_labelled_edit() -> None:
    """An edit is drawn differently from a generate with the same text (its 'edit' tag)."""
    source = solid_png((90, 90, 90), (256, 256))
    as_edit = run(edit(source))
    as_generate = run(
        ImageRequest(
            endpoint="generate",
            model="gpt-image-2.5-flare",
            prompt="The same hero in winter armor",
            params={"size": "256x256"},
            label="hero-winter",
            palette=("#808080",),
        )
    )
    assert as_edit.data != as_generate.data


def test_transparent_edit_keeps_transparent_corners() -> None:
    """A transparent edit draws the input inside the shape, leaving the corners clear."""
    result = run(edit(solid_png((255, 0, 0)), {"size": "128x128", "background": "transparent"}))
    assert probe(result.data) == ImageInfo(128, 128, "png", "RGBA", True)
    assert px(pixels(result.data), (0, 0))[3] == 0


def test_edit_without_input_is_an_invalid_request() -> None:
    """An edit needs an image to edit."""
    with pytest.raises(ProviderFailure, match=r"An edit needs at least one input image"):
        run(edit(None))


def test_edit_with_undecodable_input_is_an_invalid_request() -> None:
    """Input bytes that are not an image fail as invalid_request, naming the file."""
    failure = fail(edit(b"not a png"))
    assert failure.kind == "invalid_request"
    assert failure.message.startswith("Could not decode input image 'base.png'")


def test_concurrent_requests_all_complete() -> None:
    """Several requests in flight at once (drawn in worker threads) each get their image."""

    async def go() -> list[ImageResult]:
        provider = PreviewProvider()
        sizes = ["64x64", "96x64", "64x96", "128x128"]
        return await asyncio.gather(*(provider.generate(request({"size": s})) for s in sizes))

    results = asyncio.run(go())
    assert [r.size for r in results] == ["64x64", "96x64", "64x96", "128x128"]
    assert [probe(r.data).size for r in results] == [(64, 64), (96, 64), (64, 96), (128, 128)]
