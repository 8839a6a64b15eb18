"""Partial previews (``partial_images``): the OpenAI provider's streamed generate and edit,
with the real SDK against the fake Images API streaming server-sent events."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
from collections.abc import AsyncIterator

import openai
import pytest
from fakeapi import FakeImagesAPI
from PIL import Image

from pipeline.jobs import ImageInput, ImageRequest, ImageResult, ProviderFailure
from pipeline.providers.openai_http import CappedAsyncClient
from pipeline.providers.openai_provider import OpenAIProvider
from pipeline.providers.openai_stream import streamed_result
from pipeline.providers.redaction import Redactor


def png(color: str, size: tuple[int, int] = (1024, 1024)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


FOX = png("orange")
GENERATE = ImageRequest(
    endpoint="generate",
    model="gpt-image-2.5-flare",
    prompt="a red fox",
    params={"size": "1024x1024", "quality": "low", "output_format": "png", "n": 1},
)
EDIT = ImageRequest(
    endpoint="edit",
    model="gpt-image-2.5-flare",
    prompt="the fox in winter",
    params={
        "size": "1024x1024",
        "quality": "low",
        "output_format": "png",
        "moderation": "low",
        "n": 1,
    },
    images=(ImageInput("fox.png", FOX, "image/png"),),
)
NO_CAP = 64 * 1024 * 1024

Partials = list[tuple[int, bytes]]


def provider_on(api: FakeImagesAPI, cap: int = NO_CAP) -> OpenAIProvider:
    """The OpenAI provider on the fake, its client capping each body (and each streamed
    event) at ``cap`` bytes."""
    client = openai.AsyncOpenAI(
        base_url=api.base_url,
        api_key="sk-test-key",
        max_retries=0,
        timeout=30.0,
        http_client=CappedAsyncClient(max_body_bytes=cap),
    )
    return OpenAIProvider(client)


def streamed(
    api: FakeImagesAPI, request: ImageRequest, n: int, *, cap: int = NO_CAP
) -> tuple[Partials, ImageResult | ProviderFailure]:
    """The partials the callback got, in order, and the final result (or the failure) of
    one streamed call of ``request`` asking for ``n`` partials."""
    provider = provider_on(api, cap)
    got: Partials = []

    async def go() -> ImageResult | ProviderFailure:
        try:
            return await provider.generate_streaming(
                request, n, lambda index, data: got.append((index, data))
            )
        except ProviderFailure as failure:
            return failure
        finally:
            await provider.aclose()

    return got, asyncio.run(go())


def made(outcome: tuple[Partials, ImageResult | ProviderFailure]) -> tuple[Partials, ImageResult]:
    got, result = outcome
    assert isinstance(result, ImageResult), result
    return got, result


def failed(
    outcome: tuple[Partials, ImageResult | ProviderFailure],
) -> tuple[Partials, ProviderFailure]:
    got, result = outcome
    assert isinstance(result, ProviderFailure), "the stream was accepted"
    return got, result


def assert_previews_then_final(got: Partials, result: ImageResult, n: int) -> None:
    """``n`` real PNG previews with indexes 0..n-1, none equal to the final, which is a
    1024x1024 PNG with its usage, as an unstreamed call returns it."""
    assert [index for index, _ in got] == list(range(n))
    for _, data in got:
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "PNG"
        assert data != result.data
    with Image.open(io.BytesIO(result.data)) as final:
        assert (final.format, final.size) == ("PNG", (1024, 1024))
    assert result.output_format == "png"
    assert result.usage is not None
    assert result.usage.output_tokens > 0


@pytest.mark.parametrize("n", [1, 2, 3])
def test_the_provider_streams_n_partials_then_returns_the_final_image(api, n):
    """The request says stream and partial_images=N; the callback gets N real images with
    indexes 0..N-1, none equal to the final, which comes back with its usage as an
    unstreamed generate returns it; one image is billed."""
    got, result = made(streamed(api, GENERATE, n))
    (request,) = api.requests
    assert request.fields["stream"] is True
    assert request.fields["partial_images"] == n
    assert_previews_then_final(got, result, n)
    assert api.billed_images == 1


def test_an_edit_streams_its_partials_then_returns_the_final_image(api):
    """An edit streams as a generation does: the multipart request is the plain edit's
    (same fields, same uploaded image) plus stream and partial_images; the callback gets
    2 previews of the edit, then the final image comes back with the input image's
    tokens in its usage; one image is billed per call."""
    got, result = made(streamed(api, EDIT, 2))
    plain = provider_on(api)

    async def unstreamed() -> ImageResult:
        try:
            return await plain.generate(EDIT)
        finally:
            await plain.aclose()

    asyncio.run(unstreamed())
    streamed_request, plain_request = api.requests
    assert streamed_request.endpoint == "edits"
    assert (streamed_request.fields["stream"], streamed_request.fields["partial_images"]) == (
        "true",
        "2",
    )
    extra = {"stream", "partial_images"}
    assert {k: v for k, v in streamed_request.fields.items() if k not in extra} == (
        plain_request.fields
    )
    assert streamed_request.fields["moderation"] == "low"
    assert streamed_request.image_sha256 == [hashlib.sha256(FOX).hexdigest()]
    assert plain_request.image_sha256 == streamed_request.image_sha256
    assert_previews_then_final(got, result, 2)
    assert result.usage is not None
    assert result.usage.input_image_tokens > 0
    assert api.billed_images == 2


@pytest.mark.parametrize(
    ("request_", "magic"),
    [
        (
            ImageRequest(
                endpoint="generate",
                model="gpt-image-2.6-flare",
                prompt="a shield icon",
                params={"size": "1024x1024", "output_format": "svg", "n": 1},
            ),
            b"<svg",
        ),
        (
            ImageRequest(
                endpoint="edit",
                model="gpt-image-2.6-flare",
                prompt="the fox, running",
                params={"size": "1024x1024", "output_format": "gif", "n": 1},
                images=(ImageInput("fox.png", FOX, "image/png"),),
            ),
            b"GIF8",
        ),
    ],
    ids=["svg generation", "gif edit"],
)
def test_an_svg_or_a_gif_is_never_streamed(api, request_, magic):
    """SVG and GIF cannot stream, generated or edited: the streamed call sends a plain
    request and passes on no preview."""
    got, result = made(streamed(api, request_, 2))
    assert result.data.startswith(magic)
    assert got == []
    assert "stream" not in api.requests[0].fields


BOTH = pytest.mark.parametrize("request_", [GENERATE, EDIT], ids=["generation", "edit"])


@BOTH
def test_an_event_that_never_ends_is_refused_at_the_cap(api, request_):
    """A hostile server sends one event of 64 MiB with no end: the client stops reading
    it at the 1 MiB cap (the SDK never holds more), and the failure is a bad_response
    that is never retried."""
    api.configure(bomb_bytes=64 * 1024 * 1024)
    api.stream_hostile = "huge_event"
    got, failure = failed(streamed(api, request_, 2, cap=1024 * 1024))
    assert got == []
    assert (failure.kind, failure.too_large) == ("bad_response", True)
    assert failure.message == (
        "an event of the streamed answer is longer than 1 MiB; "
        "no image answer is that large, so it was not read"
    )


def test_events_each_under_the_cap_pass_whatever_the_total(api):
    """The cap is per event: two partials and the final image, each under it, add up to
    more than it and still arrive."""
    ok, result = made(streamed(api, GENERATE, 2))
    sizes = [len(data) for _, data in ok] + [len(result.data)]
    cap = max(sizes) * 2  # base64 and JSON make an event about 4/3 of its image
    assert sum(sizes) * 4 // 3 > cap
    got, final = made(streamed(api, GENERATE, 2, cap=cap))
    assert [index for index, _ in got] == [0, 1]
    assert final.output_format == "png"


@BOTH
def test_an_error_event_in_the_stream_is_a_provider_failure(api, request_):
    """An ``error`` the stream reports (the SDK raises APIError) is a ProviderFailure the
    retry policy can classify, not a crash."""
    api.stream_hostile = "error_event"
    _, failure = failed(streamed(api, request_, 2))
    assert failure.kind == "server"
    assert failure.message == "the stream reported an error: the image could not be made"


@BOTH
def test_an_event_that_is_not_json_is_a_bad_response(api, request_):
    """An event whose data is not JSON ends the stream as a ``bad_response`` (retried
    once, as any malformed answer), with no preview passed on."""
    api.stream_hostile = "not_json"
    got, failure = failed(streamed(api, request_, 2))
    assert got == []
    assert (failure.kind, failure.message) == (
        "bad_response",
        "the stream sent an event that is not JSON",
    )


def test_events_of_the_other_family_are_not_the_answer():
    """The reader of an edit's stream takes only ``image_edit.*`` events: a stream of
    ``image_generation.*`` events gives it no preview and no image (a ``bad_response``),
    and the same events read as a generation's give both."""
    preview, final = png("white", (8, 8)), png("black", (8, 8))

    async def events() -> AsyncIterator[dict[str, object]]:
        yield {"type": "image_generation.partial_image", "b64_json": b64(preview)}
        yield {"type": "image_generation.completed", "b64_json": b64(final)}

    def read(family: str) -> tuple[Partials, ImageResult | ProviderFailure]:
        got: Partials = []

        async def go() -> ImageResult | ProviderFailure:
            try:
                return await streamed_result(
                    events(),
                    family=family,
                    partial_images=1,
                    on_partial=lambda index, data: got.append((index, data)),
                    default_format="png",
                    redact=Redactor([]),
                    max_image_bytes=NO_CAP,
                )
            except ProviderFailure as failure:
                return failure

        return got, asyncio.run(go())

    got, failure = failed(read("image_edit"))
    assert got == []
    assert failure.message == "the stream ended without the final image"
    got, result = made(read("image_generation"))
    assert (got, result.data) == ([(0, preview)], final)
