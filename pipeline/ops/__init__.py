"""Image operations: named, pure, local steps on a Pillow image, listed under ``ops:``.

Each operation is an :class:`Operation` with a typed parameters model (an
:class:`OpParams`: unknown keys and out-of-range values are spec errors at their line),
a ``version`` that enters the cache key of every file it touches, and optionally
``expensive`` (its result is memoised per input). The built-in ones (``fit``, ``resize``,
``crop``, ``pad``, ``flip``, ``trim``, ``canvas``, ``chroma_key``, ``pixelate``,
``quantize``) are registered in :mod:`pipeline.ops.registry`; third-party
ones through the ``assetpipe.ops`` entry point group. The delivered file of every asset
and every rendition is fitted by the registered ``fit``.

The modules behind it:

- :mod:`~pipeline.ops.base`: what an operation is, and the parameter types they share;
- :mod:`~pipeline.ops.registry`: the built-in operations and the plugins;
- :mod:`~pipeline.ops.chain`: a spec's list checked into calls, and calls applied;
- one module per built-in operation (:mod:`~pipeline.ops.fit`, ...).
"""

from __future__ import annotations

from pipeline.ops.base import (
    MAX_SIDE,
    Anchor,
    Color,
    OpContext,
    Operation,
    OpError,
    OpParams,
    Size,
    anchored,
    canvas,
    check_side,
    rgba,
)
from pipeline.ops.chain import (
    OpMemo,
    apply_ops,
    chain_exact,
    chain_size,
    pixel_digest,
    plan_ops,
)
from pipeline.ops.registry import ENTRY_POINT_GROUP, fingerprint, get, names, operations

__all__ = [
    "ENTRY_POINT_GROUP",
    "MAX_SIDE",
    "Anchor",
    "Color",
    "OpContext",
    "OpError",
    "OpMemo",
    "OpParams",
    "Operation",
    "Size",
    "anchored",
    "apply_ops",
    "canvas",
    "chain_exact",
    "chain_size",
    "check_side",
    "fingerprint",
    "get",
    "names",
    "operations",
    "pixel_digest",
    "plan_ops",
    "rgba",
]
