"""Checks on the operations a template runs, made from their arguments before they run.

Every operation that can turn a few characters of template into a great deal of memory
is checked *before* it runs: a width or precision (``'%1000000000d' % 1``, ``zfill``,
``center``), a repetition, a concatenation (which doubles in a loop or a recursive
macro), a power, a join, a replace. Each result must fit in the bounds of
:mod:`pipeline.templating.limits`; the sandbox calls these checks from its hooks.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from typing import Any

from pipeline.templating.limits import (
    MAX_ITEMS,
    MAX_NUMBER_BITS,
    MAX_RENDERED_CHARS,
    NUMBER_HINT,
    SIZE_HINT,
    TemplateLimit,
    check_text,
    count_width,
    short,
    too_big,
)

# -- operators -----------------------------------------------------------------------------


def check_power(left: Any, right: Any) -> None:
    """``left ** right`` stays under MAX_NUMBER_BITS."""
    if not (isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1):
        return
    if right * (abs(left).bit_length() - 1) > MAX_NUMBER_BITS:
        raise TemplateLimit(f"the number {short(left)} ** {short(right)} is too large", NUMBER_HINT)


def check_product(left: Any, right: Any) -> int:
    """``left * right`` on numbers or sequences stays small; returns the result's size."""
    if isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > MAX_NUMBER_BITS:
            raise TemplateLimit(
                f"the number {short(left)} * {short(right)} is too large", NUMBER_HINT
            )
        return 0
    seq, times = (left, right) if isinstance(right, int) else (right, left)
    if isinstance(seq, str | bytes | bytearray | list | tuple) and isinstance(times, int):
        size = len(seq) * times
        unit = "items" if isinstance(seq, list | tuple) else "characters"
        too_big(
            f"{short(seq)} * {times:,}",
            size,
            unit,
            f"a rendered template has at most {MAX_RENDERED_CHARS:,} characters, and a "
            "prompt at most 32,000; repeat less",
        )
        return max(size, 0)
    return 0


def check_sum(left: Any, right: Any) -> int:
    """``left + right``: numbers stay under MAX_NUMBER_BITS, text and lists under their
    limits (``s + s`` doubles in a loop); returns the result's size."""
    if isinstance(left, int) and isinstance(right, int):
        if max(left.bit_length(), right.bit_length()) >= MAX_NUMBER_BITS:
            raise TemplateLimit(
                f"the number {short(left)} + {short(right)} is too large", NUMBER_HINT
            )
        return 0
    for kinds, unit in (
        ((str,), "characters"),
        ((bytes, bytearray), "characters"),
        ((list, tuple), "items"),
    ):
        if isinstance(left, kinds) and isinstance(right, kinds):
            size = len(left) + len(right)
            too_big(f"{short(left)} + {short(right)}", size, unit)
            return size
    return 0


def check_concat(values: tuple[Any, ...]) -> int:
    """``a ~ b ~ ...`` (Jinja's text concatenation) stays under the output limit."""
    size = 0
    for value in values:
        size += check_text(value, "joining")
    too_big("joining text with ~", size)
    return size


_PRINTF = re.compile(
    r"%(?:\((?P<key>[^)]*)\))?[-#0 +]*(?P<width>\*|\d+)?(?:\.(?P<precision>\*|\d*))?[hlL]?"
    r"(?P<type>.?)",
    re.DOTALL,
)


def _digits(text: str) -> int:
    """A number written in a format, without int()'s 4,300-digit limit getting in the way
    (Python refuses widths past 19 digits itself)."""
    return int(text) if len(text) <= 19 else 10**19


def check_printf(template: str | bytes | bytearray, args: Any) -> int:
    """``template % args``: every width and precision, and the arguments' text, fit in the
    output limit. Returns an upper bound of the result's length."""
    text = template.decode("latin-1") if isinstance(template, bytes | bytearray) else template
    positional = args if isinstance(args, tuple) else (args,)
    index = 0
    size = len(text)
    for match in _PRINTF.finditer(text):
        if match["type"] == "%" and not match["width"] and match["precision"] is None:
            continue
        for part in ("width", "precision"):
            raw = match[part]
            if raw == "*":
                star = positional[index] if index < len(positional) else 0
                index += 1
                number = abs(star) if isinstance(star, int) else 0
            else:
                number = _digits(raw) if raw else 0
            if number > MAX_RENDERED_CHARS:
                raise TemplateLimit(
                    f"the format {short(match[0])} asks for {number:,} characters "
                    f"(at most {MAX_RENDERED_CHARS:,})",
                    SIZE_HINT,
                )
            size += number
        index += 1
    size += check_text(args, "formatting")
    too_big(f"formatting {short(template)}", size)
    return size


def spec_width(spec: str) -> int:
    """The largest number in a ``str.format`` spec (its width or precision)."""
    return max((_digits(d) for d in re.findall(r"\d+", spec)), default=0)


# -- methods of built-in values ------------------------------------------------------------


def check_method(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Refuse a call of a built-in method whose result would be too large, before it runs.

    Returns the positional arguments to call with: an iterator given to ``join`` or
    ``extend`` is read (at most one item past the limit) so it can be measured.
    """
    owner = getattr(obj, "__self__", None)
    name = getattr(obj, "__name__", "")
    if isinstance(owner, str | bytes | bytearray):
        return _text_method(owner, name, args, kwargs)
    if isinstance(owner, int) and name == "to_bytes":
        length = args[0] if args else kwargs.get("length", 1)
        count_width(length, "to_bytes")
    elif isinstance(owner, list) and name == "extend" and args:
        items = args[0] if isinstance(args[0], list | tuple | str) else _read(args[0])
        too_big(f"extending a list of {len(owner):,} items", len(owner) + len(items), "items")
        return (items, *args[1:])
    return args


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], i: int, name: str, default: Any) -> Any:
    return args[i] if len(args) > i else kwargs.get(name, default)


def _read(iterable: Any) -> list[Any]:
    return list(itertools.islice(iterable, MAX_ITEMS + 1))


def _text_method(
    owner: str | bytes | bytearray, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, ...]:
    what = f"{short(owner)}.{name}"
    if name in ("center", "ljust", "rjust", "zfill"):
        count_width(_arg(args, kwargs, 0, "width", 0), what)
    elif name == "expandtabs":
        tabsize = _arg(args, kwargs, 0, "tabsize", 8)
        if isinstance(tabsize, int):
            tabs = owner.count("\t") if isinstance(owner, str) else owner.count(b"\t")
            too_big(f"{what}({tabsize:,})", len(owner) + tabs * max(tabsize, 0))
    elif name == "replace":
        old, new = _arg(args, kwargs, 0, "old", ""), _arg(args, kwargs, 1, "new", "")
        count = _arg(args, kwargs, 2, "count", -1)
        kinds = str if isinstance(owner, str) else (bytes, bytearray)
        if isinstance(old, kinds) and isinstance(new, kinds):
            too_big(what, replaced_size(owner, old, new, count))
    elif name == "join" and args:
        items = args[0] if isinstance(args[0], list | tuple) else _read(args[0])
        too_big(f"{what} of {len(items):,} items", joined_size(owner, items))
        return (items, *args[1:])
    elif name == "translate" and args and isinstance(args[0], Mapping):
        longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
        too_big(what, len(owner) * max(longest, 1))
    return args


def replaced_size(text: Any, old: Any, new: Any, count: Any) -> int:
    """The length of ``text.replace(old, new, count)``, counted before it is made."""
    found = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * (len(new) - len(old))


def joined_size(separator: Any, items: list[Any] | tuple[Any, ...]) -> int:
    """The length of ``separator.join(items)`` (items as text), counted before it is made."""
    if len(items) > MAX_ITEMS:
        too_big("joining a list", len(items), "items")
    size = len(separator) * max(len(items) - 1, 0)
    too_big(f"joining {len(items):,} items with {short(separator)}", size)
    for item in items:
        size += check_text(item, "joining")
        if size > MAX_RENDERED_CHARS:
            break
    return size
