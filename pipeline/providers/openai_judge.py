"""The OpenAI judge: one Responses API call per delivered image, with a strict JSON schema.

The image goes as an ``input_image`` data URL at the configured ``detail`` (``low`` is a
fixed 85 tokens whatever the size), the rubric as ``input_text``, and the answer is held
to a strict ``json_schema`` (``text.format``): a score per rubric point, an overall score,
a verdict, short reasons and the text the model reads in the image. Like the image
provider this module is a trust boundary: the SDK's retries are off (assetpipe's policy
paces and retries judge calls too), every error text is redacted, and the verdict is
parsed as untrusted JSON: bounded, every field checked, numbers clamped to 0-1. A
refusal or an answer that is not the schema is a failure of the check, never of the
image (the runner records it as a warning).
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

from openai import AsyncOpenAI

from pipeline.jobs import ProviderFailure
from pipeline.jobs.judging import (
    JUDGE_PROMPT_VERSION,
    MAX_POINTS,
    MAX_REASON_CHARS,
    MAX_REASONS,
    MAX_TEXT_READ,
    JudgeRequest,
    Verdict,
)
from pipeline.jobs.provider import Usage
from pipeline.providers.openai_http import check_base_url
from pipeline.providers.openai_provider import DEADLINE_FACTOR
from pipeline.providers.openai_wire import ID_CHARS, sdk_call, sdk_client
from pipeline.providers.redaction import Redactor

MAX_ANSWER_CHARS = 64 * 1024
"""A verdict is a few hundred characters; a longer answer is not read."""

INSTRUCTIONS = (
    "You are a strict quality reviewer of generated image assets. Split the rubric into "
    "its points (comma- or sentence-separated requirements) and score each from 0 (not "
    "met) to 1 (fully met). The overall score is the lowest point score unless the "
    "failure is cosmetic. Verdict 'pass' when the overall score is at least the minimum "
    "score given, else 'fail'. Give at most five short reasons, each one sentence. "
    "Transcribe any text visible in the image exactly in text_read (empty when none)."
)
"""The judge's instructions (version :data:`~pipeline.jobs.judging.JUDGE_PROMPT_VERSION`)."""

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["points", "score", "verdict", "reasons", "text_read"],
    "properties": {
        "points": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["point", "score"],
                "properties": {"point": {"type": "string"}, "score": {"type": "number"}},
            },
        },
        "score": {"type": "number"},
        "verdict": {"type": "string", "enum": ["pass", "fail"]},
        "reasons": {"type": "array", "items": {"type": "string"}},
        "text_read": {"type": "string"},
    },
}
"""The verdict's shape, enforced by the API (``strict: true``) and checked again here."""


class OpenAIJudge:
    """Verdicts through ``AsyncOpenAI.responses.create``."""

    def __init__(self, client: AsyncOpenAI, *, deadline_s: float | None = None):
        self.name = "openai"
        self.client = client
        self.deadline_s = deadline_s
        self.redact = Redactor([getattr(client, "api_key", None)])

    @classmethod
    def openai(cls, timeout: float) -> OpenAIJudge:
        """A judge reading OPENAI_API_KEY / OPENAI_BASE_URL as the image provider does."""
        check_base_url(None, "OPENAI_BASE_URL")
        return cls(sdk_client(timeout, None, None), deadline_s=DEADLINE_FACTOR * timeout)

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self.client.close()

    async def judge(self, request: JudgeRequest) -> Verdict:
        """One verdict; ProviderFailure (classified for the retry policy) when none came."""
        async with sdk_call(self.deadline_s, self.redact, "the judge gave no answer in time"):
            raw = await self.client.responses.with_raw_response.create(**request_body(request))
        request_id = self.redact.optional(raw.headers.get("x-request-id"), ID_CHARS)
        try:
            body = json.loads(raw.http_response.content)
        except (ValueError, TypeError):
            raise ProviderFailure(
                "bad_response", "the judge's answer is not JSON", request_id=request_id
            ) from None
        return parse_verdict(body, request.min_score, self.redact, request_id)


def request_body(request: JudgeRequest) -> dict[str, Any]:
    """The Responses API request of one judged image (a direct call's arguments, and the
    ``body`` of a judge batch line: the same request either way)."""
    url = f"data:{request.mime};base64,{base64.b64encode(request.image).decode('ascii')}"
    asked = f"Rubric: {request.rubric}\nMinimum score to pass: {request.min_score:g}"
    if request.text:
        asked += f"\nThe image must carry exactly this text: {request.text}"
    return {
        "model": request.model,
        "instructions": INSTRUCTIONS,
        "input": [
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": asked},
                    {"type": "input_image", "image_url": url, "detail": request.detail},
                ],
            }
        ],
        "text": {
            "format": {
                "type": "json_schema",
                "name": f"verdict_v{JUDGE_PROMPT_VERSION}",
                "schema": SCHEMA,
                "strict": True,
            }
        },
        "store": False,
    }


def parse_verdict(
    body: object, min_score: float, redact: Redactor, request_id: str | None = None
) -> Verdict:
    """The verdict in a Responses API answer, checked field by field (untrusted), passed
    or failed against ``min_score``."""
    if not isinstance(body, dict):
        raise ProviderFailure(
            "bad_response", "the judge's answer is not an object", request_id=request_id
        )
    text, refusal = _output_text(body.get("output"))
    if refusal is not None:
        raise ProviderFailure(
            "moderation",
            redact.text(f"the judge declined to judge the image: {refusal}"),
            code="refusal",
            request_id=request_id,
        )
    if text is None or len(text) > MAX_ANSWER_CHARS:
        raise ProviderFailure(
            "bad_response", "the judge's answer holds no verdict", request_id=request_id
        )
    try:
        data = json.loads(text)
    except ValueError:
        raise ProviderFailure(
            "bad_response", "the judge's verdict is not JSON", request_id=request_id
        ) from None
    if not isinstance(data, dict) or data.get("verdict") not in ("pass", "fail"):
        raise ProviderFailure(
            "bad_response", "the judge's verdict does not follow the schema", request_id=request_id
        )
    score = _unit(data.get("score"))
    if score is None:
        raise ProviderFailure(
            "bad_response", "the judge's score is not a number from 0 to 1", request_id=request_id
        )
    points = []
    raw_points, raw_reasons = data.get("points"), data.get("reasons")
    for item in raw_points if isinstance(raw_points, list) else []:
        if isinstance(item, dict) and isinstance(item.get("point"), str):
            value = _unit(item.get("score"))
            if value is not None:
                points.append((redact.text(item["point"], MAX_REASON_CHARS), value))
    reasons = [
        redact.text(r, MAX_REASON_CHARS)
        for r in (raw_reasons if isinstance(raw_reasons, list) else [])
        if isinstance(r, str)
    ]
    text_read = data.get("text_read")
    return Verdict(
        score=score,
        # The threshold is the spec's, not the model's: a verdict is recomputed from the
        # score, so a lenient "pass" at 0.4 cannot pass an asset asking for 0.7.
        passed=score >= min_score,
        points=tuple(points[:MAX_POINTS]),
        reasons=tuple(reasons[:MAX_REASONS]),
        text_read=redact.text(text_read, MAX_TEXT_READ) if isinstance(text_read, str) else "",
        usage=_responses_usage(body.get("usage")),
        request_id=request_id,
    )


def _output_text(output: object) -> tuple[str | None, str | None]:
    """The first ``output_text`` of the answer's message, and its refusal if it has one."""
    if not isinstance(output, list):
        return None, None
    for item in output[:16]:
        if not isinstance(item, dict) or item.get("type") != "message":
            continue
        content = item.get("content")
        for part in content[:16] if isinstance(content, list) else []:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "refusal":
                refusal = part.get("refusal")
                return None, refusal if isinstance(refusal, str) else "no reason given"
            if part.get("type") == "output_text" and isinstance(part.get("text"), str):
                return part["text"], None
    return None, None


def _unit(value: object) -> float | None:
    """A score from 0 to 1, or None for anything else (NaN, a string, 7)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    if not math.isfinite(number) or not 0.0 <= number <= 1.0:
        return None
    return number


def _responses_usage(usage: object) -> Usage | None:
    """The Responses API's usage (``input_tokens``, ``output_tokens``, image tokens not
    split out): whole non-negative numbers only, else None (the estimate is charged)."""
    if not isinstance(usage, dict):
        return None
    tokens_in, tokens_out = usage.get("input_tokens"), usage.get("output_tokens")
    if not (isinstance(tokens_in, int) and isinstance(tokens_out, int)):
        return None
    if not (_count(tokens_in) and _count(tokens_out)):
        return None
    return Usage(input_text_tokens=tokens_in, output_tokens=tokens_out)


def _count(value: object) -> bool:
    """Whether ``value`` is a token count: a whole number from 0 to 100 million."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 10**8
