"""What a shared cache's failures have shown so far, and what each new one means.

A shared cache never fails a build; it only costs work or money when it fails, so how
much each failure takes out is the whole question. :class:`Failures` answers it for one
:class:`~pipeline.store.remote.ObjectStore`, which does the reading and writing:

- a store that proves unusable (nothing listening, refused credentials, no bucket) is
  down: asked no more, so a dead endpoint costs one timeout, not one a job;
- a refused write stops the writes (results stay local) and leaves the reads;
- a shared inspection that cannot be read, or taken, stops only inspections: a bucket
  policy written for the records and images alone must not cost money;
- an object the server fails with trouble of its own (a 5xx or a 429, after the client's
  retries) is that object's miss alone, until :data:`OBJECT_FAILURES` fail in a row;
- where listing is refused, S3 answers a missing object with 403: then a 403 is a miss.

Each of these is one warning, said once. A build that requires the shared cache asks to
be told when it is lost (:meth:`Failures.when_lost`) and stops paying then.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from pipeline.store.base import RemoteUnavailable, SaidOnce
from pipeline.store.shared_format import bad_credentials, reason, refused, server_trouble

log = logging.getLogger("assetpipe.cache")

OBJECT_FAILURES = 5
"""Objects that may fail in a row with the server's own trouble (none answered between
them) before the shared cache is taken to be down: a few are each a miss, a server
failing everything costs a build that many failed reads, not one a job."""


class Failures:
    """The failures of the shared cache at ``url`` (``absent`` says what a 404 for the
    whole store means), each one's warning said once. Safe to share between threads."""

    def __init__(self, url: str, absent: str) -> None:
        self.url = url
        self.absent = absent
        self._lock = threading.Lock()
        self._said = SaidOnce(log)
        self.down: str | None = None
        """The warning said when the store proved unusable; then it is asked no more."""
        self.refused: str | None = None
        """The warning said when it refused a write (it may still be read)."""
        self.unlisted: str | None = None
        """Why listing is forbidden (then S3 answers 403, not 404, for a missing object)."""
        self.no_facts: str | None = None
        """The warning said when a shared inspection could not be read: they are asked no
        more, and the images and records still are."""
        self.no_shares: str | None = None
        """The warning said when an inspection could not be shared: none is offered
        again, and results still are."""
        self._failing: set[str] = set()
        """Objects that failed with the server's trouble since the last one answered."""
        self._lost: str | None = None
        """What went wrong first, in a few words: ``went down (...)``, ``refused a write
        (...)``."""
        self._on_lost: Callable[[str], None] | None = None

    def warn_once(self, message: str) -> None:
        """Say ``message``, unless it was said already."""
        self._said.warn(message)

    def _first(self, field: str, message: str) -> str:
        """Set ``field`` to ``message`` unless it is set; said once, the first is returned."""
        with self._lock:
            message = getattr(self, field) or message
            setattr(self, field, message)
        self.warn_once(message)
        return message

    # -- the store as a whole ------------------------------------------------------------

    def fail(self, why: str) -> RemoteUnavailable:
        """The store is down: asked no more, said once; returns the error a write raises."""
        message = self._first(
            "down", f"the shared cache {self.url} cannot be used ({why}); going on without it"
        )
        self._tell_lost(f"went down ({why})")
        return RemoteUnavailable(message, logged=True)

    def listing_refused(self, exc: Exception) -> None:
        """Listing is refused (a policy may allow objects but not listing): lookups go
        on, with a warning of what that costs."""
        self.unlisted = reason(exc)
        self.warn_once(
            f"the shared cache {self.url} refused to list its prefix ({reason(exc)}); "
            "lookups go on, but a missing image and a forbidden one look alike: if "
            "these credentials cannot read objects either, every lookup is a miss "
            "and images the bucket holds are paid for again"
        )

    def when_lost(self, call: Callable[[str], None]) -> None:
        """Have ``call`` told, once, what went wrong when the store is lost to the build:
        it proved unusable (``went down (why)``) or refused a write (``refused a write
        (why)``: what is paid for cannot reach the team). At once when it has already."""
        with self._lock:
            self._on_lost = call
            lost = self._lost
        if lost is not None:
            call(lost)

    def _tell_lost(self, what: str) -> None:
        with self._lock:
            if self._lost is not None:
                return
            self._lost = what
            call = self._on_lost
        if call is not None:
            call(what)

    # -- one request -----------------------------------------------------------------------

    def missing(self, exc: Exception) -> bool:
        """Whether a failed read means "no such object": where listing is forbidden, S3
        answers a missing object with 403, which then says nothing about access."""
        return self.unlisted is not None and refused(exc) and not bad_credentials(exc)

    def read_failed(
        self, path: str, exc: Exception, failed: Callable[[str], object] | None = None
    ) -> None:
        """What a failed read of ``path`` means: a miss (see :meth:`missing`), the
        object's own trouble (:meth:`object_failed`), or ``failed`` told why (by default
        :meth:`fail`: the store is down)."""
        if self.missing(exc):
            return
        if server_trouble(exc):
            self.object_failed(path, exc, writing=False)
        else:
            (failed or self.fail)(reason(exc))

    def write_failed(self, exc: Exception) -> RemoteUnavailable:
        """What a failed write means: refused (the store may still be read) or down."""
        if isinstance(exc, FileNotFoundError):
            return self.fail(self.absent)
        if not refused(exc) or bad_credentials(exc):
            return self.fail(reason(exc))
        message = self._first(
            "refused",
            f"the shared cache {self.url} refused a write ({reason(exc)}); "
            "results are kept in the local cache only",
        )
        self._tell_lost(f"refused a write ({reason(exc)})")
        return RemoteUnavailable(message, logged=True)

    def object_failed(self, path: str, exc: Exception, *, writing: bool) -> RemoteUnavailable:
        """The server failed one object with trouble of its own: that object is a miss
        (a read) or stays local (a write), said once for each reason; the store is down
        only once :data:`OBJECT_FAILURES` objects have failed in a row."""
        with self._lock:
            self._failing.add(path)
            failing = len(self._failing)
        if failing >= OBJECT_FAILURES:
            return self.fail(f"{failing} objects failed in a row, the last with {reason(exc)}")
        log.debug("the shared cache %s failed on %s (%s)", self.url, path, reason(exc))
        message = (
            f"the shared cache {self.url} failed to take an object ({reason(exc)}); "
            "each it fails to take is kept in the local cache"
            if writing
            else f"the shared cache {self.url} failed to give an object ({reason(exc)}); "
            "each it fails to give is a miss"
        ) + ", and the rest of the shared cache is still used"
        if self._said.first(message):  # named, so a damaged object can be found; -v: each
            log.warning("%s (the first: %s; -v names each)", message, path)
        return RemoteUnavailable(message, logged=True)

    def answered(self) -> None:
        """An object was answered: the objects that failed before it were not a down
        server (see :meth:`object_failed`)."""
        if self._failing:
            with self._lock:
                self._failing.clear()

    # -- inspections -----------------------------------------------------------------------

    def facts_failed(self, why: str) -> None:
        """A shared inspection could not be read: none is asked for again."""
        self._first(
            "no_facts",
            f"cannot read the inspections shared in {self.url} ({why}); images copied from "
            "it are inspected here",
        )

    def share_failed(self, exc: Exception) -> RemoteUnavailable:
        """An inspection could not be shared: none is offered again."""
        message = self._first(
            "no_shares",
            f"the shared cache {self.url} did not take an inspection ({reason(exc)}); "
            "no more are offered, and other machines inspect those images themselves",
        )
        return RemoteUnavailable(message, logged=True)
