"""OpenAI's image models, their rules and prices: the openai provider's own data.

The table is ``openai_models.toml`` beside this module (sources and dates in
docs/models.md); the Azure and preview providers plan with it too, since they serve or
stand in for the same models.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from pipeline.catalog import Catalog, parse_catalog


@cache
def openai_catalog() -> Catalog:
    """OpenAI's model table, parsed once per process."""
    text = resources.files("pipeline.providers").joinpath("openai_models.toml").read_text("utf-8")
    return parse_catalog(text)
