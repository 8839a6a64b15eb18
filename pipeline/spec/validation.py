"""Pydantic validation with errors a user can act on.

Pydantic reports a path such as ``('renditions', 0, 'fitt')``; we look that path up in
the YAML tree to get ``file:line:col`` and rewrite the message: an unknown key gets a
did-you-mean from the keys that model accepts, a choice suggests the closest allowed value,
a number out of range gives the range. Models raise :func:`pipeline.spec.models.spec_error`
for messages of their own, naming the key they are about and a hint.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from pipeline.errors import Location, SpecError, did_you_mean, raise_collected
from pipeline.spec.models import SPEC_ERROR
from pipeline.spec.yamlsource import locate

M = TypeVar("M", bound=BaseModel)

UNION_MEMBERS = {"str", "FileInput", "BrandInput", "function-after[_id_shape(), str]"}
EDIT_INPUT_HINT = "an edit input is an asset id ('hero', 'hero#2'), {file: path} or {brand: logo}"


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation may hold (through Optional, list, dict, unions)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[type[BaseModel]] = []
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models_in(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list, tuple, dict) or origin is not None:
        for arg in typing.get_args(annotation):
            out.extend(_models_in(arg))
    return out


def allowed_keys(model: type[BaseModel], path: Sequence[str | int]) -> list[str]:
    """The keys accepted by the model found at ``path`` below ``model``."""
    current: list[type[BaseModel]] = [model]
    for step in path:
        if not isinstance(step, str):
            continue
        nxt: list[type[BaseModel]] = []
        for m in current:
            field = m.model_fields.get(step)
            if field is not None:
                nxt.extend(_models_in(field.annotation))
        if nxt:
            current = nxt
    keys: list[str] = []
    for m in current:
        keys.extend(k for k in m.model_fields if k not in keys)
    return keys


def validate(
    model: type[M],
    data: Any,
    tree: Any,
    fallback: Location,
    *,
    base_path: Sequence[str | int] = (),
    known_extra: Sequence[str] = (),
) -> M:
    """Validate ``data`` (plain values) as ``model``; errors are located in ``tree`` (YAML)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = _spec_errors(model, exc, tree, fallback, base_path, known_extra)
        raise_collected(errors)
        raise AssertionError("unreachable") from None


def _spec_errors(
    model: type[BaseModel],
    exc: ValidationError,
    tree: Any,
    fallback: Location,
    base_path: Sequence[str | int],
    known_extra: Sequence[str],
) -> list[SpecError]:
    errors: list[SpecError] = []
    seen: set[tuple[str | int, ...]] = set()
    for err in exc.errors(include_url=False):
        loc = list(err["loc"])
        union_at = next((i for i, step in enumerate(loc) if step in UNION_MEMBERS), None)
        if union_at is not None:
            path = tuple(loc[:union_at])
            if path in seen:
                continue
            seen.add(path)
            where = locate(tree, [*base_path, *path]) or fallback
            errors.append(
                SpecError(f"'{_dotted(path)}' is not a valid edit input", where, EDIT_INPUT_HINT)
            )
            continue
        path = tuple(loc)
        kind = err["type"]
        ctx = err.get("ctx") or {}
        if kind == "extra_forbidden":
            key = str(path[-1])
            where = locate(tree, [*base_path, *path], key=True) or fallback
            choices = list(
                dict.fromkeys(
                    [*allowed_keys(model, path[:-1]), *(known_extra if len(path) == 1 else ())]
                )
            )
            hint = did_you_mean(key, choices) or "allowed keys: " + ", ".join(sorted(choices))
            errors.append(SpecError(f"unknown key '{key}'", where, hint))
            continue
        if kind == SPEC_ERROR:
            # A message written for the user; ``at`` names the key a model rule is about.
            at = ctx.get("at")
            if at is not None:
                path = (*path, at)
            where = locate(tree, [*base_path, *path]) or fallback
            errors.append(SpecError(str(err["msg"]), where, ctx.get("hint")))
            continue
        where = locate(tree, [*base_path, *path]) or fallback
        message = str(err["msg"]).removeprefix("Value error, ")
        name = _dotted(path)
        if kind == "missing":
            errors.append(SpecError(f"'{name}' is required", where, _missing_hint(path)))
        elif kind == "literal_error":
            errors.append(_choice_error(name, err, where))
        elif name:
            errors.append(SpecError(f"'{name}': {message}", where, _hint(kind, ctx, model, path)))
        else:
            errors.append(SpecError(message, where))
    return errors


TYPE_HINTS = {
    "int_parsing": "write a whole number, e.g. 2",
    "int_type": "write a whole number, e.g. 2",
    "int_from_float": "write a whole number, e.g. 2",
    "float_parsing": "write a number, e.g. 0.5",
    "float_type": "write a number, e.g. 0.5",
    "string_type": 'write text; quote it in YAML if it looks like a number or a date, e.g. "2"',
    "bool_parsing": "write true or false",
    "bool_type": "write true or false",
    "list_type": "write a list, e.g. [a, b] or one '- item' per line",
    "dict_type": "write a mapping of keys to values, e.g. {key: value}",
    "model_type": "write a mapping of keys to values, e.g. {key: value}",
    "model_attributes_type": "write a mapping of keys to values, e.g. {key: value}",
    "too_short": "give at least one item",
}
"""What would be right, for pydantic's type errors."""

BOUND_KINDS = frozenset({"greater_than_equal", "less_than_equal", "greater_than", "less_than"})


def _hint(
    kind: str, ctx: dict[str, Any], model: type[BaseModel], path: Sequence[str | int]
) -> str | None:
    """What would be right for an error of pydantic type ``kind`` at ``path``."""
    if kind in BOUND_KINDS:
        low, high = _bounds(model, path)
        if low is not None and high is not None:
            return f"use a number from {low} to {high}"
        for key, words in (("ge", "at least"), ("le", "at most"), ("gt", "over"), ("lt", "under")):
            if key in ctx:
                return f"use a number {words} {ctx[key]}"
    return TYPE_HINTS.get(kind)


def _missing_hint(path: Sequence[str | int]) -> str | None:
    last = path[-1] if path else None
    return f"add '{last}: ...'" if isinstance(last, str) else None


def _choice_error(name: str, err: Any, where: Location) -> SpecError:
    """A value outside a fixed set of choices: say which, suggest the closest, list them all."""
    expected = str((err.get("ctx") or {}).get("expected", ""))
    choices = re.findall(r"'([^']*)'", expected)
    value = err.get("input")
    close = did_you_mean(value, choices) if isinstance(value, str) else None
    listed = "use one of " + ", ".join(choices) if choices else None
    hint = f"{close} ({listed})" if close and listed else (close or listed)
    subject = f"'{name}'" if name else "the value"
    return SpecError(f"{subject} cannot be {value!r}", where, hint)


def _bounds(model: type[BaseModel], path: Sequence[str | int]) -> tuple[Any, Any]:
    """The inclusive (low, high) bounds of the number field at ``path``, or Nones."""
    names = [step for step in path if isinstance(step, str)]
    current: list[type[BaseModel]] = [model]
    for i, step in enumerate(names):
        info = next((m.model_fields[step] for m in current if step in m.model_fields), None)
        if info is None:
            break
        if i == len(names) - 1:
            metadata = [*info.metadata, *_annotated_metadata(info.annotation)]
            low = next((m.ge for m in metadata if hasattr(m, "ge")), None)
            high = next((m.le for m in metadata if hasattr(m, "le")), None)
            return low, high
        current = _models_in(info.annotation)
    return None, None


def _annotated_metadata(annotation: Any) -> list[Any]:
    """Constraint objects of ``Annotated[...]`` inside an annotation (e.g. in an Optional)."""
    out: list[Any] = []
    if typing.get_origin(annotation) is typing.Annotated:
        for extra in typing.get_args(annotation)[1:]:
            out.extend(getattr(extra, "metadata", [extra]))
        return out
    for arg in typing.get_args(annotation):
        out.extend(_annotated_metadata(arg))
    return out


def _dotted(path: Sequence[str | int]) -> str:
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else step)
    return out
