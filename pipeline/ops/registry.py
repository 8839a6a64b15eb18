"""The one list of image operations: the built-in ones, then those of installed plugins.

A spec names an operation by ``op:``; the planner checks its parameters with the model
found here, and the runner applies it by the same name. A new built-in operation is one
module under :mod:`pipeline.ops` plus one line in :data:`BUILTIN`; a third-party one is a
package whose ``assetpipe.ops`` entry point names an :class:`~pipeline.ops.Operation`
(an instance, or a subclass made with no arguments), and assetpipe does not change.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from pipeline.ops.base import Operation, OpParams
from pipeline.ops.canvas_op import Canvas
from pipeline.ops.chroma_key import ChromaKey
from pipeline.ops.crop import Crop
from pipeline.ops.fit import Fit
from pipeline.ops.flip import Flip
from pipeline.ops.pad import Pad
from pipeline.ops.pixelate import Pixelate
from pipeline.ops.quantize import Quantize
from pipeline.ops.resize import Resize
from pipeline.ops.trim import Trim
from pipeline.plugins import add_plugins, entry_points_of

log = logging.getLogger("assetpipe.ops")

ENTRY_POINT_GROUP: Final = "assetpipe.ops"
NAME: Final = re.compile(r"[a-z][a-z0-9_]{0,39}")
"""What an operation may be called: it is written in specs and recorded in manifests."""

AnyOperation = Operation[Any]

BUILTIN: tuple[AnyOperation, ...] = (
    Fit(),
    Resize(),
    Crop(),
    Pad(),
    Flip(),
    Trim(),
    Canvas(),
    ChromaKey(),
    Pixelate(),
    Quantize(),
)


@functools.cache
def operations() -> Mapping[str, AnyOperation]:
    """Every operation by name: the built-in ones, then those of installed plugins.

    A plugin that fails to load, is not an operation, or reuses a name already taken is
    skipped with one warning rather than breaking every command."""
    return with_plugins(BUILTIN, _points())


def _points() -> tuple[Any, ...]:
    return entry_points_of(ENTRY_POINT_GROUP)


def fingerprint() -> list[list[str]]:
    """The installed plugins of operations, each with its distribution's version: a plan
    stored before one was installed, upgraded or removed names other versions and
    parameters than those now installed, so it is made again."""
    return sorted(
        [str(point.value), str(getattr(point.dist, "version", ""))] for point in _points()
    )


def with_plugins(builtin: Iterable[AnyOperation], points: Iterable[Any]) -> dict[str, AnyOperation]:
    """``builtin`` by name, plus each entry point's operation that loads and is valid."""
    found = {op.name: op for op in builtin}

    def accept(loaded: object) -> AnyOperation | str:
        op = loaded() if isinstance(loaded, type) and issubclass(loaded, Operation) else loaded
        problem = _problem(op)
        return op if problem is None and isinstance(op, Operation) else str(problem)

    add_plugins(found, points, accept, lambda op: op.name, what="operation", log=log)
    return found


def _problem(op: object) -> str | None:
    """What makes ``op`` unusable as an operation (None: nothing)."""
    if not isinstance(op, Operation):
        return "is not an Operation"
    name = getattr(op, "name", None)
    if not isinstance(name, str) or not NAME.fullmatch(name):
        return f"has the name {name!r}; a name is lower-case letters, digits and '_'"
    version = getattr(op, "version", None)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        return f"has the version {version!r}; a version is a whole number from 1"
    params = getattr(op, "Params", None)
    if not (isinstance(params, type) and issubclass(params, OpParams)):
        return "has no Params model (a subclass of OpParams)"
    return None


def get(name: str) -> AnyOperation | None:
    """The operation called ``name``, or None."""
    return operations().get(name)


def names() -> list[str]:
    """Every operation's name, sorted (for hints and listings)."""
    return sorted(operations())
