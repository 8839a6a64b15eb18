"""The output tree: its files (:class:`OutputTree`) and its manifest (typed entries).

Everything here treats the folder and ``manifest.json`` as untrusted input: paths are
contained, only regular files are read or deleted, and entries are validated on load.
"""

from pipeline.output.entry import Companion, ManifestEntry
from pipeline.output.manifest import (
    MANIFEST,
    MANIFEST_VERSION,
    MAX_MANIFEST_BYTES,
    Manifest,
    load_manifest,
    read_manifest_bytes,
    write_manifest,
)
from pipeline.output.tree import GALLERY_INDEX, OUTPUT_LOCK, THUMB_DIR, OutputTree
from pipeline.output.update import next_entries, prune_entry, totals

__all__ = [
    "GALLERY_INDEX",
    "MANIFEST",
    "MANIFEST_VERSION",
    "MAX_MANIFEST_BYTES",
    "OUTPUT_LOCK",
    "THUMB_DIR",
    "Companion",
    "Manifest",
    "ManifestEntry",
    "OutputTree",
    "load_manifest",
    "next_entries",
    "prune_entry",
    "read_manifest_bytes",
    "totals",
    "write_manifest",
]
