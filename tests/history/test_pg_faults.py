"""Database faults (issue 18, item 5): with the history in PostgreSQL, losing the database while
events stream in loses no acknowledged event, answers 503 (never 500) while it is gone, and
the service recovers without a restart.

The shared server is not disturbed: the test has its own database (``postgres_url``) and only
ever acts on it. First the service's own connections are killed (``pg_terminate_backend``)
over and over while events and offer requests stream in; then the database is closed to
connections for a while (``ALLOW_CONNECTIONS false``), then opened again. Every batch is
retried until acknowledged; at the end each acknowledged event is stored once, and sending
everything again yields only duplicates.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import make_url

from nbo.serving.app import create_app
from nbo.serving.offerbook import OfferBook
from nbo.settings import Settings
from tests.serving.conftest import KEYS, READER, TODAY, WRITER, make_plan, planned_members

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # the registry fixture trains a model

BATCHES = 60
BATCH_SIZE = 50
KILL_EVERY_S = 0.02
GONE_S = 1.5  # how long the database refuses connections
RETRY_PAUSE_S = 0.02


@pytest.fixture(scope="module")
def plans(registry: str, synth_club: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_plan(registry, synth_club, tmp_path_factory.mktemp("fault-plans") / "plans")


@pytest.fixture
def service(postgres_url: str, plans: Path, synth_club: Path) -> Iterator[TestClient]:
    settings = Settings.model_validate({
        "api_keys": KEYS, "plan_dir": plans, "data_dir": synth_club, "today": TODAY,
        "holdout_share": 0.0, "database_url": postgres_url,
    })  # fmt: skip
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


class Saboteur:
    """Acts on the test's own database only, from a connection to the server's admin database."""

    def __init__(self, database_url: str) -> None:
        url = make_url(database_url)
        self.database = url.database
        admin = url.set(drivername="postgresql", database="postgres")
        self.connection = psycopg.connect(
            admin.render_as_string(hide_password=False), autocommit=True
        )
        self.killed = 0

    def kill_connections(self) -> int:
        rows = self.connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (self.database,),
        ).fetchall()
        self.killed += len(rows)
        return len(rows)

    def allow_connections(self, allowed: bool) -> None:
        value = "true" if allowed else "false"
        self.connection.execute(f'ALTER DATABASE "{self.database}" ALLOW_CONNECTIONS {value}')


def _batches(plans: Path) -> list[list[dict[str, Any]]]:
    offer_ids = sorted(OfferBook(plans).offer_ids())
    t0 = datetime(2024, 3, 20, 8, 0)
    events = [
        {"event_id": f"fault-{i:05d}", "event_type": ("exposure", "click")[i % 2],
         "member_id": 1 + i % 500, "offer_id": offer_ids[i % len(offer_ids)],
         "ts": (t0 + timedelta(seconds=i)).isoformat()}
        for i in range(BATCHES * BATCH_SIZE)
    ]  # fmt: skip
    return [events[i : i + BATCH_SIZE] for i in range(0, len(events), BATCH_SIZE)]


def _stored(database_url: str) -> dict[str, int]:
    url = make_url(database_url).set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False)) as connection:
        rows = connection.execute("SELECT event_id, COUNT(*) FROM events GROUP BY event_id")
        return {event_id: count for event_id, count in rows}


def test_losing_the_database_loses_no_acknowledged_event_and_answers_503(
    service: TestClient, postgres_url: str, plans: Path, request: pytest.FixtureRequest
) -> None:
    batches = _batches(plans)
    member = planned_members(service)[0]
    saboteur = Saboteur(postgres_url)
    request.addfinalizer(saboteur.connection.close)
    statuses: list[int] = []
    acknowledged: dict[int, dict[str, int]] = {}
    stop = threading.Event()

    def kill_loop() -> None:
        while not stop.is_set():
            saboteur.kill_connections()
            time.sleep(KILL_EVERY_S)

    def send(index: int) -> None:
        while True:  # retried until acknowledged, as a client of the service does
            events = service.post("/v1/events", json={"events": batches[index]}, headers=WRITER)
            offers = service.get(f"/v1/members/{member}/offers", headers=READER)
            statuses.extend((events.status_code, offers.status_code))
            if events.status_code == 200:
                acknowledged[index] = events.json()
                return
            time.sleep(RETRY_PAUSE_S)

    killer = threading.Thread(target=kill_loop)
    killer.start()
    try:
        for index in range(BATCHES // 2):  # connections killed under the stream
            send(index)
    finally:
        stop.set()
        killer.join()
    assert saboteur.killed > 0
    print(f"killed {saboteur.killed} connections; {statuses.count(503)} answers 503 meanwhile")

    saboteur.allow_connections(False)  # the database is gone
    saboteur.kill_connections()
    try:
        gone = [
            service.post("/v1/events", json={"events": batches[BATCHES // 2]}, headers=WRITER),
            service.get(f"/v1/members/{member}/offers", headers=READER),
            service.get("/v1/readyz"),
        ]
        time.sleep(GONE_S)
        gone.append(service.get(f"/v1/members/{member}/offers", headers=READER))
    finally:
        saboteur.allow_connections(True)
    assert [r.status_code for r in gone] == [503, 503, 503, 503], [r.text for r in gone]
    assert "unavailable" in gone[0].json()["detail"]

    for index in range(BATCHES // 2, BATCHES):  # back, without a restart
        send(index)
    assert service.get("/v1/readyz").status_code == 200

    assert set(statuses) <= {200, 503}, sorted(set(statuses))  # never a 500
    stored = _stored(postgres_url)
    sent = {e["event_id"] for batch in batches for e in batch}
    assert set(stored) == sent and set(stored.values()) == {1}
    assert sorted(acknowledged) == list(range(BATCHES))
    again = service.post("/v1/events", json={"events": batches[0]}, headers=WRITER).json()
    assert again == {"inserted": 0, "duplicates": BATCH_SIZE}
