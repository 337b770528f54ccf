"""Group commit: decisions of concurrent requests written in one durable transaction.

Requests hand their rows to :meth:`DecisionWriter.submit` and await the returned future; one
thread takes whatever has queued up while the previous commit ran, writes it in one
transaction and resolves every future after the commit. A busy service thus pays one commit
(one fsync) per batch rather than per request, and no request is answered before its decisions
are stored.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import Any

from nbo.history import InteractionStore

__all__ = ["DecisionWriter"]

_MAX_BATCH = 512  # requests per transaction
_STOP = object()


class DecisionWriter:
    """A background writer of online decisions and arm assignments into ``store``."""

    def __init__(self, store: InteractionStore, *, sync: bool = True) -> None:
        self.store = store
        self.sync = sync
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="nbo-decision-writer", daemon=True)
        self._thread.start()

    def submit(
        self, decisions: list[dict[str, Any]], assignments: list[dict[str, Any]]
    ) -> Future[int]:
        """Queue rows for the next commit; the future gives the number of new decisions."""
        future: Future[int] = Future()
        if not self._thread.is_alive():
            future.set_exception(RuntimeError("the decision writer is stopped"))
            return future
        self._queue.put((decisions, assignments, future))
        return future

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            batch = [item]
            stop = False
            while len(batch) < _MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stop = True
                    break
                batch.append(more)
            self._write(batch)
            if stop:
                return

    def _write(self, batch: list[tuple[list[dict[str, Any]], list[dict[str, Any]], Any]]) -> None:
        decisions = [row for rows, _, _ in batch for row in rows]
        assignments = [row for _, rows, _ in batch for row in rows]
        try:
            self.store.record_online(decisions, _unique(assignments), sync=self.sync)
        except Exception as exc:  # every waiting request learns of the failure
            for _, _, future in batch:
                future.set_exception(exc)
            return
        for rows, _, future in batch:
            future.set_result(len(rows))

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop the thread."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)


def _unique(assignments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[int, dict[str, Any]] = {}
    for row in assignments:
        seen.setdefault(row["member_id"], row)
    return list(seen.values())
