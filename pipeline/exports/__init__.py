"""Exporters: files made from the manifest, after a build or by ``assetpipe export``.

- :mod:`~pipeline.exports.base`: the :class:`Exporter` protocol, its options' base and
  what it is handed (:class:`ExportPlan`);
- :mod:`~pipeline.exports.registry`: the built-in exporters and the plugins'
  (entry point group ``assetpipe.exporters``);
- :mod:`~pipeline.exports.config`: ``exports:`` in ``assetpipe.yaml``, validated;
- :mod:`~pipeline.exports.writing`: running them, writing only files that changed;
- :mod:`~pipeline.exports.gallery`: the gallery page, the first exporter;
- :mod:`~pipeline.exports.contact_sheet` (drawn by :mod:`~pipeline.exports.contact_drawing`):
  every delivered image as one labelled PNG grid;
- :mod:`~pipeline.exports.indexing` and :mod:`~pipeline.exports.identifiers`: what the
  asset indexes list and how ids become names, shared by
  :mod:`~pipeline.exports.typescript`, :mod:`~pipeline.exports.csharp`,
  :mod:`~pipeline.exports.gdscript` and :mod:`~pipeline.exports.jsonindex`.
"""

from pipeline.exports.base import (
    Exporter,
    ExportError,
    ExportOptions,
    ExportPlan,
    Prepares,
    Tidies,
    covers,
    path_problem,
)
from pipeline.exports.config import (
    ConfiguredExport,
    configured_exports,
    exports_digest,
    fold,
    reserved_paths,
)
from pipeline.exports.registry import ENTRY_POINT_GROUP, exporters
from pipeline.exports.writing import ExportResult, write_exports

__all__ = [
    "ENTRY_POINT_GROUP",
    "ConfiguredExport",
    "ExportError",
    "ExportOptions",
    "ExportPlan",
    "ExportResult",
    "Exporter",
    "Prepares",
    "Tidies",
    "configured_exports",
    "covers",
    "exporters",
    "exports_digest",
    "fold",
    "path_problem",
    "reserved_paths",
    "write_exports",
]
