"""Fuzz and property tests: the spec loader never crashes, matrix expansion is the
cartesian product it claims to be, and rendition/request keys depend on what they should.

The loader fuzz feeds random YAML documents, random text and byte-level mutations of the
example project's specs through ``pipeline.api.open_workspace`` (load, render, plan, as
every command does): whatever the input, the only way out other than a plan is a
``PipelineError`` (SpecError, SpecErrors, UsageError) — never a Python exception, which the
CLI would show as a traceback.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pipeline import api
from pipeline.errors import PipelineError, SpecError
from pipeline.hashing import content_key
from pipeline.jobs import RenditionOp, rendition_cache_key
from pipeline.planner.matrix import expand_matrix
from pipeline.spec.yamlsource import parse_yaml

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_SPECS = {p.name: p.read_bytes() for p in sorted((REPO / "specs").glob("*.yaml"))}
TODAY = dt.date(2026, 11, 24)
FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROPERTY = settings(max_examples=200, deadline=None)


# -- a scratch copy of the example project --------------------------------------------------


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    """The example project's templates, brands, masks and settings, with an empty specs/
    (module-scoped: hypothesis reruns the test body many times with one fixture value)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "proj"
        root.mkdir()
        for folder in ("templates", "brands", "masks"):
            shutil.copytree(REPO / folder, root / folder)
        shutil.copy(REPO / "assetpipe.yaml", root / "assetpipe.yaml")
        (root / "specs").mkdir()
        yield root


def plan_or_user_error(root: Path, name: str, data: bytes) -> None:
    """Write ``data`` as the project's only spec and plan it: a plan or a PipelineError."""
    for old in (root / "specs").iterdir():
        old.unlink()
    (root / "specs" / name).write_bytes(data)
    try:
        api.open_workspace(api.Request(project=root, flags={"provider": "preview"}, today=TODAY))
    except PipelineError as exc:
        event(f"refused: {type(exc).__name__}")  # --hypothesis-show-statistics shows the mix
    else:
        event("planned")


def test_example_specs_plan_cleanly(scratch: Path):
    """The unmutated example specs plan without error in the scratch project, so the
    mutations below start from specs that reach the planner's deepest paths."""
    assert set(EXAMPLE_SPECS) == {"campaign.yaml", "characters.yaml", "icons.yaml"}
    for name, data in EXAMPLE_SPECS.items():
        for old in (scratch / "specs").iterdir():
            old.unlink()
        (scratch / "specs" / name).write_bytes(data)
        ws = api.open_workspace(
            api.Request(project=scratch, flags={"provider": "preview"}, today=TODAY)
        )
        assert ws.plan.jobs, name


# -- strategies for spec-shaped documents ---------------------------------------------------

SPEC_WORDS = [
    "assets", "id", "prompt", "template", "matrix", "exclude", "include", "edit", "images",
    "mask", "file", "brand", "logo", "defaults", "vars", "size", "aspect", "variants",
    "renditions", "fit", "format", "tags", "model", "quality", "background", "compression",
    "moderation", "input_fidelity", "keep_original", "name", "colors", "<<",
]  # fmt: skip
"""Keys the loader knows, so random documents get past "unknown key" and go deeper."""

SPEC_VALUES = [
    "hero", "hero#2", "icons/hero", "icon.j2", "hero.j2", "nope.j2", "1024x1024", "0x0",
    "99999x1", "2:3", "0:0", "16:9", "png", "jpeg", "webp", "gif", "transparent", "high",
    "auto", "gpt-image-2.5-flare", "gpt-image-1", "gpt-image-2", "logo", "cover",
    "../brands/emberfall.yaml", "../masks/hero-armor.png", "../../x.png", "/etc/passwd",
    "{{ item }}", "{{ brand.name }}", "{{ brand | palette }}", "{{ asset.id }}", "{{ x",
    "{% for i in range(3) %}{{ i }}{% endfor %}", "{{ 'a' * 3 }}", "{{ 2 ** 8 }}",
    "{{ ''.__class__ }}", "{{ undefined_var }}", "#E4572E", "#zzz", "-1", "",
]  # fmt: skip

scalars = (
    st.sampled_from(SPEC_VALUES)
    | st.text(max_size=12)
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.booleans()
    | st.none()
    | st.dates()
)
keys = st.sampled_from(SPEC_WORDS) | st.text(min_size=1, max_size=8)
documents = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5),
    max_leaves=25,
)
asset = st.dictionaries(st.sampled_from(SPEC_WORDS), documents, max_size=6)
spec_documents = st.fixed_dictionaries(
    {"assets": st.lists(asset, max_size=3)},
    optional={
        "brand": st.sampled_from(["../brands/emberfall.yaml", "nope.yaml"]) | documents,
        "defaults": documents,
        "vars": documents,
    },
)


@FUZZ
@given(doc=spec_documents | documents)
def test_random_documents_plan_or_fail_as_user_errors(scratch: Path, doc: Any):
    """Random spec-shaped documents (dumped with yaml.safe_dump) either plan or raise a
    PipelineError; no other exception escapes the loader, renderer or planner."""
    text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    plan_or_user_error(scratch, "fuzz.yaml", text.encode("utf-8"))


@FUZZ
@given(text=st.text(max_size=200))
def test_random_text_plans_or_fails_as_user_errors(scratch: Path, text: str):
    """Arbitrary text (any unicode, tabs, control characters) as a spec: a PipelineError
    at worst."""
    plan_or_user_error(scratch, "fuzz.yaml", text.encode("utf-8", "surrogatepass"))


TOKENS = [
    b"{{", b"}}", b"{%", b"%}", b"&a ", b"*a", b"---\n", b"\t", b": ", b"- ", b"[", b"]",
    b"{", b"}", b"!!int ", b"!!binary ", b"<<: ", b"\xff", b"\xe9", b"\x00", b'"', b"'",
    b"\n", b"    ", b"#", b"2001-13-45", b"..", b"/", b"10**9", b"range(", b"|", b">-",
]  # fmt: skip


@st.composite
def mutated_specs(draw: st.DrawFn) -> tuple[str, bytes]:
    """One example spec with 1-6 random edits: a byte replaced, a span deleted or
    duplicated, or a YAML/Jinja token inserted."""
    name = draw(st.sampled_from(sorted(EXAMPLE_SPECS)))
    data = bytearray(EXAMPLE_SPECS[name])
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        at = draw(st.integers(min_value=0, max_value=len(data)))
        op = draw(st.sampled_from(["replace", "delete", "duplicate", "insert"]))
        if op == "replace" and at < len(data):
            data[at] = draw(st.integers(min_value=0, max_value=255))
        elif op == "delete":
            span = draw(st.integers(min_value=1, max_value=40))
            del data[at : at + span]
        elif op == "duplicate":
            span = draw(st.integers(min_value=1, max_value=80))
            data[at:at] = data[at : at + span]
        else:
            data[at:at] = draw(st.sampled_from(TOKENS))
    return name, bytes(data)


@FUZZ
@given(mutated=mutated_specs())
def test_mutated_example_specs_plan_or_fail_as_user_errors(
    scratch: Path, mutated: tuple[str, bytes]
):
    """Byte mutations of the example specs (which reference the brand kit, templates and
    a mask, so they reach edits, renditions and file reads): a PipelineError at worst."""
    plan_or_user_error(scratch, *mutated)


@settings(max_examples=100, deadline=None)
@given(doc=documents)
def test_random_settings_files_fail_as_user_errors(scratch: Path, doc: Any):
    """assetpipe.yaml goes through the same reader and its own model: random documents
    there are PipelineErrors at worst, too."""
    settings_file = scratch / "assetpipe.yaml"
    original = settings_file.read_bytes()
    try:
        settings_file.write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
        plan_or_user_error(scratch, "icons.yaml", EXAMPLE_SPECS["icons.yaml"])
    finally:
        settings_file.write_bytes(original)


# -- matrix expansion -----------------------------------------------------------------------

VALUES = ["red", "blue", "green", "gold", "sword", "shield", 1, 2, 3, 10]
"""Matrix values that YAML reads back as written and that are never equal across types."""
NAMES = ["item", "rarity", "color", "size_", "tier"]


@st.composite
def matrices(draw: st.DrawFn) -> dict[str, list[Any]]:
    """1-3 variables, each with 1-4 distinct values, in a drawn order."""
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3, unique=True))
    return {
        n: draw(st.lists(st.sampled_from(VALUES), min_size=1, max_size=4, unique=True))
        for n in names
    }


def tree(axes: dict[str, list[Any]], **extra: list[dict[str, Any]]) -> Any:
    """The asset as the loader gives it: YAML text through parse_yaml, so the matrix has
    locations like a real spec's."""
    matrix: dict[str, Any] = {**axes, **extra}
    text = yaml.safe_dump({"id": "a", "prompt": "x", "matrix": matrix}, sort_keys=False)
    return parse_yaml(text, "specs/a.yaml")


def cartesian(axes: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The product in the order written: the first variable varies slowest."""
    return [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]


def matches(combo: dict[str, Any], pattern: dict[str, Any]) -> bool:
    return all(combo.get(k) == v for k, v in pattern.items())


@st.composite
def matrices_with_rules(
    draw: st.DrawFn,
) -> tuple[dict[str, list[Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """A matrix, exclude entries (each naming a non-empty subset of the variables) and
    include entries (each naming every variable, values possibly outside the lists)."""
    axes = draw(matrices())
    names = list(axes)
    excludes = draw(
        st.lists(
            st.lists(st.sampled_from(names), min_size=1, unique=True).flatmap(
                lambda keys: st.fixed_dictionaries({k: st.sampled_from(axes[k]) for k in keys})
            ),
            max_size=3,
        )
    )
    includes = draw(
        st.lists(st.fixed_dictionaries({n: st.sampled_from(VALUES) for n in names}), max_size=3)
    )
    return axes, excludes, includes


@PROPERTY
@given(rules=matrices_with_rules())
def test_matrix_count_is_product_minus_excluded_plus_new_includes(rules: Any):
    """len == product of the list lengths - combinations an exclude matches + includes
    that are not already there (counted once each); the kept part is the cartesian order
    filtered, the new includes follow in the order written."""
    axes, excludes, includes = rules
    extra = {"exclude": excludes} if excludes else {}
    if includes:
        extra["include"] = includes
    got = expand_matrix(tree(axes, **extra))
    kept = [c for c in cartesian(axes) if not any(matches(c, e) for e in excludes)]
    added: list[dict[str, Any]] = []
    for inc in includes:
        if inc not in kept and inc not in added:
            added.append(inc)
    product = math.prod(len(v) for v in axes.values())
    excluded = product - len(kept)
    assert len(got) == product - excluded + len(added)
    assert got == kept + added


@PROPERTY
@given(rules=matrices_with_rules())
def test_matrix_combinations_are_unique(rules: Any):
    """No combination comes out twice, whatever the excludes and includes."""
    axes, excludes, includes = rules
    extra = {"exclude": excludes} if excludes else {}
    if includes:
        extra["include"] = includes
    got = expand_matrix(tree(axes, **extra))
    as_tuples = [tuple(sorted(c.items(), key=lambda kv: kv[0])) for c in got]
    assert len(set(as_tuples)) == len(as_tuples)


@PROPERTY
@given(axes=matrices())
def test_matrix_order_is_the_cartesian_order(axes: dict[str, list[Any]]):
    """Without rules, the combinations are itertools.product of the lists in the order
    the variables are written (keys in that order, too)."""
    got = expand_matrix(tree(axes))
    assert got == cartesian(axes)
    assert all(list(c) == list(axes) for c in got)


@PROPERTY
@given(axes=matrices(), data=st.data())
def test_excluding_a_full_combination_removes_exactly_it(axes: dict[str, list[Any]], data: Any):
    """An exclude entry naming every variable removes that one combination and keeps the
    order of the rest."""
    full = cartesian(axes)
    victim = data.draw(st.sampled_from(full))
    got = expand_matrix(tree(axes, exclude=[victim]))
    assert got == [c for c in full if c != victim]


@PROPERTY
@given(axes=matrices(), data=st.data())
def test_including_an_existing_combination_adds_nothing(axes: dict[str, list[Any]], data: Any):
    """An include entry equal to a combination the product already has changes nothing."""
    full = cartesian(axes)
    existing = data.draw(st.sampled_from(full))
    assert expand_matrix(tree(axes, include=[existing])) == full


@PROPERTY
@given(axes=matrices(), data=st.data())
def test_a_repeated_matrix_value_is_an_error_at_the_repeat(axes: dict[str, list[Any]], data: Any):
    """A value listed twice in one variable would make two equal combinations (one id
    twice): refused at the second occurrence."""
    name = data.draw(st.sampled_from(list(axes)))
    values = axes[name]
    again = data.draw(st.sampled_from(values))
    at = data.draw(st.integers(min_value=0, max_value=len(values)))
    repeated = [*values[:at], again, *values[at:]]
    first = repeated.index(again)
    second = repeated.index(again, first + 1)
    with pytest.raises(SpecError) as info:
        expand_matrix(tree({**axes, name: repeated}))
    assert info.value.message == f"matrix '{name}' lists {again} twice"
    names = list(axes)
    # safe_dump writes one value per line: "matrix:" on line 3, each variable's name on
    # its own line followed by its "- value" lines.
    line = 4 + sum(1 + len(axes[n]) for n in names[: names.index(name)]) + 1 + second
    assert info.value.location is not None
    assert (info.value.location.line, info.value.location.column) == (line, 5)


@PROPERTY
@given(axes=matrices(), limit=st.integers(min_value=0, max_value=20))
def test_expansion_with_a_limit_stops_one_past_it(axes: dict[str, list[Any]], limit: int):
    """With a limit, expansion returns the full list when it fits, else exactly the first
    limit + 1 combinations (all the planner needs to refuse the plan)."""
    full = cartesian(axes)
    got = expand_matrix(tree(axes), limit=limit)
    assert got == (full if len(full) <= limit else full[: limit + 1])


# -- rendition keys -------------------------------------------------------------------------

SHA = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
ops = st.builds(
    RenditionOp,
    width=st.integers(min_value=1, max_value=8192),
    height=st.integers(min_value=1, max_value=8192),
    fit=st.sampled_from(["cover", "contain", "stretch"]),
    format=st.sampled_from(["png", "webp", "jpeg"]),
    compression=st.none() | st.integers(min_value=0, max_value=100),
)


@PROPERTY
@given(source=SHA, op=ops)
def test_rendition_key_is_its_source_and_operations(source: str, op: RenditionOp):
    """A rendition's key is content_key of exactly {source sha, operation}
    (docs/caching.md): no path, id or job in it, and the same inputs give the same key."""
    key = rendition_cache_key(source, op)
    assert key == content_key({"rendition": op.as_dict(), "source": source})
    assert key == rendition_cache_key(source, RenditionOp(**vars_of(op)))
    assert len(key) == 64


def vars_of(op: RenditionOp) -> dict[str, Any]:
    return {f: getattr(op, f) for f in ("width", "height", "fit", "format", "compression")}


@PROPERTY
@given(a=SHA, b=SHA, op=ops, other=ops)
def test_rendition_keys_differ_exactly_when_inputs_differ(
    a: str, b: str, op: RenditionOp, other: RenditionOp
):
    """Two renditions share a key only when both the source bytes and every operation
    field (size, fit, format, compression — None is not 0) are the same."""
    same = a == b and vars_of(op) == vars_of(other)
    assert (rendition_cache_key(a, op) == rendition_cache_key(b, other)) == same


# -- request keys through the planner -------------------------------------------------------

PROMPT_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="{}")
    | st.sampled_from(["\n", "\t", " ", '"', "'", "\\"]),
    min_size=1,
    max_size=60,
).filter(lambda t: t.strip())
"""Prompt text with no Jinja syntax ({ and } left out) and no characters whose newline
handling differs between YAML and Jinja (\\r and other controls)."""


def one_key(root: Path, spec_path: str, asset: dict[str, Any], template: str | None) -> str:
    """The cache key of the one API job of a fresh project at ``root``."""
    if root.exists():
        shutil.rmtree(root)
    (root / "templates").mkdir(parents=True)
    if template is not None:
        (root / "templates" / "p.j2").write_text(template, "utf-8")
    spec = root / spec_path
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(yaml.safe_dump({"assets": [asset]}, allow_unicode=True), "utf-8")
    ws = api.open_workspace(api.Request(project=root, flags={"provider": "preview"}, today=TODAY))
    (job,) = ws.plan.jobs
    assert job.cache_key is not None
    return job.cache_key


@settings(max_examples=40, deadline=None)
@given(prompt=PROMPT_TEXT, asset_id=st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True))
def test_request_key_ignores_where_the_prompt_and_project_live(prompt: str, asset_id: str):
    """One rendered prompt gives one key whether it is written inline or in a template
    file, in whichever project folder, spec path or asset id: the key is the request."""
    with tempfile.TemporaryDirectory() as tmp:
        inline = one_key(Path(tmp) / "one", "specs/a.yaml", {"id": "a", "prompt": prompt}, None)
        from_file = one_key(
            Path(tmp) / "two" / "deeper",
            "specs/x/y/other.yaml",
            {"id": asset_id, "template": "p.j2"},
            prompt,
        )
    assert inline == from_file
