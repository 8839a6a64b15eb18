"""Property tests of the size compiler (pipeline/sizes.py) against every model rule in the
catalog: what is requested is always legal, and what is delivered is what was asked."""

from __future__ import annotations

import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipeline.catalog import SizeRule
from pipeline.providers.openai_catalog import openai_catalog
from pipeline.sizes import (
    compile_aspect,
    compile_exact,
    largest_with_ratio,
    parse_aspect,
    parse_size,
)

RULE_LIST = sorted(
    {info.size_rule for info in openai_catalog().models.values()}, key=lambda r: (r.kind, r.sizes)
)
"""The distinct size rules of the catalog ("fixed" sorts before "free")."""

rules = st.sampled_from(RULE_LIST)
sides = st.integers(min_value=1, max_value=4096)
PROPERTY = settings(max_examples=300, deadline=None)


def legal_sizes(rule: SizeRule) -> st.SearchStrategy[tuple[int, int]]:
    """Sizes the rule itself allows."""
    if rule.kind == "fixed":
        return st.sampled_from(rule.sizes)
    grid = st.integers(min_value=1, max_value=rule.max_long // rule.multiple).map(
        lambda k: k * rule.multiple
    )
    return st.tuples(grid, grid).filter(lambda wh: rule.allows(*wh))


def test_the_catalog_has_both_kinds_of_rule():
    """The properties below run over a free-size and a fixed-size rule."""
    assert {r.kind for r in RULE_LIST} == {"free", "fixed"}


@PROPERTY
@given(rule=rules, width=sides, height=sides)
@example(rule=RULE_LIST[-1], width=1, height=4096)
@example(rule=RULE_LIST[-1], width=4096, height=1)
@example(rule=RULE_LIST[-1], width=4096, height=4096)
@example(rule=RULE_LIST[-1], width=1920, height=1080)
def test_compile_exact_requests_a_legal_size_and_delivers_the_target(
    rule: SizeRule, width: int, height: int
):
    """For any target 1..4096 per side, the request is one the model allows and the
    delivered size is exactly the target."""
    plan = compile_exact(rule, width, height)
    assert rule.allows(*plan.requested), (rule.describe(), plan)
    assert plan.delivered == (width, height)
    assert plan.needs_local_step == (plan.requested != plan.delivered)


@PROPERTY
@given(data=st.data(), rule=rules)
def test_a_legal_target_is_requested_as_is(data: st.DataObject, rule: SizeRule):
    """When the target is itself a legal request size, nothing is cropped or resized."""
    width, height = data.draw(legal_sizes(rule))
    plan = compile_exact(rule, width, height)
    assert plan.requested == plan.delivered == (width, height)
    assert not plan.needs_local_step


@PROPERTY
@given(rule=rules, width=sides, height=sides)
def test_compile_exact_covers_the_target_ratio_when_it_can(rule: SizeRule, width: int, height: int):
    """On a free-size model, a target within the model's ratio and size limits is requested
    at (nearly) its own ratio, so the local crop loses at most a sliver."""
    if rule.kind != "free":
        return
    ratio = width / height
    if not (1 / rule.max_ratio <= ratio <= rule.max_ratio):
        return
    if width > rule.max_long or height > rule.max_long or min(width, height) > rule.max_short:
        return
    rw, rh = compile_exact(rule, width, height).requested
    assert abs(math.log((rw / rh) / ratio)) <= 0.05, (width, height, rw, rh)


aspect_sides = st.integers(min_value=1, max_value=20)


@PROPERTY
@given(rule=rules, aw=aspect_sides, ah=aspect_sides)
@example(rule=RULE_LIST[-1], aw=3, ah=1)
@example(rule=RULE_LIST[-1], aw=1, ah=3)
@example(rule=RULE_LIST[-1], aw=16, ah=9)
def test_compile_aspect_delivers_the_ratio_inside_a_legal_request(rule: SizeRule, aw: int, ah: int):
    """For ratios from 1:3 to 3:1: the request is legal, the delivered size fits inside it
    with a ratio within 1% of the one asked, and free-size models work at about one
    megapixel (0.5 to 1.5)."""
    ratio = aw / ah
    if not (1 / 3 <= ratio <= 3):
        return
    plan = compile_aspect(rule, aw, ah)
    rw, rh = plan.requested
    dw, dh = plan.delivered
    assert rule.allows(rw, rh), (rule.describe(), plan)
    assert 0 < dw <= rw
    assert 0 < dh <= rh
    assert abs((dw / dh) / ratio - 1) <= 0.01, (aw, ah, plan)
    if rule.kind == "free":
        assert 0.5e6 <= rw * rh <= 1.5e6, plan
        assert 0.5e6 <= dw * dh <= 1.5e6, plan


@PROPERTY
@given(w=sides, h=sides, aw=aspect_sides, ah=aspect_sides)
def test_largest_with_ratio_fits(w: int, h: int, aw: int, ah: int):
    """The largest aw:ah rectangle inside WxH never exceeds it."""
    dw, dh = largest_with_ratio((w, h), aw, ah)
    assert 1 <= dw <= w
    assert 1 <= dh <= h


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1920x1080", (1920, 1080)),
        (" 64X64 ", (64, 64)),
        ("1920x", None),
        ("x1080", None),
        ("0x10", None),
        ("-5x10", None),
        ("1.5x2", None),
        ("16:9", None),
    ],
)
def test_parse_size(text: str, expected: tuple[int, int] | None):
    """WxH with positive whole sides, nothing else."""
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("16:9", (16, 9)), ("1:1", (1, 1)), ("16-9", None), ("0:1", None), ("16:", None)],
)
def test_parse_aspect(text: str, expected: tuple[int, int] | None):
    """W:H with positive whole sides, nothing else."""
    assert parse_aspect(text) == expected
