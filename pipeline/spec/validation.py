"""Pydantic validation with errors a user can act on.

Pydantic reports a path such as ``('renditions', 0, 'fitt')``; we look that path up in
the YAML tree to get ``file:line:col`` and rewrite the message: an unknown key gets a
did-you-mean from the keys that model accepts, a choice lists the allowed values.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from pipeline.errors import Location, SpecError, did_you_mean, raise_collected
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
        if kind == "extra_forbidden":
            key = str(path[-1])
            where = locate(tree, [*base_path, *path], key=True) or fallback
            choices = [*allowed_keys(model, path[:-1]), *(known_extra if len(path) == 1 else ())]
            hint = did_you_mean(key, choices) or "allowed keys: " + ", ".join(sorted(choices))
            errors.append(SpecError(f"unknown key '{key}'", where, hint))
            continue
        where = locate(tree, [*base_path, *path]) or fallback
        message = str(err["msg"]).removeprefix("Value error, ")
        name = _dotted(path)
        if kind == "missing":
            errors.append(SpecError(f"'{name}' is required", where))
        elif name:
            errors.append(SpecError(f"'{name}': {message}", where, _hint(kind, err)))
        else:
            errors.append(SpecError(message, where))
    return errors


def _hint(kind: str, err: Any) -> str | None:
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected")
        return f"use one of {expected}" if expected else None
    return None


def _dotted(path: Sequence[str | int]) -> str:
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else step)
    return out
