"""Sealed inspections going to and coming from the team's cache, beside its images.

The machine that pays for an image inspects it anyway (checks, perceptual hash,
thumbnail); with the team's secret it shares what it found, sealed
(:mod:`pipeline.store.sealed_facts`), and a machine that later copies the image from the
shared cache reads those facts into its memo of pixels first, so delivering the image
decodes nothing. Neither side ever waits for the other: a missing, stale or refused
object only means the image is inspected as ever.

Shares are sent from threads of their own, never from the threads that write and inspect
files: a far bucket's round trip would otherwise hold one of those for each image paid.
At most :data:`SHARES_WAITING` wait to be sent; past that the inspecting thread waits
(each holds a thumbnail: tens of kilobytes), so a rebuild of thousands of images on a
machine that shares cannot pile them up in memory.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from pipeline.store.base import RemoteUnavailable
from pipeline.store.memo import Inspection, InspectionMemo
from pipeline.store.sealed_facts import FactsRefused, SharedFacts, TeamSeal

log = logging.getLogger("assetpipe.cache")

SHARES_IN_FLIGHT = 4
"""Shares sent at once: a paying build makes a few images a second."""
SHARES_WAITING = 64
"""Shares held at once, sent or waiting to be."""


class FactsStore(Protocol):
    """What of a shared store the exchange uses (:class:`~pipeline.store.remote.ObjectStore`)."""

    def read_facts(self, sha: str) -> bytes | None: ...

    def share_facts(self, sha: str, body: bytes) -> None: ...


class FactsExchange:
    """Reads sealed facts into a memo of pixels, and shares this machine's."""

    def __init__(
        self,
        remote: FactsStore,
        memo: InspectionMemo,
        seal: TeamSeal,
        ask: Callable[[Callable[[str], bytes | None], str], bytes | None],
        warn: Callable[[str], None],
    ):
        self.remote = remote
        self.memo = memo
        """This machine's memo (facts are kept in its memo of pixels)."""
        self.seal = seal
        self._ask = ask
        """How the shared store is asked: its failures are warnings (the layered store's)."""
        self._warn = warn
        self._room = threading.BoundedSemaphore(SHARES_WAITING)
        self._senders: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def learn(self, sha: str) -> bool:
        """Read what inspecting the shared image ``sha`` found into the memo of pixels,
        when the team's secret sealed it; whether it did."""
        return self.learn_sealed(sha, self._ask(self.remote.read_facts, sha))

    def learn_sealed(self, sha: str, data: bytes | None) -> bool:
        """:meth:`learn` of the sealed object ``data`` (None: there was none), already
        read from the shared store."""
        if data is None:
            return False
        try:
            facts = self.seal.open(sha, data)
        except FactsRefused as exc:
            log.debug("the shared inspection of image %s is refused: %s", sha[:12], exc)
            self._warn(  # once for each reason, not once an image
                f"ignoring a shared inspection: {exc}; images whose shared inspection is "
                "ignored are inspected here (a read-write machine then shares its own)"
            )
            return False
        if facts.pixels is None:  # delivered as it is: the facts of its own bytes
            memo, name = self.memo, sha
        else:
            memo, name = self.memo.pixels(), facts.pixels
        memo.keep_thumbnail(name, facts.thumbnail)
        memo.remember(name, facts.inspection)
        return True

    def share(
        self, blob: str, pixels: str | None, inspection: Inspection, thumbnail: bytes
    ) -> None:
        """Send what inspecting the image ``blob`` found (its pixels named ``pixels``, or
        None when they have no name), in the background; waits only when
        :data:`SHARES_WAITING` are held already."""
        try:
            body = self.seal.seal(blob, SharedFacts(pixels, inspection, thumbnail))
        except ValueError as exc:
            log.debug("not sharing the inspection of %s: %s", blob[:12], exc)
            return
        self._room.acquire()
        try:
            with self._lock:
                if self._senders is None:
                    self._senders = ThreadPoolExecutor(
                        SHARES_IN_FLIGHT, thread_name_prefix="assetpipe-share"
                    )
                sent = self._senders.submit(self._send, blob, body)
        except BaseException:
            self._room.release()
            raise
        sent.add_done_callback(self._sent)

    def _send(self, blob: str, body: bytes) -> None:
        try:
            self.remote.share_facts(blob, body)
        except RemoteUnavailable as exc:
            if not exc.logged:
                self._warn(str(exc))
        except Exception as exc:
            self._warn(
                f"the shared cache failed to take an inspection ({type(exc).__name__}: {exc}); "
                "other machines inspect those images themselves"
            )

    def _sent(self, _: Future[None]) -> None:
        self._room.release()

    def close(self) -> None:
        """Wait for the shares under way and waiting (a build's last images included)."""
        with self._lock:
            senders, self._senders = self._senders, None
        if senders is not None:
            senders.shutdown(wait=True)
