"""The fake Images API speaks the real wire format: proven with the real openai SDK."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import random
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from fakeapi import FakeImagesAPI
from PIL import Image

FAKEAPI_SCRIPT = Path(__file__).with_name("fakeapi.py")


class FrozenClock:
    """A settable wall clock for the rate-limit windows."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def api() -> Iterator[FakeImagesAPI]:
    with FakeImagesAPI() as fake:
        yield fake


@pytest.fixture
def client(api: FakeImagesAPI) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=api.base_url, api_key="sk-test", max_retries=0) as sdk:
        yield sdk


def encode_png(size: tuple[int, int], color: Any = "red", mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, "PNG")
    return buffer.getvalue()


def decode(b64: str | None) -> Image.Image:
    assert b64 is not None
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def generate(client: openai.OpenAI, **kwargs: Any) -> Any:
    kwargs.setdefault("model", "gpt-image-2.5-flare")
    kwargs.setdefault("prompt", "a red fox")
    return client.images.generate(**kwargs)


# --- success ------------------------------------------------------------------------------


def test_generation_returns_requested_image_with_echoes_and_usage(
    api: FakeImagesAPI, client: openai.OpenAI
) -> None:
    """A generation returns n decodable images in the requested size and format, echoes the
    resolved settings, reports usage from prompt length, quality and area, and bills n."""
    response = generate(
        client,
        prompt="a red fox in snow",  # 17 chars -> 4 text tokens
        size="1536x864",
        quality="high",
        output_format="webp",
        background="transparent",
        n=2,
    )

    assert response.size == "1536x864"
    assert response.quality == "high"
    assert response.background == "transparent"
    assert response.output_format == "webp"
    assert len(response.data) == 2
    for item in response.data:
        image = decode(item.b64_json)
        assert (image.format, image.size, image.mode) == ("WEBP", (1536, 864), "RGBA")
        assert image.getpixel((0, 0)) == (0, 0, 0, 0)  # really transparent
        assert image.getpixel((768, 432))[3] == 255  # an opaque subject in the middle
    # 7000 tokens per 1024x1024 at high, times 1536*864/1024**2 = 1.265625 -> 8859 per image.
    assert response.usage.model_dump() == {
        "input_tokens": 4,
        "input_tokens_details": {"text_tokens": 4, "image_tokens": 0},
        "output_tokens": 17718,
        "total_tokens": 17722,
        "output_tokens_details": {"image_tokens": 17718, "text_tokens": 0},
    }
    assert api.billed_images == 2
    record = api.requests[0]
    assert record.fields == {
        "model": "gpt-image-2.5-flare",
        "prompt": "a red fox in snow",
        "size": "1536x864",
        "quality": "high",
        "output_format": "webp",
        "background": "transparent",
        "n": 2,
    }
    assert (record.endpoint, record.status, record.n, record.billed) == ("generations", 200, 2, 2)
    assert record.auth == "Bearer sk-test"
    assert record.api_key == "sk-test"
    assert "authorization" not in record.headers


def test_generation_resolves_auto_values_like_the_api(
    api: FakeImagesAPI, client: openai.OpenAI
) -> None:
    """Omitted size, quality, background and format resolve to 1024x1024, medium, opaque
    and png, and the SDK sends only the parameters that were set."""
    response = generate(client, model="gpt-image-2", prompt="abcdefghij")

    assert (response.size, response.quality, response.background, response.output_format) == (
        "1024x1024",
        "medium",
        "opaque",
        "png",
    )
    image = decode(response.data[0].b64_json)
    assert (image.format, image.size, image.mode) == ("PNG", (1024, 1024), "RGB")
    assert response.usage.output_tokens == 1750
    assert response.usage.input_tokens_details.text_tokens == 2
    assert api.requests[0].fields == {"model": "gpt-image-2", "prompt": "abcdefghij"}


def test_jpeg_output_is_a_jpeg(client: openai.OpenAI) -> None:
    """output_format=jpeg returns JPEG bytes of the requested size."""
    response = generate(client, size="1024x1536", output_format="jpeg", output_compression=80)

    image = decode(response.data[0].b64_json)
    assert (image.format, image.size, image.mode) == ("JPEG", (1024, 1536), "RGB")


@pytest.mark.parametrize("output_format", ["png", "webp", "jpeg"])
def test_every_response_has_unique_bytes_but_the_same_picture(
    client: openai.OpenAI, output_format: str
) -> None:
    """Like the real API (C2PA metadata), identical requests never return identical bytes,
    while the picture itself is a pure function of the request."""
    first = generate(client, prompt="same", output_format=output_format, n=2)
    second = generate(client, prompt="same", output_format=output_format)

    payloads = [item.b64_json for item in [*first.data, *second.data]]
    assert len(set(payloads)) == 3
    pictures = {decode(b64).convert("RGB").tobytes() for b64 in payloads}
    assert len(pictures) == 1


def test_response_headers_carry_request_id_and_rate_limits() -> None:
    """Responses carry x-request-id, a correct Content-Length, keep-alive and x-ratelimit-*
    headers: per-minute limits, plus what remains of the current one-second window."""
    clock = FrozenClock(100.25)
    with (
        FakeImagesAPI(images_per_minute=600, clock=clock) as api,
        openai.OpenAI(base_url=api.base_url, api_key="sk-test", max_retries=0) as client,
    ):
        raw = client.images.with_raw_response.generate(model="gpt-image-2", prompt="headers", n=2)
        response = raw.parse()

    headers = raw.headers
    assert re.fullmatch(r"req_[0-9a-f]{32}", headers["x-request-id"])
    assert response._request_id == headers["x-request-id"]
    assert api.requests[0].request_id == headers["x-request-id"]
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(raw.http_response.content)
    assert headers["connection"] == "keep-alive"
    assert {k: v for k, v in headers.items() if k.startswith("x-ratelimit-")} == {
        "x-ratelimit-limit-requests": "10000",
        "x-ratelimit-remaining-requests": "166",  # ceil(10000/60) = 167, one used
        "x-ratelimit-reset-requests": "750ms",
        "x-ratelimit-limit-images": "600",
        "x-ratelimit-remaining-images": "8",  # ceil(600/60) = 10, two used
        "x-ratelimit-reset-images": "750ms",
    }


def test_keep_alive_reuses_one_connection(api: FakeImagesAPI, client: openai.OpenAI) -> None:
    """Sequential SDK calls share one keep-alive TCP connection (framing is correct)."""
    for _ in range(4):
        generate(client, quality="low")

    assert api.connections == 1
    assert api.count(status=200) == 4


# --- edits --------------------------------------------------------------------------------


def test_edit_with_two_images_and_mask_is_parsed(api: FakeImagesAPI, client: openai.OpenAI) -> None:
    """A list of images goes out as repeated image[] fields; the fake records the sha256 and
    size of each upload and of the mask, the text fields, and bills 300 tokens per image."""
    first = encode_png((64, 48), "red")
    second = encode_png((32, 32), "blue")
    mask = encode_png((64, 48), (0, 0, 0, 0), mode="RGBA")

    response = client.images.edit(
        model="gpt-image-2.5-sunburst",
        prompt="winter armor",
        image=[first, ("second.png", second, "image/png")],
        mask=mask,
        size="1024x1024",
        quality="low",
    )

    record = api.requests[0]
    assert record.endpoint == "edits"
    assert record.image_field == "image[]"
    assert record.image_sha256 == [
        hashlib.sha256(first).hexdigest(),
        hashlib.sha256(second).hexdigest(),
    ]
    assert record.image_sizes == [(64, 48), (32, 32)]
    assert record.mask_sha256 == hashlib.sha256(mask).hexdigest()
    assert record.mask_size == (64, 48)
    assert record.fields == {
        "model": "gpt-image-2.5-sunburst",
        "prompt": "winter armor",
        "size": "1024x1024",
        "quality": "low",
    }
    assert response.usage.input_tokens_details.model_dump() == {
        "text_tokens": 3,
        "image_tokens": 600,
    }
    assert response.usage.output_tokens == 200
    assert decode(response.data[0].b64_json).size == (1024, 1024)
    assert api.billed_images == 1


def test_edit_with_one_image_uses_the_image_field(
    api: FakeImagesAPI, client: openai.OpenAI
) -> None:
    """A single image goes out as the plain image field; multipart text fields are strings."""
    photo = encode_png((40, 40))

    response = client.images.edit(
        model="gpt-image-2", prompt="edit", image=photo, n=2, extra_body={"moderation": "low"}
    )

    record = api.requests[0]
    assert record.image_field == "image"
    assert record.image_sha256 == [hashlib.sha256(photo).hexdigest()]
    assert record.mask_sha256 is None
    assert record.fields == {
        "model": "gpt-image-2",
        "prompt": "edit",
        "n": "2",
        "moderation": "low",
    }
    assert len(response.data) == 2
    assert response.usage.input_tokens_details.image_tokens == 300


def test_edit_mask_must_match_the_first_image(api: FakeImagesAPI, client: openai.OpenAI) -> None:
    """A mask whose dimensions differ from the first image is a 400 invalid_value on mask."""
    with pytest.raises(openai.BadRequestError, match="mask dimensions 32x32") as excinfo:
        client.images.edit(
            model="gpt-image-2",
            prompt="edit",
            image=[encode_png((64, 48)), encode_png((32, 32))],
            mask=encode_png((32, 32), (0, 0, 0, 0), mode="RGBA"),
        )

    assert (excinfo.value.code, excinfo.value.param) == ("invalid_value", "mask")
    assert api.billed_images == 0


def test_edit_without_an_image_is_rejected(api: FakeImagesAPI, client: openai.OpenAI) -> None:
    """An edit with no image file is a 400 invalid_value on image."""
    with pytest.raises(openai.BadRequestError, match="'image'") as excinfo:
        client.images.edit(model="gpt-image-2", prompt="edit", image=[])

    assert (excinfo.value.code, excinfo.value.param) == ("invalid_value", "image")


def test_edit_with_an_undecodable_image_is_rejected_but_recorded(
    api: FakeImagesAPI, client: openai.OpenAI
) -> None:
    """An upload that is not png/jpeg/webp is a 400 invalid_value on image; its sha256 is
    still recorded."""
    junk = b"not an image"

    with pytest.raises(openai.BadRequestError, match="Supported file formats are") as excinfo:
        client.images.edit(model="gpt-image-2", prompt="edit", image=junk)

    assert (excinfo.value.code, excinfo.value.param) == ("invalid_value", "image")
    assert api.requests[0].image_sha256 == [hashlib.sha256(junk).hexdigest()]
    assert api.requests[0].image_sizes == [(0, 0)]


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "exception", "status", "code"),
    [
        ("rate_limit", openai.RateLimitError, 429, "rate_limit_exceeded"),
        ("insufficient_quota", openai.RateLimitError, 429, "insufficient_quota"),
        ("unauthorized", openai.AuthenticationError, 401, "invalid_api_key"),
        ("forbidden", openai.PermissionDeniedError, 403, None),
        ("moderation", openai.BadRequestError, 400, "moderation_blocked"),
        ("server_error", openai.InternalServerError, 500, "server_error"),
    ],
)
def test_scripted_faults_map_to_sdk_exceptions(
    api: FakeImagesAPI,
    client: openai.OpenAI,
    kind: str,
    exception: type[openai.APIStatusError],
    status: int,
    code: str | None,
) -> None:
    """Each scripted fault is answered with the status and error code the SDK maps to the
    matching exception; the script is consumed in order and nothing is billed."""
    api.script = [kind, "ok"]

    with pytest.raises(exception) as excinfo:
        generate(client)
    generate(client)  # "ok" lets the next request through

    error = excinfo.value
    assert type(error) is exception
    assert (error.status_code, error.code) == (status, code)
    assert error.request_id == api.requests[0].request_id
    assert api.requests[0].fault == kind
    assert [r.status for r in api.requests] == [status, 200]
    assert api.billed_images == 1
    assert len(api.script) == 0


def test_rate_limit_fault_sends_retry_after(api: FakeImagesAPI, client: openai.OpenAI) -> None:
    """A scripted rate_limit is a 429 rate_limit_exceeded with Retry-After and
    retry-after-ms taken from script_retry_after, and x-ratelimit-remaining-images 0."""
    api.configure(script=["rate_limit"], script_retry_after=3)

    with pytest.raises(openai.RateLimitError, match="images per minute") as excinfo:
        generate(client)

    error = excinfo.value
    assert error.type == "requests"
    assert error.response.headers["retry-after"] == "3"
    assert error.response.headers["retry-after-ms"] == "3000"
    assert error.response.headers["x-ratelimit-remaining-images"] == "0"


def test_insufficient_quota_has_no_retry_after(api: FakeImagesAPI, client: openai.OpenAI) -> None:
    """insufficient_quota is a 429 that needs user action: no Retry-After header."""
    api.script = ["insufficient_quota"]

    with pytest.raises(
        openai.RateLimitError,
        match=re.escape(
            "You exceeded your current quota, please check your plan and billing details."
        ),
    ) as excinfo:
        generate(client)

    assert excinfo.value.type == "insufficient_quota"
    assert "retry-after" not in excinfo.value.response.headers
    assert "retry-after-ms" not in excinfo.value.response.headers


def test_forbidden_names_the_model(api: FakeImagesAPI, client: openai.OpenAI) -> None:
    """The 403 fault reads like OpenAI's organization-verification error for that model."""
    api.script = ["forbidden"]

    with pytest.raises(
        openai.PermissionDeniedError,
        match=r"Your organization must be verified to use the model `gpt-image-2\.5-flare`",
    ):
        generate(client)


def test_blocked_word_is_a_moderation_block_with_details(
    api: FakeImagesAPI, client: openai.OpenAI
) -> None:
    """A prompt containing a blocked word gets 400 moderation_blocked with the real message
    and moderation_details in the error body; the blocked words are configurable."""
    with pytest.raises(openai.BadRequestError, match=r"safety_violations=\[violence\]") as first:
        generate(client, prompt="a FORBIDDEN scene")
    api.blocked_words = {"dragon"}
    generate(client, prompt="a FORBIDDEN scene")
    with pytest.raises(openai.BadRequestError, match="rejected by the safety system"):
        generate(client, prompt="a dragon")

    error = first.value
    assert error.code == "moderation_blocked"
    assert error.type == "image_generation_user_error"
    assert isinstance(error.body, dict)
    assert error.body["moderation_details"] == {
        "moderation_stage": "input",
        "categories": ["violence"],
    }
    assert [r.status for r in api.requests] == [400, 200, 400]
    assert api.billed_images == 1


def test_drop_is_a_connection_error_and_not_billed(
    api: FakeImagesAPI, client: openai.OpenAI
) -> None:
    """A drop reads the request and closes the socket: the SDK raises APIConnectionError
    (not a timeout); the image is not billed and the next request works."""
    api.script = ["drop"]

    with pytest.raises(openai.APIConnectionError, match="Connection error") as excinfo:
        generate(client)
    generate(client)

    assert type(excinfo.value) is openai.APIConnectionError
    assert api.status_counts == {"dropped": 1, 200: 1}
    assert api.billed_images == 1


def test_drop_after_billing_loses_a_paid_image(api: FakeImagesAPI, client: openai.OpenAI) -> None:
    """With drop_after_billing, a dropped request is billed: a paid image lost in transit."""
    api.configure(script=["drop"], drop_after_billing=True)

    with pytest.raises(openai.APIConnectionError):
        generate(client, n=3)

    assert api.billed_images == 3
    assert api.requests[0].billed == 3
    assert api.count(status="dropped") == 1


def test_slow_answer_triggers_a_client_timeout(api: FakeImagesAPI, client: openai.OpenAI) -> None:
    """A slow fault stalls longer than the client's timeout: the SDK raises APITimeoutError.
    Stopping the server wakes the stalled handler instead of waiting slow_seconds."""
    api.configure(script=["slow"], slow_seconds=30)

    with pytest.raises(openai.APITimeoutError, match="Request timed out"):
        generate(client, timeout=0.2)

    assert api.requests[0].fault == "slow"
    assert api.billed_images == 0


@pytest.mark.parametrize("model", ["gpt-image-1", "dall-e-2", "dall-e-3", "gpt-image-9"])
def test_retired_and_unknown_models_are_not_found(client: openai.OpenAI, model: str) -> None:
    """Shut-down and unknown models get 404 model_not_found."""
    with pytest.raises(openai.NotFoundError, match=f"The model `{model}` does not exist") as exc:
        generate(client, model=model)

    assert (exc.value.status_code, exc.value.code) == (404, "model_not_found")


def test_wrong_api_key_is_unauthorized() -> None:
    """With expected_key set, any other key gets 401 invalid_api_key (key masked in the
    message) and the record keeps the Authorization value for the test to inspect."""
    with (
        FakeImagesAPI(expected_key="sk-right") as api,
        openai.OpenAI(base_url=api.base_url, api_key="sk-wrong-key", max_retries=0) as client,
    ):
        with pytest.raises(
            openai.AuthenticationError, match=r"Incorrect API key provided: sk-\*+-key"
        ) as excinfo:
            generate(client)
        with openai.OpenAI(base_url=api.base_url, api_key="sk-right", max_retries=0) as good:
            generate(good)

    assert excinfo.value.code == "invalid_api_key"
    assert [r.auth for r in api.requests] == ["Bearer sk-wrong-key", "Bearer sk-right"]
    assert [r.status for r in api.requests] == [401, 200]


def test_missing_api_key_is_unauthorized(api: FakeImagesAPI) -> None:
    """A request without a bearer token is a 401 (the SDK always sends one, so use httpx)."""
    response = httpx2.post(
        f"{api.base_url}/images/generations",
        json={"model": "gpt-image-2", "prompt": "x"},
    )

    assert response.status_code == 401
    assert response.json()["error"]["message"].startswith("You didn't provide an API key.")
    assert api.requests[0].auth is None


@pytest.mark.parametrize(
    ("model", "kwargs", "param", "message"),
    [
        ("gpt-image-2.5-flare", {"size": "1000x1000"}, "size", "multiples of 16"),
        ("gpt-image-2.5-flare", {"size": "3840x1024"}, "size", "between 1:3 and 3:1"),
        ("gpt-image-2.5-flare", {"size": "3840x2176"}, "size", "maximum size is 3840x2160"),
        ("gpt-image-2.5-flare", {"size": "800x800"}, "size", "between 655360 and 8294400"),
        ("gpt-image-2.5-flare", {"size": "big"}, "size", "Expected 'auto' or 'WIDTHxHEIGHT'"),
        ("gpt-image-1.5", {"size": "1536x864"}, "size", "Supported values are: '1024x1024'"),
        ("gpt-image-2.6-flare", {"size": "1536x864"}, "size", "Supported values are"),
        ("gpt-image-2", {"n": 11}, "n", "out of range; expected 1 to 10"),
        ("gpt-image-2", {"n": 0}, "n", "out of range; expected 1 to 10"),
        ("gpt-image-2", {"prompt": "x" * 32_001}, "prompt", "maximum length 32000"),
        ("gpt-image-2", {"prompt": ""}, "prompt", "Missing required parameter: 'prompt'"),
        ("gpt-image-2", {"quality": "xhigh"}, "quality", "Invalid value: 'xhigh'"),
        (
            "gpt-image-2",
            {"background": "transparent", "output_format": "jpeg"},
            "background",
            "not supported for output_format 'jpeg'",
        ),
        ("gpt-image-2", {"output_format": "gif"}, "output_format", "Invalid value: 'gif'"),
        ("gpt-image-2", {"output_compression": 101}, "output_compression", "out of range"),
    ],
)
def test_invalid_requests_are_invalid_value(
    api: FakeImagesAPI,
    client: openai.OpenAI,
    model: str,
    kwargs: dict[str, Any],
    param: str,
    message: str,
) -> None:
    """Invalid parameters are 400 invalid_request_error / invalid_value naming the param."""
    with pytest.raises(openai.BadRequestError, match=re.escape(message)) as excinfo:
        generate(client, model=model, **kwargs)

    error = excinfo.value
    assert (error.type, error.code, error.param) == (
        "invalid_request_error",
        "invalid_value",
        param,
    )
    assert api.billed_images == 0


def test_missing_model_is_invalid(client: openai.OpenAI) -> None:
    """The model is required (the old dall-e-2 default is gone)."""
    with pytest.raises(openai.BadRequestError, match="Missing required parameter: 'model'") as exc:
        client.images.generate(prompt="no model")

    assert (exc.value.code, exc.value.param) == ("invalid_value", "model")


def test_unknown_parameter_is_rejected(client: openai.OpenAI) -> None:
    """Parameters GPT image models do not take (e.g. response_format) are unknown_parameter."""
    with pytest.raises(openai.BadRequestError, match="Unknown parameter: 'response_format'") as e:
        generate(client, response_format="url")

    assert (e.value.code, e.value.param) == ("unknown_parameter", "response_format")


@pytest.mark.parametrize(
    ("model", "size"),
    [
        ("gpt-image-2.5-flare", "3840x2160"),
        ("gpt-image-2.5-sunburst-2026-09-08", "2160x3840"),
        ("gpt-image-2", "3072x1024"),
        ("gpt-image-2-2026-04-21", "1024x640"),
        ("gpt-image-2.6-sunburst", "1536x1024"),
    ],
)
def test_valid_sizes_are_honoured(client: openai.OpenAI, model: str, size: str) -> None:
    """Sizes within the model's limits come back exactly as requested."""
    response = generate(client, model=model, size=size, quality="low", output_format="jpeg")

    width, height = (int(v) for v in size.split("x"))
    assert response.size == size
    assert decode(response.data[0].b64_json).size == (width, height)


# --- rate limit ---------------------------------------------------------------------------


def test_rate_limit_admits_ceil_ipm_over_60_images_per_second_window() -> None:
    """With images_per_minute=130, each one-second window admits ceil(130/60) = 3 images
    (n counts); the rest get 429 rate_limit_exceeded with Retry-After until the window ends."""
    clock = FrozenClock(500.4)
    with (
        FakeImagesAPI(images_per_minute=130, clock=clock) as api,
        openai.OpenAI(base_url=api.base_url, api_key="sk-test", max_retries=0) as client,
    ):
        generate(client, n=2)
        with pytest.raises(openai.RateLimitError, match=r"Limit: 130/1min\. Current: 4\.") as big:
            generate(client, n=2)
        generate(client, n=1)
        with pytest.raises(openai.RateLimitError, match=r"Limit: 130/1min\. Current: 4\.") as one:
            generate(client, n=1)
        clock.now = 501.0  # the next window
        generate(client, n=3)
        with pytest.raises(openai.RateLimitError):
            generate(client, n=1)

    assert big.value.code == "rate_limit_exceeded"
    headers = one.value.response.headers
    assert headers["retry-after"] == "1"
    assert headers["retry-after-ms"] == "600"
    assert headers["x-ratelimit-remaining-images"] == "0"
    assert headers["x-ratelimit-reset-images"] == "600ms"
    assert [r.status for r in api.requests] == [200, 429, 200, 429, 200, 429]
    assert api.billed_images == 6


def test_rate_limit_admission_happens_on_arrival_before_latency() -> None:
    """Admission is decided when a request arrives: of 12 concurrent one-image requests in
    one window with ipm=600 (10 per second), 2 get their 429 while the 10 admitted ones are
    still inside their latency, which therefore cannot shift them into another window."""
    release = threading.Event()
    clock = FrozenClock(42.0)

    def hold(_record: object) -> float:
        release.wait(10)
        return 0.0

    async def scenario(api: FakeImagesAPI) -> list[int]:
        async with openai.AsyncOpenAI(
            base_url=api.base_url, api_key="sk-test", max_retries=0
        ) as client:

            async def one(index: int) -> int:
                try:
                    await client.images.generate(model="gpt-image-2", prompt=f"p{index}")
                except openai.RateLimitError as exc:
                    return exc.status_code
                return 200

            tasks = [asyncio.create_task(one(i)) for i in range(12)]
            early: list[int] = []
            pending: set[asyncio.Task[int]] = set(tasks)
            while len(early) < 2:
                done, pending = await asyncio.wait(
                    pending, timeout=10, return_when=asyncio.FIRST_COMPLETED
                )
                assert done, "no request finished"
                early += [task.result() for task in done]
            for _ in range(200):
                if api.in_flight == 10:
                    break
                await asyncio.sleep(0.01)
            in_flight_while_held = api.in_flight
            release.set()
            late = await asyncio.gather(*pending)
            return [*early, in_flight_while_held, *late]

    with FakeImagesAPI(images_per_minute=600, clock=clock, latency=hold) as api:
        early_a, early_b, held, *late = asyncio.run(scenario(api))

    assert (early_a, early_b) == (429, 429)
    assert held == 10
    assert late == [200] * 10
    assert api.billed_images == 10
    assert api.peak_in_flight >= 10


def test_peak_in_flight_counts_concurrent_requests() -> None:
    """peak_in_flight is the maximum number of requests handled at once (20 concurrent
    AsyncOpenAI calls held by a barrier in the latency callable)."""
    barrier = threading.Barrier(20)

    def gather(_record: object) -> float:
        barrier.wait(10)
        return 0.0

    async def burst(api: FakeImagesAPI) -> list[str]:
        async with openai.AsyncOpenAI(
            base_url=api.base_url, api_key="sk-test", max_retries=0
        ) as client:
            responses = await asyncio.gather(
                *(client.images.generate(model="gpt-image-2", prompt=f"p{i}") for i in range(20))
            )
        return [r.size or "" for r in responses]

    with FakeImagesAPI(latency=gather) as api:
        sizes = asyncio.run(burst(api))

    assert sizes == ["1024x1024"] * 20
    assert api.peak_in_flight == 20
    assert api.in_flight == 0
    assert api.stats()["by_endpoint"] == {"generations": 20}


# --- random faults and config -------------------------------------------------------------


def test_random_faults_are_seeded_and_configurable_mid_run() -> None:
    """fail_rate draws from random.Random(seed), so a sequential run is reproducible; setting
    fail_rate to 0 mid-run stops the faults."""
    rng = random.Random(7)
    expected = []
    for _ in range(12):
        failed = rng.random() < 0.5
        expected.append({"server_error": 500}[rng.choice(["server_error"])] if failed else 200)
    with (
        FakeImagesAPI(fail_rate=0.5, fail_kinds=["server_error"], seed=7) as api,
        openai.OpenAI(base_url=api.base_url, api_key="sk-test", max_retries=0) as client,
    ):
        for _ in range(12):
            try:
                generate(client, quality="low")
            except openai.InternalServerError as exc:
                assert exc.code == "server_error"
        api.fail_rate = 0.0
        generate(client, quality="low")

    assert expected.count(500) == 8  # seed 7 gives a mix, so the check can fail
    assert [r.status for r in api.requests] == [*expected, 200]
    assert api.billed_images == expected.count(200) + 1
    assert api.count(endpoint="generations", status=500) == 8
    assert api.count(endpoint="edits") == 0


def test_config_rejects_unknown_fault_kinds(api: FakeImagesAPI) -> None:
    """Config attributes are validated when set."""
    with pytest.raises(ValueError, match=r"unknown fault kinds \['explode'\]"):
        api.fail_kinds = ["server_error", "explode"]
    with pytest.raises(ValueError, match=r"fail_rate must be within 0\.\.1"):
        api.fail_rate = 1.5


# --- hostile answers (the client's trust boundary) ----------------------------------------


def test_trickle_is_billed_never_completes_and_hangs_up_after_slow_seconds(
    api: FakeImagesAPI, client: openai.OpenAI
) -> None:
    """A trickled answer is a billed 200 whose body comes a byte at a time: at 0.05 s a byte
    it cannot finish within slow_seconds (0.3 s), and then the fake hangs up, which the SDK
    reports as a connection error. The next request is answered normally."""
    api.configure(script=["trickle"], trickle_seconds=0.05, slow_seconds=0.3)

    with pytest.raises(openai.APIConnectionError, match="Connection error"):
        generate(client, timeout=5)
    generate(client)

    assert [r.fault for r in api.requests] == ["trickle", None]
    assert [r.status for r in api.requests] == [200, 200]
    assert api.billed_images == 2


def test_gzip_bomb_is_a_small_body_that_inflates_to_bomb_bytes(api: FakeImagesAPI) -> None:
    """A gzip_bomb answer is a billed 200 with Content-Encoding gzip whose body is about a
    thousandth of what it inflates to: bomb_bytes of zeros."""
    api.configure(script=["gzip_bomb"], bomb_bytes=8 * 1024 * 1024)
    with httpx2.Client() as http:
        response = http.post(
            f"{api.base_url}/images/generations",
            headers={"Authorization": "Bearer sk-test"},
            json={"model": "gpt-image-2.5-flare", "prompt": "a fox"},
        )

    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert int(response.headers["content-length"]) < 16 * 1024
    assert response.content == bytes(8 * 1024 * 1024)
    assert api.requests[0].fault == "gzip_bomb"
    assert api.billed_images == 1


def test_echo_key_is_a_401_quoting_the_full_key_in_message_and_headers(
    api: FakeImagesAPI, client: openai.OpenAI
) -> None:
    """echo_key answers 401 invalid_api_key whose message, request id and two headers carry
    the caller's whole key (what a leaky proxy might do)."""
    api.script = ["echo_key"]

    with pytest.raises(
        openai.AuthenticationError, match=r"Incorrect API key provided: sk-test\."
    ) as excinfo:
        generate(client)

    headers = excinfo.value.response.headers
    assert excinfo.value.code == "invalid_api_key"
    assert "'Authorization: Bearer sk-test'" in excinfo.value.message
    assert headers["x-request-id"] == "req_sk-test"
    assert headers["x-echo-authorization"] == "Bearer sk-test"
    assert headers["www-authenticate"] == 'Bearer realm="fake", token="sk-test"'
    assert api.billed_images == 0


def test_echo_key_moderation_quotes_the_key_in_its_details(
    api: FakeImagesAPI, client: openai.OpenAI
) -> None:
    """echo_key_moderation answers 400 moderation_blocked whose message, moderation_details
    and request id carry the caller's key."""
    api.script = ["echo_key_moderation"]

    with pytest.raises(openai.BadRequestError, match=r"request signed with sk-test\)") as excinfo:
        generate(client)

    error = excinfo.value
    assert error.code == "moderation_blocked"
    assert isinstance(error.body, dict)
    assert error.body["moderation_details"] == {
        "moderation_stage": "input",
        "categories": ["violence"],
        "caller": "sk-test",
        "headers": ["Authorization: Bearer sk-test"],
    }
    assert error.response.headers["x-request-id"] == "req_sk-test"


def test_reply_headers_override_the_fakes_own_on_errors_and_successes(
    api: FakeImagesAPI, client: openai.OpenAI
) -> None:
    """reply_headers replace what the fake would send (a scripted 429's Retry-After, a
    success's reset header) and travel through POST /_config as JSON."""
    api.script = ["rate_limit"]
    reset = {"retry-after-ms": "inf", "x-ratelimit-reset-images": "999999s"}
    config = httpx2.post(
        api.base_url.removesuffix("/v1") + "/_config", json={"reply_headers": reset}
    )

    with pytest.raises(openai.RateLimitError) as excinfo:
        generate(client)
    ok = client.images.with_raw_response.generate(model="gpt-image-2.5-flare", prompt="a fox")

    assert config.json()["reply_headers"] == reset
    assert excinfo.value.response.headers["retry-after-ms"] == "inf"
    assert excinfo.value.response.headers["retry-after"] == "1"
    assert ok.headers["x-ratelimit-reset-images"] == "999999s"
    assert ok.headers["retry-after-ms"] == "inf"


def test_image_and_usage_overrides_shape_every_success(
    api: FakeImagesAPI, client: openai.OpenAI
) -> None:
    """image_bytes are returned as they are, image_size draws at another size than asked
    (the echoed size stays the requested one), and usage_patch can put NaN in usage."""
    api.configure(image_bytes=b"%!PS-Adobe-3.0", usage_patch={"output_tokens": float("nan")})
    forced = client.images.with_raw_response.generate(
        model="gpt-image-2.5-flare", prompt="a fox", size="1024x1024"
    )
    api.configure(image_bytes=None, usage_patch=None, image_size="512x256")
    drawn = generate(client, size="1024x1024")

    body = forced.http_response.text
    assert '"output_tokens":NaN' in body
    assert base64.b64decode(json.loads(body)["data"][0]["b64_json"]) == b"%!PS-Adobe-3.0"
    assert drawn.size == "1024x1024"
    assert decode(drawn.data[0].b64_json).size == (512, 256)
    assert api.billed_images == 2


def test_hostile_config_is_validated(api: FakeImagesAPI) -> None:
    """The new config attributes are checked when set; bytes cannot come over JSON."""
    with pytest.raises(ValueError, match=r"image_size must be 'WxH' or None"):
        api.image_size = "huge"
    with pytest.raises(ValueError, match=r"image_bytes must be bytes or None"):
        api.image_bytes = "not bytes"
    with pytest.raises(ValueError, match=r"bomb_bytes must be >= 1"):
        api.bomb_bytes = 0
    bad = httpx2.post(api.base_url.removesuffix("/v1") + "/_config", json={"image_bytes": "x"})
    assert bad.status_code == 400
    assert bad.json()["error"]["message"] == "Invalid config: unknown config keys ['image_bytes']"


# --- separate process ---------------------------------------------------------------------


def read_first_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    return proc.stdout.readline()


def test_subprocess_mode_prints_base_url_and_serves_stats_and_config() -> None:
    """`python tests/fakeapi.py` prints exactly FAKE_OPENAI_BASE_URL=... first, serves the
    API, reports counters at GET /_stats, takes config at POST /_config, and exits 0 on
    SIGTERM."""
    command = [sys.executable, str(FAKEAPI_SCRIPT), "--port", "0", "--latency", "0"]
    command += ["--ipm", "1200", "--seed", "1"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as proc:
        try:
            line = read_first_line(proc)
            match = re.fullmatch(r"FAKE_OPENAI_BASE_URL=(http://127\.0\.0\.1:\d+/v1)\n", line)
            assert match is not None, line
            base_url = match[1]
            root = base_url.removesuffix("/v1")
            with openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0) as client:
                generate(client, n=2)
                config = httpx2.post(f"{root}/_config", json={"script": ["server_error"]})
                with pytest.raises(openai.InternalServerError):
                    generate(client)
            stats = httpx2.get(f"{root}/_stats").json()
            bad = httpx2.post(f"{root}/_config", json={"fail_kinds": ["explode"]})
        finally:
            proc.send_signal(signal.SIGTERM)
            rest, _ = proc.communicate(timeout=10)

    assert config.status_code == 200
    assert config.json()["script"] == ["server_error"]
    assert config.json()["images_per_minute"] == 1200
    assert bad.status_code == 400
    assert stats == {
        "requests": 2,
        "billed_images": 2,
        "status_counts": {"200": 1, "500": 1},
        "by_endpoint": {"generations": 2},
        "peak_in_flight": 1,
        "in_flight": 0,
        "connections": 3,  # the SDK's keep-alive connection, then /_config and /_stats
    }
    assert proc.returncode == 0
    assert rest == ""
