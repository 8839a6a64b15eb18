"""Matrix expansion: one asset per combination of its matrix values.

``matrix: {item: [sword, shield], rarity: [common, rare], exclude: [...], include: [...]}``
is the cartesian product of the value lists in the order written, minus every
combination that matches an ``exclude`` entry on all the keys it names, plus each
``include`` entry that is not already there (GitHub Actions semantics, simplified).
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

from pipeline.errors import SpecError, did_you_mean
from pipeline.spec.models import MATRIX_KEYS
from pipeline.spec.yamlsource import YMap, YSeq

MAX_COMBINATIONS = 1_000_000
"""Refuse before expanding, so a typo such as a 10,000-value list never eats memory."""

Combo = dict[str, Any]


def expand_matrix(
    asset: YMap, max_combinations: int = MAX_COMBINATIONS, limit: int | None = None
) -> list[Combo]:
    """The combinations of an asset's matrix; ``[{}]`` when it has none.

    With ``limit``, expansion stops once more than ``limit`` combinations are found and
    returns the first ``limit + 1``: enough for the planner to refuse a plan over its job
    limit without first building every combination it is about to refuse.
    """
    raw = asset.get("matrix")
    if raw is None:
        return [{}]
    where = asset.value_locations["matrix"]
    if not isinstance(raw, YMap) or not raw:
        raise SpecError(
            "'matrix' is a mapping of names to lists of values",
            where,
            "e.g. matrix: {item: [sword, shield], rarity: [common, legendary]}",
        )
    axes: dict[str, list[Any]] = {}
    for name, values in raw.items():
        if name in MATRIX_KEYS:
            continue
        if not name.isidentifier() or name in {"brand", "vars", "asset"}:
            raise SpecError(
                f"'{name}' cannot be a matrix variable name",
                raw.key_locations[name],
                "use letters, digits and '_' (it becomes a template variable)",
            )
        if isinstance(values, YSeq) and values and all(isinstance(v, YMap) for v in values):
            close = did_you_mean(name, MATRIX_KEYS)
            if close:  # `exlude: [{item: potion}]` is a typo, not a variable of mappings
                raise SpecError(f"unknown matrix key '{name}'", raw.key_locations[name], close)
        if not isinstance(values, YSeq) or not values:
            raise SpecError(
                f"matrix '{name}' needs a non-empty list of values",
                raw.value_locations[name],
                f"e.g. {name}: [a, b, c]",
            )
        repeated = _first_repeat(values)
        if repeated is not None:
            # Two equal combinations would render one id twice; say so here rather than
            # as a duplicate id whose hint (put the variable in the id) cannot help.
            raise SpecError(
                f"matrix '{name}' lists {show_value(values[repeated])} twice",
                values.item_locations[repeated],
                "give each value once",
            )
        axes[name] = list(values)
    if not axes:
        raise SpecError("'matrix' has no variables, only exclude/include", where)
    total = math.prod(len(v) for v in axes.values())
    if total > max_combinations:
        raise SpecError(
            f"the matrix has {total:,} combinations; at most {max_combinations:,} are allowed",
            where,
            "split the asset, or use 'include' for the combinations you need",
        )
    excludes = _entries(raw, "exclude", axes)
    includes = _entries(raw, "include", axes)
    names = list(axes)
    product = (
        dict(zip(names, values, strict=True)) for values in itertools.product(*axes.values())
    )
    kept = (
        (c for c in product if not any(_matches(c, e) for e in excludes)) if excludes else product
    )
    combos = list(itertools.islice(kept, None if limit is None else limit + 1))
    if limit is not None and len(combos) > limit:
        return combos
    for extra in includes:
        if extra not in combos:
            combos.append(dict(extra))
    return combos


def show_value(value: Any) -> str:
    """A matrix value short enough for a message (a mapping value shows as ``{...}``)."""
    return "{...}" if isinstance(value, dict | list) else str(value)


def _first_repeat(values: list[Any]) -> int | None:
    """The index of the first value equal to an earlier one (values may be mappings, so
    they are compared by their canonical JSON, which also keeps 1 and true apart)."""
    seen: set[str] = set()
    for i, value in enumerate(values):
        key = json.dumps(value, sort_keys=True, default=repr)
        if key in seen:
            return i
        seen.add(key)
    return None


def _matches(combo: Combo, pattern: Combo) -> bool:
    return all(combo.get(k) == v for k, v in pattern.items())


def _entries(raw: YMap, key: str, axes: dict[str, list[Any]]) -> list[Combo]:
    items = raw.get(key)
    if items is None:
        return []
    if not isinstance(items, YSeq):
        raise SpecError(
            f"matrix '{key}' is a list of mappings",
            raw.value_locations[key],
            f"e.g. {key}: [{{item: potion, rarity: legendary}}]",
        )
    out = []
    for i, entry in enumerate(items):
        if not isinstance(entry, YMap) or not entry:
            raise SpecError(
                f"each matrix '{key}' entry is a mapping of matrix variables to values",
                items.item_locations[i],
            )
        for name in entry:
            if name not in axes:
                raise SpecError(
                    f"matrix '{key}' names '{name}', which is not a matrix variable",
                    entry.key_locations[name],
                    did_you_mean(name, axes) or "matrix variables here: " + ", ".join(axes),
                )
        if key == "include" and set(entry) != set(axes):
            lacking = [n for n in axes if n not in entry]
            example = ", ".join(f"{n}: {show_value(axes[n][0])}" for n in lacking)
            raise SpecError(
                f"a matrix 'include' entry gives every variable; this one lacks "
                f"{', '.join(lacking)}",
                items.item_locations[i],
                f"add the missing value(s) to the entry, e.g. {example}",
            )
        out.append(dict(entry))
    return out
