"""A TCP proxy on 127.0.0.1 that puts a server far away: a fixed delay each way.

Used by ``bench_far_bucket.py`` to put SeaweedFS "in another region". Every chunk read
from one side is written to the other ``delay`` seconds after it arrived, in order, in
both directions, so a request and its answer cost ``2 * delay`` (one round trip) however
many are in flight at once: the link's latency is modelled, not its bandwidth. A new
connection first waits one round trip, as a TCP handshake to a far host does (a client
that reuses its connections does not pay it again).

Runs its own event loop in a thread of the calling process; ``delay`` may be changed
between measurements (:meth:`LatencyProxy.set_delay`).

    with LatencyProxy("127.0.0.1", 8333, delay=0.02) as proxy:
        endpoint = proxy.endpoint  # http://127.0.0.1:<port>
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Self

_CHUNK = 256 * 1024


class LatencyProxy:
    """Forwards 127.0.0.1:<port> to ``host:port`` with ``delay`` seconds each way."""

    def __init__(self, host: str, port: int, *, delay: float) -> None:
        self.upstream = (host, port)
        self.delay = delay
        self.port = 0
        self.connections = 0
        """Connections accepted so far (a client that pools them opens few)."""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="latency-proxy", daemon=True)
        self._server: asyncio.Server | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_delay(self, delay: float) -> None:
        """The delay each way from now on (chunks already on their way keep theirs)."""
        self.delay = delay

    def __enter__(self) -> Self:
        self._thread.start()
        self._ready.wait()
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._server.close()
            tasks = asyncio.all_tasks(self._loop)
            for task in tasks:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self._loop.close()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        await asyncio.sleep(2 * self.delay)  # the handshake's round trip
        try:
            up_r, up_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.close()
            return
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(
                self._pipe(client_r, up_w), self._pipe(up_r, client_w), return_exceptions=True
            )

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        """Copy ``src`` to ``dst``, each chunk ``delay`` after it was read, in order."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            try:
                while True:
                    due, chunk = await queue.get()
                    wait = due - loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    if not chunk:
                        break
                    dst.write(chunk)
                    await dst.drain()
                if dst.can_write_eof():
                    dst.write_eof()
            except (OSError, RuntimeError):
                pass
            finally:
                with contextlib.suppress(OSError, RuntimeError):
                    await dst.drain()

        sender = asyncio.create_task(deliver())
        try:
            while True:
                try:
                    chunk = await src.read(_CHUNK)
                except OSError:
                    chunk = b""
                queue.put_nowait((loop.time() + self.delay, chunk))
                if not chunk:
                    break
            await sender
        finally:
            sender.cancel()
            if src.at_eof():
                with contextlib.suppress(Exception):
                    dst.close()
