"""The one list of exporters: the built-in ones and those of installed plugins.

Settings validate ``exports:`` against it and the build runs what it names, so a new
exporter is one module plus one line in :data:`BUILTIN`. Third-party packages add
exporters through the ``assetpipe.exporters`` entry point group, as they add providers:
each entry point names an exporter class (see :class:`~pipeline.exports.base.Exporter`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from pipeline.exports.base import Exporter
from pipeline.exports.contact_sheet import ContactSheetExporter
from pipeline.exports.csharp import CSharpIndex
from pipeline.exports.gallery import GalleryExporter
from pipeline.exports.gdscript import GdscriptIndex
from pipeline.exports.jsonindex import JsonIndex
from pipeline.exports.typescript import TypeScriptIndex
from pipeline.plugins import add_plugins, entry_points_of

log = logging.getLogger("assetpipe.exports")

ENTRY_POINT_GROUP = "assetpipe.exporters"

ExporterClass = type[Exporter]
"""What the registry holds: a class that takes its validated options."""

BUILTIN: tuple[Any, ...] = (
    GalleryExporter,
    TypeScriptIndex,
    CSharpIndex,
    GdscriptIndex,
    JsonIndex,
    ContactSheetExporter,
)

DEFAULT_ON: tuple[str, ...] = ("gallery",)
"""Exporters that run when ``exports:`` does not mention them (as the gallery always
has); an entry ``{format: gallery, enabled: false}`` turns one off."""


def is_exporter_class(value: object) -> bool:
    """Whether ``value`` looks like an exporter class: a type with a ``name``, an
    ``Options`` model, ``reserved`` and ``render``."""
    options = getattr(value, "Options", None)
    return (
        isinstance(value, type)
        and isinstance(getattr(value, "name", None), str)
        and bool(getattr(value, "name", ""))
        and isinstance(options, type)
        and issubclass(options, BaseModel)
        and callable(getattr(value, "reserved", None))
        and callable(getattr(value, "render", None))
    )


@functools.cache
def exporters() -> Mapping[str, ExporterClass]:
    """Every exporter by name: the built-in ones, then those of installed plugins.

    A plugin that fails to load, is not an exporter class, or reuses a name already
    taken is skipped with a warning rather than breaking every command.
    """
    found: dict[str, ExporterClass] = {cls.name: cls for cls in BUILTIN}

    def accept(value: object) -> ExporterClass | str:
        if is_exporter_class(value):
            return value  # type: ignore[return-value]
        return "is not an exporter class (name, Options, reserved, render)"

    points = entry_points_of(ENTRY_POINT_GROUP)
    add_plugins(found, points, accept, lambda cls: cls.name, what="exporter", log=log)
    return found


def get(name: str) -> ExporterClass | None:
    """The exporter called ``name``, or None."""
    return exporters().get(name)
