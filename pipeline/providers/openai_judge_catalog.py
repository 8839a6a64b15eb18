"""OpenAI's judge models and their prices: ``openai_judges.toml`` beside this module.

Kept apart from :mod:`pipeline.providers.openai_judge` so that pricing a plan's judging
(``assetpipe plan``) never imports the SDK.
"""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources

from pipeline.jobs.judging import JudgeModel, parse_judges


@cache
def openai_judges() -> dict[str, JudgeModel]:
    """The judge table, parsed once per process."""
    text = resources.files("pipeline.providers").joinpath("openai_judges.toml").read_text("utf-8")
    return parse_judges(tomllib.loads(text))


@cache
def default_judge() -> str:
    """The judge a project gets when ``qa:`` names none."""
    text = resources.files("pipeline.providers").joinpath("openai_judges.toml").read_text("utf-8")
    meta = tomllib.loads(text).get("meta", {})
    name = meta.get("default_judge") if isinstance(meta, dict) else None
    return str(name or "gpt-5-mini")
