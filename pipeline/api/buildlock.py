"""The project's build lock (``.assetpipe/build.lock``).

Held by a build with work (:mod:`~pipeline.api.running`) for its whole run, and briefly
by a build that checks whether there is nothing to do (:mod:`~pipeline.api.building`),
so that the check never reads files another build is halfway through writing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from pipeline.fsutil import held_lock

LOCK_FILE = "build.lock"


@contextlib.contextmanager
def project_lock(cache_dir: Path) -> Iterator[None]:
    """Hold the project's build lock, or fail at once with a clear message."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with held_lock(
        cache_dir / LOCK_FILE,
        "the build lock",
        lambda holder: (
            f"another assetpipe build is running in this project (pid {holder}); "
            "wait for it to finish, then build again"
        ),
    ):
        yield
