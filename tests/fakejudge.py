"""The fake Responses API (``POST /v1/responses``): a vision judge that judges deterministically.

The fake Images API remembers the prompt of every image it draws (keyed by the unique id
it stamps into each image, and by the image's sha256), and this judge reads that id back
out of the image it is sent: an image drawn for a prompt containing ``[qa:fail]`` fails,
and ``[qa:fail:N]`` fails the first N images drawn for that prompt (so a reroll can
pass). An image it never drew passes. Hostile modes, a deque ``judge_script`` consumed one
per call: ``"ok"``, ``"server_error"`` (500), ``"refusal"`` (a refusal content part),
``"malformed"`` (output text that is not JSON), ``"off_schema"`` (JSON with a score of 7).
``judge_calls`` counts the calls answered; the usage is realistic (input tokens of the
instructions plus 85 per low-detail image, output tokens of the verdict).

The fake Batch API (``tests/fakebatch.py``) runs each ``/v1/responses`` line of a batch
through :meth:`FakeJudgeAPI.answer_line`: the same verdicts, the same ``judge_script``
modes, counted in ``batch_judge_calls`` (never in ``judge_calls``, the direct calls).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import threading
from collections import deque
from typing import Any

_UID = re.compile(rb"fakeapi-uid[\x00:](\d{12}[0-9a-f]{20})")
_FAIL = re.compile(r"\[qa:fail(?::(\d+))?\]")
_DATA_URL = re.compile(r"data:image/[a-z]+;base64,(.*)", re.DOTALL)


class FakeJudgeAPI:
    """The Responses endpoint, served by the fake Images API's server."""

    def __init__(self, api: Any):
        self.api = api
        self._lock = threading.Lock()
        self.drawn: dict[bytes, tuple[str, int]] = {}
        """Image uid (or sha256) -> (prompt, how many images of that prompt came before)."""
        self._per_prompt: dict[str, int] = {}
        self.judge_script: deque[str] = deque()
        self.judge_calls = 0
        self.batch_judge_calls = 0
        self.requests: list[dict[str, Any]] = []

    def remember(self, image: bytes, prompt: str) -> None:
        """Note an image the fake drew, for the judge to read back."""
        with self._lock:
            seen = self._per_prompt.get(prompt, 0)
            self._per_prompt[prompt] = seen + 1
            match = _UID.search(image)
            if match is not None:
                self.drawn[match.group(1)] = (prompt, seen)
            self.drawn[hashlib.sha256(image).hexdigest().encode()] = (prompt, seen)

    def serve(self, handler: Any, path: str, body: bytes) -> bool:
        """Answer ``POST /v1/responses``; False for any other request."""
        if handler.command != "POST" or path != "/v1/responses":
            return False
        from fakeapi import _Reply

        with self._lock:
            self.judge_calls += 1
        try:
            request: object = json.loads(body)
        except ValueError:
            request = None
        status, answer = self._respond(request)
        self.api._send(handler, _Reply(status, answer, {}))
        return True

    def answer_line(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """A batch line's answer to the request ``body``: (HTTP status, body)."""
        with self._lock:
            self.batch_judge_calls += 1
        return self._respond(body)

    def prompt_of(self, body: dict[str, Any]) -> str:
        """The prompt the judged image was drawn for ("" when unknown or unreadable)."""
        try:
            image = self._image(body)
        except (ValueError, KeyError, TypeError, IndexError, binascii.Error):
            return ""
        return self._verdict(image)[1]

    def _respond(self, request: object) -> tuple[int, dict[str, Any]]:
        with self._lock:
            mode = self.judge_script.popleft() if self.judge_script else "ok"
        if mode == "server_error":
            error = {"message": "The server had an error", "type": "server_error", "code": None}
            return 500, {"error": error}
        try:
            if not isinstance(request, dict):
                raise TypeError("not an object")
            image = self._image(request)
        except (ValueError, KeyError, TypeError, IndexError, binascii.Error):
            error = {"message": "bad request", "type": "invalid_request_error", "code": None}
            return 400, {"error": error}
        with self._lock:
            self.requests.append(request)
        return 200, self._answer(request, image, mode)

    @staticmethod
    def _image(request: dict[str, Any]) -> bytes:
        for item in request["input"]:
            for part in item["content"]:
                if part["type"] == "input_image":
                    match = _DATA_URL.fullmatch(part["image_url"])
                    if match is None:
                        raise ValueError("not a data URL")
                    return base64.b64decode(match.group(1), validate=True)
        raise ValueError("no image")

    def _verdict(self, image: bytes) -> tuple[float, str]:
        match = _UID.search(image)
        key = match.group(1) if match else hashlib.sha256(image).hexdigest().encode()
        with self._lock:
            prompt, seen = self.drawn.get(key, ("", 0))
        fail = _FAIL.search(prompt)
        if fail is not None and (fail.group(1) is None or seen < int(fail.group(1))):
            return 0.2 + 0.1 * min(seen, 3), prompt
        return 0.9, prompt

    def _answer(self, request: dict[str, Any], image: bytes, mode: str) -> dict[str, Any]:
        score, _prompt = self._verdict(image)
        verdict = {
            "points": [{"point": "subject as asked", "score": score}],
            "score": score,
            "verdict": "pass" if score >= 0.7 else "fail",
            "reasons": ["the subject is as asked"] if score >= 0.7 else ["the subject is wrong"],
            "text_read": "",
        }
        text = json.dumps(verdict)
        if mode == "malformed":
            text = "{not json"
        elif mode == "off_schema":
            text = json.dumps({**verdict, "score": 7})
        part: dict[str, Any] = {"type": "output_text", "text": text, "annotations": []}
        if mode == "refusal":
            part = {"type": "refusal", "refusal": "I can't help with that."}
        detail = "low"
        for item in request.get("input", []):
            for p in item.get("content", []):
                if p.get("type") == "input_image":
                    detail = p.get("detail", "low")
        prompt_tokens = 300 + (85 if detail == "low" else 765)
        return {
            "id": "resp_fake",
            "object": "response",
            "status": "completed",
            "model": request.get("model"),
            "output": [
                {"type": "message", "id": "msg_fake", "role": "assistant", "content": [part]}
            ],
            "usage": {
                "input_tokens": prompt_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": 120,
                "output_tokens_details": {"reasoning_tokens": 64},
                "total_tokens": prompt_tokens + 120,
            },
        }
