"""A list of operations, from a spec entry to pixels: checked when planned, applied when
built, and memoised where an operation says it is expensive.

:func:`plan_ops` turns a spec's ``ops:`` into :class:`~pipeline.jobs.job.OpCall` values
(the name, the parameters as the operation's model validated them, its version), with
every mistake reported at its ``file:line``; :func:`apply_ops` runs them. The runner never
trusts a plan for what an operation is: it finds the operation by name again and checks
the parameters again, and a plan made with another version of it is refused (planning
again records the new version, and so the new key).
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Final, Protocol

from PIL import Image, UnidentifiedImageError
from pydantic import ValidationError

from pipeline.errors import Location, SpecError, SpecErrors, did_you_mean, raise_collected
from pipeline.hashing import canonical_json, sha256_bytes
from pipeline.jobs.job import OpCall
from pipeline.ops import registry
from pipeline.ops.base import (
    MAX_SIDE,
    OpContext,
    Operation,
    OpError,
    OpParams,
    SizeTuple,
    check_side,
    dumped,
)
from pipeline.spec.models import MAX_OPS
from pipeline.spec.validation import validate
from pipeline.spec.yamlsource import locate

_MEMO_MODES: Final = frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"})
"""Modes a PNG holds exactly: only their results are memoised (read back the same)."""


class OpMemo(Protocol):
    """Where the results of expensive operations are kept, by a digest of their input
    pixels and the call (``pipeline.store.memo`` is the build's; it never raises)."""

    def op_result(self, digest: str) -> bytes | None:
        """The PNG kept under ``digest``, or None."""
        ...

    def keep_op_result(self, digest: str, data: bytes) -> None:
        """Keep a PNG under ``digest``."""
        ...


def plan_ops(
    entries: Sequence[Mapping[str, Any]],
    size: SizeTuple,
    tree: Any,
    path: Sequence[str | int],
    fallback: Location,
    context: OpContext | None = None,
) -> tuple[tuple[OpCall, ...], SizeTuple]:
    """The calls of a spec's ``ops:`` list for an image of ``size``, and the size they
    make (the largest it can be after an operation sized by the content). ``tree`` is
    the YAML the list is written in (None when it comes from ``defaults:``) with the list
    at ``path``; ``fallback`` is where an error goes when the tree cannot tell;
    ``context`` is what the plan knows of the image (the brand's colors). Every entry's
    mistakes are reported, each at its key."""
    if len(entries) > MAX_OPS:
        raise SpecError(
            f"{len(entries)} operations; a list takes at most {MAX_OPS}",
            fallback,
            "combine or remove some",
        )
    known = registry.operations()
    calls: list[OpCall] = []
    errors: list[SpecError] = []
    for i, entry in enumerate(entries):
        where = _locate(tree, [*path, i], fallback)
        name = entry.get("op")
        op = known.get(name) if isinstance(name, str) else None
        if op is None:
            errors.append(_unknown(name, _locate(tree, [*path, i, "op"], where), known))
            continue
        data = {k: v for k, v in entry.items() if k != "op"}
        try:
            params = validate(op.Params, data, tree, where, base_path=(*path, i))
        except SpecError as exc:
            errors.append(exc)
            continue
        except SpecErrors as exc:
            errors.extend(exc.errors)
            continue
        try:
            params = op.planned(params, context or OpContext())
        except (ValueError, OpError) as exc:
            errors.append(SpecError(str(exc), where))
            continue
        if not errors:
            try:
                size = check_side(f"after '{name}' the image", op.output_size(size, params))
            except OpError as exc:
                errors.append(SpecError(str(exc), where, _size_hint(name)))
        calls.append(OpCall(name=op.name, params=dumped(params), version=op.version))
    raise_collected(errors)
    return tuple(calls), size


def chain_size(
    size: SizeTuple, calls: Sequence[OpCall], known: Mapping[str, Operation[Any]] | None = None
) -> SizeTuple:
    """The size ``calls`` make of an image of ``size`` (:class:`OpError` if they cannot)."""
    for call in calls:
        op, params = _resolved(call, known)
        size = check_side(f"after '{call.name}' the image", op.output_size(size, params))
    return size


def chain_exact(calls: Sequence[OpCall], known: Mapping[str, Operation[Any]] | None = None) -> bool:
    """Whether the size ``calls`` make is known before they run: True unless an
    operation sized by its content (``trim``) is followed by none whose result has one
    size whatever it is given (``canvas``, ``fit``, ``resize``, ``pad``)."""
    exact = True
    for call in calls:
        op, params = _resolved(call, known)
        if op.sized_by_content:
            exact = False
        elif not exact:
            exact = _fixed_size(op, params)
    return exact


def _fixed_size(op: Operation[Any], params: OpParams) -> bool:
    """Whether ``op`` makes one size from every image it accepts (probed with a few
    sizes; those it refuses, as ``pad`` refuses one larger than its canvas, say nothing)."""
    made = set()
    for probe in ((1, 1), (3, 2), (MAX_SIDE, MAX_SIDE)):
        try:
            made.add(op.output_size(probe, params))
        except OpError:
            continue
    return len(made) == 1


def apply_ops(
    image: Image.Image,
    calls: Sequence[OpCall],
    memo: OpMemo | None = None,
    known: Mapping[str, Operation[Any]] | None = None,
) -> Image.Image:
    """``image`` through ``calls`` in order. An expensive operation's result is read from
    ``memo`` when it ran on the same pixels with the same call before, else made and kept.
    ``known`` is the operations by name (default: the registry's)."""
    for call in calls:
        op, params = _resolved(call, known)
        expected = check_side(f"after '{call.name}' the image", op.output_size(image.size, params))
        if not (op.expensive and memo is not None and image.mode in _MEMO_MODES):
            image = _checked(op.apply(image, params), call.name, expected, op.sized_by_content)
            continue
        digest = sha256_bytes(
            canonical_json({"input": pixel_digest(image), **call.as_dict()}).encode()
        )
        kept = _read_png(memo.op_result(digest))
        if kept is not None and _fits(kept.size, expected, op.sized_by_content):
            image = kept
            continue
        image = _checked(op.apply(image, params), call.name, expected, op.sized_by_content)
        if image.mode in _MEMO_MODES:
            memo.keep_op_result(digest, _png(image))
    return image


def pixel_digest(image: Image.Image) -> str:
    """The sha256 of an image's pixels (mode, size, palette and bytes): what an
    expensive operation's result is memoised by."""
    digest = hashlib.sha256(f"{image.mode} {image.width}x{image.height}\n".encode())
    palette = image.getpalette() if image.mode in ("P", "PA") else None
    if palette:
        digest.update(bytes(palette))
    digest.update(repr(image.info.get("transparency")).encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def _resolved(
    call: OpCall, known: Mapping[str, Operation[Any]] | None
) -> tuple[Operation[Any], OpParams]:
    """The registered operation a call names, and its parameters validated again."""
    op = (known if known is not None else registry.operations()).get(call.name)
    if op is None:
        raise OpError(
            f"the operation '{call.name}' is not installed (it was when this plan was made); "
            "install its plugin, or remove it from the spec"
        )
    if op.version != call.version:
        raise OpError(
            f"the operation '{call.name}' is version {op.version}, but the plan was made "
            f"with version {call.version}: plan again"
        )
    try:
        return op, op.Params.model_validate(dict(call.params))
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise OpError(f"the parameters of '{call.name}' are not valid: {first['msg']}") from None


def _fits(size: SizeTuple, expected: SizeTuple, bounded: bool) -> bool:
    """Whether ``size`` is ``expected``, or within it when that is only a bound."""
    if bounded:
        return 1 <= size[0] <= expected[0] and 1 <= size[1] <= expected[1]
    return size == expected


def _checked(image: object, name: str, expected: SizeTuple, bounded: bool = False) -> Image.Image:
    """An operation's result, when it is an image of the size it said it would make
    (within it, for an operation sized by its content)."""
    if not isinstance(image, Image.Image):
        raise OpError(f"the operation '{name}' returned {type(image).__name__}, not an image")
    if not _fits(image.size, expected, bounded):
        raise OpError(
            f"the operation '{name}' made a {image.width}x{image.height} image; it said "
            f"{expected[0]}x{expected[1]}"
        )
    return image


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _read_png(data: bytes | None) -> Image.Image | None:
    """A memoised result, decoded; None when it is not a PNG within :data:`MAX_SIDE`
    (the memo is untrusted: then the operation runs again)."""
    if data is None:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=["PNG"])
            if image.width > MAX_SIDE or image.height > MAX_SIDE:
                return None
            image.load()
    except (
        OSError,
        ValueError,
        UnidentifiedImageError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ):
        return None
    return image


def _locate(tree: Any, path: Sequence[str | int], fallback: Location) -> Location:
    """Where ``path`` is written in ``tree`` (as deep as it knows), else ``fallback``."""
    found = locate(tree, path) if tree is not None else None
    return found or fallback


def _unknown(name: object, where: Location, known: Mapping[str, Any]) -> SpecError:
    """An ``op:`` that names no operation: the closest name and every known one."""
    listed = "known operations: " + ", ".join(sorted(known))
    if not isinstance(name, str):
        return SpecError("an operation needs 'op: NAME'", where, listed)
    close = did_you_mean(name, known)
    return SpecError(
        f"unknown operation '{name}'", where, f"{close} ({listed})" if close else listed
    )


def _size_hint(name: object) -> str:
    return f"check the sizes of '{name}' and of the operations before it"
