"""The judge contract: what a vision model is asked about one delivered image, and what it says.

Provider-neutral like :class:`~pipeline.jobs.Provider`: the runner paces, retries and
prices judge calls through this protocol and never imports the provider layer; the
OpenAI implementation (the Responses API) lives in ``pipeline/providers/openai_judge.py``
and is chosen in ``pipeline/api/``. A judge that cannot answer raises
:class:`~pipeline.jobs.ProviderFailure` (retried by the same policy as image calls); a
refusal is the kind ``refused``, which fails only the check, never the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from pipeline.jobs.provider import Usage

Detail = Literal["low", "high", "auto"]

JUDGE_PROMPT_VERSION = 1
"""Changes whenever the judge's instructions or schema change: it is part of every
verdict's cache key, so a better prompt judges every image again instead of reusing
verdicts given to other words."""

MAX_REASONS = 5
MAX_REASON_CHARS = 300
MAX_POINTS = 12
MAX_TEXT_READ = 500


@dataclass(frozen=True, slots=True)
class JudgeRequest:
    """One delivered image and the rubric it must meet."""

    model: str
    image: bytes
    mime: str
    rubric: str
    min_score: float
    detail: Detail = "low"
    text: str | None = None
    """The exact copy the image should carry, when the spec names one."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the judge said, bounded and validated (it came from a server)."""

    score: float
    passed: bool
    points: tuple[tuple[str, float], ...] = ()
    """Each rubric point and its score (0-1)."""
    reasons: tuple[str, ...] = ()
    text_read: str = ""
    usage: Usage | None = None
    request_id: str | None = None


class Judge(Protocol):
    """A vision model that scores one image against a rubric."""

    name: str

    async def judge(self, request: JudgeRequest) -> Verdict:
        """Judge one image; raise :class:`~pipeline.jobs.ProviderFailure` when no verdict
        came back (kind ``refused`` when the model declined)."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


@dataclass(frozen=True, slots=True)
class JudgeModel:
    """One judge model's prices (USD per 1M tokens) and the token counts a judged image
    is estimated at, so a build can reserve a judge call's price before it is sent."""

    name: str
    text_input: float
    output: float
    image_tokens_low: int
    image_tokens_high: int
    prompt_tokens: int
    """The instructions, rubric and schema of one call (an estimate)."""
    output_tokens: int
    """The verdict, reasoning included (an estimate)."""

    def image_tokens(self, detail: Detail) -> int:
        """Tokens of one image at ``detail`` (``auto`` is priced as ``high``: the most)."""
        return self.image_tokens_low if detail == "low" else self.image_tokens_high

    def estimate(self, detail: Detail) -> float:
        """USD of one judge call, reserved before it is sent."""
        tokens_in = self.prompt_tokens + self.image_tokens(detail)
        return (tokens_in * self.text_input + self.output_tokens * self.output) / 1_000_000

    def actual(self, usage: Usage | None, detail: Detail) -> float:
        """USD of a call from the usage the API reported (the estimate without it)."""
        if usage is None:
            return self.estimate(detail)
        tokens_in = usage.input_text_tokens + usage.input_image_tokens
        return (tokens_in * self.text_input + usage.output_tokens * self.output) / 1_000_000


def parse_judges(raw: dict[str, object]) -> dict[str, JudgeModel]:
    """The ``[judges.NAME]`` tables of a judge catalog (parsed TOML); ValueError when a
    field is missing or not a non-negative number, TypeError when a table is not one."""
    tables = raw.get("judges")
    if not isinstance(tables, dict):
        raise TypeError("a judge catalog has [judges.NAME] tables")
    out: dict[str, JudgeModel] = {}
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise TypeError(f"judges.{name} is not a table")
        values: dict[str, float] = {}
        for field in (
            "text_input",
            "output",
            "image_tokens_low",
            "image_tokens_high",
            "prompt_tokens",
            "output_tokens",
        ):
            value = table.get(field)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"judges.{name}.{field} is not a non-negative number")
            values[field] = value
        out[name] = JudgeModel(
            name=name,
            text_input=float(values["text_input"]),
            output=float(values["output"]),
            image_tokens_low=int(values["image_tokens_low"]),
            image_tokens_high=int(values["image_tokens_high"]),
            prompt_tokens=int(values["prompt_tokens"]),
            output_tokens=int(values["output_tokens"]),
        )
    return out
