"""Connections dealt to the workers in turn (``nbo serve --workers N``).

uvicorn's workers share one listening socket, and whichever worker wakes first accepts every
connection that is waiting. A client that opens its 16 keep-alive connections at once was seen
(``ss -tnp``) to get 13 on one worker and 3 on the other, and the busy worker then sets the
latency. So in each worker this event loop leaves the shared socket to a thread that takes one
connection at a time with a blocking ``accept()`` and then pauses for a millisecond, so that a
burst of connections goes round the workers (a busy worker's thread also waits for the GIL,
so the idler ones take more). Keep-alive clients never notice; two workers take a burst of 256
new connections in about 0.13 s (256 pauses shared by two).

``nbo serve`` gives uvicorn this loop (``loop="nbo.serving.accept:TurnTakingLoop"``) when it
runs several workers. uvicorn still gets a server object to close: one on an unbound socket
that never listens. When uvicorn closes the shared socket at shutdown, the thread stops, and a
connection it took in that moment is closed unanswered (the client sees it reset).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import uvloop

__all__ = ["TurnTakingLoop"]

log = logging.getLogger("nbo.serving")
_TURN_S = 0.001  # a worker's pause after each connection it takes


class TurnTakingLoop(uvloop.Loop):
    """uvloop, with a TCP server's connections taken in turn with the other workers."""

    async def create_server(  # type: ignore[override]
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: Any = None,
        port: Any = None,
        *,
        sock: socket.socket | None = None,
        **kwargs: Any,
    ) -> asyncio.AbstractServer:
        if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
            return await super().create_server(protocol_factory, host, port, sock=sock, **kwargs)
        sock.listen(kwargs.get("backlog", 100))  # uvicorn binds the socket; serving listens
        threading.Thread(
            target=self._take_turns, args=(sock, protocol_factory), name="nbo-accept", daemon=True
        ).start()
        placeholder = socket.socket(sock.family, socket.SOCK_STREAM)
        return await super().create_server(protocol_factory, sock=placeholder, start_serving=False)

    def _take_turns(
        self, sock: socket.socket, protocol_factory: Callable[[], asyncio.BaseProtocol]
    ) -> None:
        sock.setblocking(True)  # the socket is shared: every worker's thread waits in accept()
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                if sock.fileno() == -1:  # uvicorn closed it: this worker is stopping
                    return
                log.exception("accept failed; trying again in a second")  # e.g. out of files
                time.sleep(1.0)
                continue
            conn.setblocking(False)
            try:
                self.call_soon_threadsafe(self._serve, sock, conn, protocol_factory)
            except RuntimeError:  # the loop is closed
                conn.close()
                return
            time.sleep(_TURN_S)  # the other workers' turn: a burst goes round them

    def _serve(
        self,
        sock: socket.socket,
        conn: socket.socket,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
    ) -> None:
        if sock.fileno() == -1:
            conn.close()
            return
        task = self.create_task(self.connect_accepted_socket(protocol_factory, sock=conn))
        task.add_done_callback(_report)


def _report(task: asyncio.Task[Any]) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        if task.exception() is not None:
            log.warning("a connection could not be set up: %s", task.exception())
