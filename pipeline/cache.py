"""Transitional; engine moves to pipeline.store.

``pipeline.runner.engine`` still imports ``CacheRecord`` and ``ResultCache`` from here.
Once it imports ``CacheRecord`` and ``ResultStore`` from :mod:`pipeline.store`, delete this
module (and its ``ignore_imports`` line in ``pyproject.toml``).
"""

from pipeline.store import CacheRecord
from pipeline.store import LocalStore as ResultCache

__all__ = ["CacheRecord", "ResultCache"]
