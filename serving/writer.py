"""Group commit: decisions of concurrent requests written in one durable transaction.

Requests queue their rows with :meth:`DecisionWriter.record` and await it; one task on the
event loop takes whatever has queued up while the previous commit ran, writes it in one
transaction on a single database thread, and answers every waiting request after the commit.
A busy service thus pays one commit and one thread hop per batch rather than per request, and
no request is answered before its decisions are stored.
"""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from nbo.history import InteractionStore

__all__ = ["DecisionWriter"]

Rows = list[dict[str, Any]]


class DecisionWriter:
    """Online decisions and arm assignments into ``store``, batched on the running loop."""

    def __init__(self, store: InteractionStore, *, sync: bool = True) -> None:
        self.store = store
        self.sync = sync
        self._pending: list[tuple[Rows, Rows, asyncio.Future[int]]] = []
        self._wake = asyncio.Event()
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="nbo-decision-writer")
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def record(self, decisions: Rows, assignments: Rows) -> int:
        """Store the rows in the next commit; returns how many decisions were new to the store.

        Raises what the database raised when the commit failed (nothing of it is stored).
        """
        if self._closed:
            raise RuntimeError("the decision writer is stopped")
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((decisions, assignments, future))
        self._wake.set()
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            if not batch:
                continue
            try:
                await loop.run_in_executor(self._thread, self._write, batch)
            except Exception as exc:  # every waiting request learns of the failure
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for rows, _, future in batch:
                if not future.done():
                    future.set_result(len(rows))

    def _write(self, batch: list[tuple[Rows, Rows, asyncio.Future[int]]]) -> None:
        decisions = [row for rows, _, _ in batch for row in rows]
        assignments = {row["member_id"]: row for _, rows, _ in reversed(batch) for row in rows}
        self.store.record_online(decisions, list(assignments.values()), sync=self.sync)

    async def aclose(self) -> None:
        """Write what is queued, then stop."""
        self._closed = True
        while self._pending:  # the task takes them; wait until it has
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._thread.shutdown(wait=True)
