"""Issue 5: an acknowledged event survives a SIGKILL of the server, stored exactly once.

A real ``nbo serve`` process takes 20,000 events with unique ids from concurrent clients; once
8,000 are acknowledged it is killed with SIGKILL (its whole process group) and started again on
the same database while the clients keep retrying. Afterwards every event that got a 2xx is in
the ``events`` table exactly once, and sending everything again only yields duplicates.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from nbo.data.io import ClubData
from nbo.history.engine import make_engine
from nbo.serving.offerbook import OfferBook
from nbo.serving.process import ServeProcess
from tests.serving.conftest import wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

EVENTS = 20_000
KILL_AFTER = 8_000  # acknowledged events before the SIGKILL
CLIENTS = 8
BATCH_SIZES = (50, 200)  # each batch has a size drawn from this range
BATCH_TIMEOUT_S = 120.0  # how long one client goes on retrying one batch
RETRY_PAUSE_S = 0.05
WRITER_KEY = "durability-writer"
API_KEYS = {WRITER_KEY: "writer", "durability-reader": "reader"}


def make_batches(club: Path, plan_dir: Path) -> list[list[dict[str, Any]]]:
    """20,000 events with unique ids on the club's members and the planned offers (the service
    refuses events about offers no plan lists), in batches of 50-200."""
    data = ClubData(club)
    member_ids = data.members.select("member_id").collect().to_series().to_list()
    offer_ids = sorted(OfferBook(plan_dir).offer_ids())
    rng = random.Random(5)
    t0 = datetime(2024, 3, 1, 8, 0)
    events = [
        {
            "event_id": f"durability-{i:05d}",
            "event_type": rng.choice(("exposure", "click", "redemption", "dismissal")),
            "member_id": rng.choice(member_ids),
            "offer_id": rng.choice(offer_ids),
            "ts": (t0 + timedelta(seconds=97 * i)).isoformat(),
            "decision_id": None,
            "channel": "email",
            "amount": None,
        }
        for i in range(EVENTS)
    ]
    batches = []
    start = 0
    while start < EVENTS:
        size = rng.randint(*BATCH_SIZES)
        batches.append(events[start : start + size])
        start += size
    return batches


@dataclass
class Ingest:
    """Batches shared by the client threads; what the server acknowledged, batch by batch."""

    base_url: str
    batches: list[list[dict[str, Any]]]
    receipts: dict[int, dict[str, int]] = field(default_factory=dict)
    acknowledged: int = 0  # events in acknowledged batches
    failed_attempts: int = 0  # sends that got no 2xx (connection refused, reset, 5xx)
    reached: threading.Event = field(default_factory=threading.Event)
    last_failure: str = ""
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _next: Iterator[int] = field(init=False)

    def __post_init__(self) -> None:
        self._next = iter(range(len(self.batches)))

    def take(self) -> int | None:
        with self.lock:
            return next(self._next, None)

    def client(self) -> None:
        """Send batches until none are left, each retried until the server acknowledges it."""
        headers = {"X-API-Key": WRITER_KEY}
        with httpx.Client(base_url=self.base_url, headers=headers, timeout=10.0) as http:
            while (index := self.take()) is not None:
                receipt = self.send(http, index)
                with self.lock:
                    self.receipts[index] = receipt
                    self.acknowledged += len(self.batches[index])
                    if self.acknowledged >= KILL_AFTER:
                        self.reached.set()

    def send(self, http: httpx.Client, index: int) -> dict[str, int]:
        body = {"events": self.batches[index]}
        deadline = time.monotonic() + BATCH_TIMEOUT_S
        while time.monotonic() < deadline and not self.stop.is_set():
            try:
                response = http.post("/v1/events", json=body)
            except httpx.TransportError as exc:
                failure = repr(exc)
            else:
                if response.is_success:
                    receipt: dict[str, int] = response.json()
                    return receipt
                failure = f"{response.status_code} {response.text[:300]}"
                if response.status_code < 500:
                    raise AssertionError(f"batch {index}: {failure}")
            with self.lock:
                self.failed_attempts += 1
                self.last_failure = failure
            time.sleep(RETRY_PAUSE_S)
        raise AssertionError(f"batch {index} not acknowledged within {BATCH_TIMEOUT_S:.0f} s")

    def wait_reached(self, clients: list[Future[None]], server: ServeProcess) -> None:
        """Wait until KILL_AFTER events are acknowledged; a client's failure is raised here."""
        deadline = time.monotonic() + BATCH_TIMEOUT_S
        while not self.reached.wait(timeout=0.05):
            for done in clients:
                if done.done():
                    done.result()
            assert time.monotonic() < deadline, (
                f"only {self.acknowledged} events acknowledged; last failure: "
                f"{self.last_failure}\nserver log:\n{server.tail()}"
            )


def stored_counts(url: str) -> dict[str, int]:
    """How many rows the ``events`` table holds per event_id, read from the database itself."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT event_id, COUNT(*) FROM events GROUP BY event_id")
            ).all()
    finally:
        engine.dispose()
    return {event_id: count for event_id, count in rows}


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'history.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def test_acknowledged_events_survive_sigkill(
    database_url: str, synth_club: Path, plan_dir: Path, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBO_")}
    env |= {
        "NBO_PLAN_DIR": str(plan_dir),
        "NBO_DATA_DIR": str(synth_club),
        "NBO_TODAY": "2024-04-01",
        "NBO_DATABASE_URL": database_url,
        "NBO_API_KEYS": json.dumps(API_KEYS),
    }
    server = ServeProcess(env, tmp_path)
    batches = make_batches(synth_club, plan_dir)
    ingest = Ingest(server.base_url, batches)
    try:
        server.start()
        wait_ready(server)
        with ThreadPoolExecutor(CLIENTS) as pool:
            clients = [pool.submit(ingest.client) for _ in range(CLIENTS)]
            try:
                ingest.wait_reached(clients, server)
                server.kill()
                acknowledged_at_kill = ingest.acknowledged
                server.start()  # same port, same database
                wait_ready(server)
                for done in clients:
                    done.result(timeout=BATCH_TIMEOUT_S)  # re-raises a client's failure
            finally:
                ingest.stop.set()  # on a failure the clients give up instead of retrying
        assert acknowledged_at_kill < EVENTS, "the kill came after the last batch"
        assert ingest.failed_attempts > 0, "no client saw the server go down"

        # every batch was acknowledged once; only batches in flight at the kill can have been
        # committed without an answer, and their retries are what may count as duplicates
        assert sorted(ingest.receipts) == list(range(len(batches)))
        inserted = sum(r["inserted"] for r in ingest.receipts.values())
        duplicates = sum(r["duplicates"] for r in ingest.receipts.values())
        assert inserted + duplicates == EVENTS
        assert duplicates <= CLIENTS * BATCH_SIZES[1]

        print(
            f"acknowledged at the kill: {acknowledged_at_kill:,} events; sends without a 2xx: "
            f"{ingest.failed_attempts}; inserted {inserted:,}, duplicates on retry {duplicates:,}"
        )
        counts = stored_counts(database_url)
        assert set(counts.values()) == {1}
        sent = {e["event_id"] for batch in batches for e in batch}
        assert set(counts) == sent  # every batch was acknowledged, so all of them are stored

        headers = {"X-API-Key": WRITER_KEY}
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=30.0) as http:
            for batch in batches:
                response = http.post("/v1/events", json={"events": batch})
                assert response.status_code == 200, response.text
                receipt = response.json()
                assert (receipt["inserted"], receipt["duplicates"]) == (0, len(batch))
        assert stored_counts(database_url) == counts
    finally:
        server.kill()
