"""``format: json``: the asset index as JSON, for tools and engines without a typed table.

The same items and names as the TypeScript index (the camelCase rule of
:mod:`pipeline.exports.identifiers`), keyed by name under ``assets``, each with its
``id``; written with sorted keys, two-space indent and a final newline, ASCII only, so an
unchanged index is the same bytes and diffs cleanly.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar, cast

from pipeline.exports.base import ExportOptions
from pipeline.exports.indexing import IndexExporter, IndexOptions, Item, Named
from pipeline.exports.typescript import url

FORMAT_VERSION = 1


class JsonOptions(IndexOptions):
    """``path`` (in the project, ``.json``) and ``base_url``, as for TypeScript."""

    suffix: ClassVar[str] = ".json"
    base_url: str = ""


def record(item: Item, base_url: str) -> dict[str, Any]:
    """One item as JSON."""
    out: dict[str, Any] = {
        "id": item.id,
        "kind": item.kind,
        "path": url(base_url, item.path),
        "width": item.width,
        "height": item.height,
        "format": item.format,
        "tags": list(item.tags),
        "sha256": item.sha256,
    }
    if item.sheet is not None:
        out.update(sheet=item.sheet, x=item.x, y=item.y)
    return out


class JsonIndex(IndexExporter):
    """``{"version": 1, "assets": {name: {...}}}``."""

    name: ClassVar[str] = "json"
    Options: ClassVar[type[ExportOptions]] = JsonOptions

    def text(self, named: Sequence[Named]) -> str:
        """The document."""
        base = cast(JsonOptions, self.options).base_url
        doc = {
            "version": FORMAT_VERSION,
            "generator": "assetpipe",
            "assets": {n.name: record(n.item, base) for n in named},
        }
        return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=True) + "\n"
