"""An assetpipe exporter, installed as a plugin: a CSV index of the delivered files.

``exports: [{format: csv-index, path: index.csv}]`` in ``assetpipe.yaml`` writes one row
per delivered file (path, width, height, sha256), sorted by path, after every build that
changed the manifest and on ``assetpipe export``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import ClassVar

from pydantic import field_validator

from pipeline.exports import ExportOptions, ExportPlan, path_problem
from pipeline.output import ManifestEntry


class CsvIndexOptions(ExportOptions):
    """Where the CSV goes, relative to the output folder."""

    path: str = "index.csv"

    @field_validator("path")
    @classmethod
    def _relative(cls, value: str) -> str:
        problem = path_problem(value)
        if problem is not None or not value.endswith(".csv"):
            raise ValueError(problem or "the index is a .csv file")
        return value


class CsvIndex:
    """One row per delivered file: path, width, height, sha256."""

    name: ClassVar[str] = "csv-index"
    Options: ClassVar[type[ExportOptions]] = CsvIndexOptions

    def __init__(self, options: CsvIndexOptions) -> None:
        self.options = options

    def reserved(self) -> Sequence[str]:
        return (self.options.path,)

    def render(self, entries: Sequence[ManifestEntry], plan: ExportPlan) -> Mapping[str, bytes]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["path", "width", "height", "sha256"])
        for entry in sorted(entries, key=lambda e: e.path):
            if entry.sha256 is None or entry.stale:
                continue
            writer.writerow([entry.path, entry.width or "", entry.height or "", entry.sha256])
        return {self.options.path: buffer.getvalue().encode("utf-8")}
