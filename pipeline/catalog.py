"""Image model tables: lifecycle, size rules, capabilities and prices.

Each provider owns the table of its models (OpenAI's is the TOML file beside its
provider, parsed by :func:`parse_catalog`), so a price or a shutdown date changes without
touching code, and a plugin's models plan and price like the built-in ones; users
override prices in ``assetpipe.yaml``. Lifecycle is judged against a date passed in, so a
deprecated model turns into an error on its shutdown day without a release, and tests can
pin the day.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

Transparency = Literal["yes", "preview", "no"]
Lifecycle = Literal["active", "deprecated", "shutdown"]
ModelPolicy = Literal["catalog", "deployment"]
"""How a provider reads a spec's ``model``: ``catalog`` takes only models this table knows;
``deployment`` (Azure) takes an unknown name as a deployment of the default model."""

QUALITY_FOR_ESTIMATE = {"auto": "high"}
"""``auto`` resolves on the server; budget it as ``high`` so estimates stay an upper bound."""


@dataclass(frozen=True, slots=True)
class SizeRule:
    """Which request sizes a model accepts."""

    kind: Literal["free", "fixed"]
    multiple: int = 16
    max_ratio: float = 3.0
    max_long: int = 3840
    max_short: int = 2160
    min_pixels: int = 0
    max_pixels: int = 1 << 62
    sizes: tuple[tuple[int, int], ...] = ()

    def allows(self, width: int, height: int) -> bool:
        """Whether ``width x height`` is a legal request size."""
        if self.kind == "fixed":
            return (width, height) in self.sizes
        long, short = max(width, height), min(width, height)
        return (
            width % self.multiple == 0
            and height % self.multiple == 0
            and short > 0
            and long / short <= self.max_ratio
            and long <= self.max_long
            and short <= self.max_short
            and self.min_pixels <= width * height <= self.max_pixels
        )

    def describe(self) -> str:
        """The rule in words, for error messages."""
        if self.kind == "fixed":
            return "one of " + ", ".join(f"{w}x{h}" for w, h in self.sizes)
        return (
            f"both sides multiples of {self.multiple}, ratio within 1:{self.max_ratio:g} and "
            f"{self.max_ratio:g}:1, at most {self.max_long}x{self.max_short}, "
            f"{self.min_pixels:,} to {self.max_pixels:,} pixels"
        )


@dataclass(frozen=True, slots=True)
class Prices:
    """USD per 1M tokens, and the token counts used to estimate an image's cost."""

    text_input: float
    image_input: float
    image_output: float
    output_tokens_area: int
    output_tokens: Mapping[str, int]
    input_image_tokens: int
    estimate: bool
    per_image: float = 0.0
    """USD per image on top of the tokens: how a backend that bills by the image (or by
    the GPU second, averaged) is priced; 0 for token-billed models."""


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """Everything assetpipe knows about one image model."""

    name: str
    status: Lifecycle
    size_rule: SizeRule
    qualities: tuple[str, ...]
    transparency: Transparency
    input_fidelity: tuple[str, ...]
    prices: Prices
    shutdown: dt.date | None = None
    replacement: str | None = None
    summary: str = ""
    max_input_images: int = 16
    max_input_bytes: int = 50 * 1000 * 1000
    max_mask_bytes: int = 4 * 1000 * 1000
    max_prompt_chars: int = 32000
    batch: bool = True
    """Whether the Batch API takes this model's jobs; ``build --batch`` sends the others
    directly at the full price."""
    svg: bool = False
    """Whether ``output_format: svg`` is offered (it also needs preview access)."""
    gif: bool = False
    """Whether ``output_format: gif`` is offered (it also needs preview access)."""
    complexity: bool = False
    """Whether the model takes ``complexity: low|medium|high``."""
    markup: bool = False
    """Whether edits take a ``markup`` image."""

    def lifecycle_on(self, today: dt.date) -> Lifecycle:
        """The status on ``today``: a deprecated model is shut down from its shutdown date."""
        if self.status == "deprecated" and self.shutdown and today >= self.shutdown:
            return "shutdown"
        return self.status

    def estimate_cost(
        self, quality: str, width: int, height: int, prompt_chars: int, input_images: int
    ) -> float:
        """Estimated USD for one image: prompt, input images and output tokens."""
        p = self.prices
        q = QUALITY_FOR_ESTIMATE.get(quality, quality)
        per_area = p.output_tokens.get(q) or max(p.output_tokens.values())
        output_tokens = per_area * (width * height) / p.output_tokens_area
        text_tokens = max(1, prompt_chars // 4)
        usd = (
            text_tokens * p.text_input
            + input_images * p.input_image_tokens * p.image_input
            + output_tokens * p.image_output
        )
        return usd / 1_000_000 + p.per_image

    def actual_cost(self, input_text: int, input_image: int, output: int) -> float:
        """USD from a response's reported usage."""
        p = self.prices
        return (
            input_text * p.text_input + input_image * p.image_input + output * p.image_output
        ) / 1_000_000 + p.per_image


@dataclass(frozen=True, slots=True)
class Catalog:
    """The model table, possibly with the user's price overrides applied."""

    models: Mapping[str, ModelInfo]
    prices_read: str
    batch_discount: float
    default_model: str

    def get(self, name: str) -> ModelInfo | None:
        """The model called ``name``, or None when assetpipe does not know it."""
        return self.models.get(name)

    def with_prices(self, overrides: Mapping[str, Mapping[str, Any]]) -> Catalog:
        """A copy with per-model price fields replaced (from ``assetpipe.yaml``).

        Unknown model names and fields are rejected by the settings loader before this.
        """
        models = dict(self.models)
        for name, fields in overrides.items():
            info = models[name]
            merged = {**_prices_dict(info.prices), **fields}
            models[name] = replace(info, prices=_prices_from(merged))
        return replace(self, models=models)


PRICE_FIELDS = (
    "text_input",
    "image_input",
    "image_output",
    "output_tokens",
    "input_image_tokens",
    "per_image",
)
"""Price fields a user may override in ``assetpipe.yaml``."""


def _prices_dict(p: Prices) -> dict[str, Any]:
    return {
        "text_input": p.text_input,
        "image_input": p.image_input,
        "image_output": p.image_output,
        "output_tokens_area": p.output_tokens_area,
        "output_tokens": dict(p.output_tokens),
        "input_image_tokens": p.input_image_tokens,
        "estimate": p.estimate,
        "per_image": p.per_image,
    }


def _prices_from(raw: Mapping[str, Any]) -> Prices:
    return Prices(
        text_input=float(raw["text_input"]),
        image_input=float(raw["image_input"]),
        image_output=float(raw["image_output"]),
        output_tokens_area=int(raw["output_tokens_area"]),
        output_tokens={str(k): int(v) for k, v in raw["output_tokens"].items()},
        input_image_tokens=int(raw["input_image_tokens"]),
        estimate=bool(raw.get("estimate", False)),
        per_image=float(raw.get("per_image", 0.0)),
    )


def _size_rule(raw: Mapping[str, Any]) -> SizeRule:
    if raw["kind"] == "fixed":
        sizes = tuple(_parse_wxh(s) for s in raw["sizes"])
        return SizeRule(kind="fixed", sizes=sizes)
    return SizeRule(
        kind="free",
        multiple=int(raw["multiple"]),
        max_ratio=float(raw["max_ratio"]),
        max_long=int(raw["max_long"]),
        max_short=int(raw["max_short"]),
        min_pixels=int(raw["min_pixels"]),
        max_pixels=int(raw["max_pixels"]),
    )


def _parse_wxh(text: str) -> tuple[int, int]:
    w, h = text.split("x")
    return int(w), int(h)


def parse_catalog(text: str) -> Catalog:
    """A model table from its TOML text (``meta``, ``size_rules``, ``prices``, ``models``;
    OpenAI's table beside its provider is the worked example)."""
    raw = tomllib.loads(text)
    rules = {name: _size_rule(r) for name, r in raw["size_rules"].items()}
    prices = {name: _prices_from(p) for name, p in raw["prices"].items()}
    models = {}
    for name, m in raw["models"].items():
        models[name] = ModelInfo(
            name=name,
            status=m["status"],
            size_rule=rules[m["sizes"]],
            qualities=tuple(m["qualities"]),
            transparency=m["transparency"],
            input_fidelity=tuple(m["input_fidelity"]),
            prices=prices[m["prices"]],
            shutdown=dt.date.fromisoformat(m["shutdown"]) if "shutdown" in m else None,
            replacement=m.get("replacement"),
            summary=m.get("summary", ""),
            max_input_images=int(m.get("max_input_images", 16)),
            batch=bool(m.get("batch", True)),
            svg=bool(m.get("svg", False)),
            gif=bool(m.get("gif", False)),
            complexity=bool(m.get("complexity", False)),
            markup=bool(m.get("markup", False)),
        )
    meta = raw["meta"]
    return Catalog(
        models=models,
        prices_read=meta["prices_read"],
        batch_discount=float(meta["batch_discount"]),
        default_model=meta["default_model"],
    )
