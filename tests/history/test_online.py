"""The service's reads and writes: plain-row contacts, idempotent online writes, budget usage."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from nbo.history import InteractionStore
from tests.history.conftest import T0


def _decision(decision_id: str, hours: float, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "decision_id": decision_id, "member_id": 1, "offer_id": "C1-a", "campaign_id": "C1",
        "channel": "email", "decided_at": T0 + timedelta(hours=hours), "send_at": None,
        "rank": 1, "p_redeem": 0.25, "expected_value": 1.0, "expected_cost": 0.5,
        "propensity": 1.0, "explored": False, "track": "default", "arm": "champion",
        "model_version": "v1", "reason": "because",
    }  # fmt: skip
    return row | extra


def test_online_writes_skip_known_ids_and_reads_respect_both_cut_offs(
    store: InteractionStore,
) -> None:
    rows = [_decision("d1", 0), _decision("d2", 30, offer_id="C1-b"), _decision("d3", 50)]
    assignment = {"member_id": 1, "arm": "champion", "assigned_at": T0}
    assert store.record_online(rows, [assignment]) == 3
    assert store.record_online(rows[:1], [assignment]) == 0  # asked again: nothing twice
    store.record_events(
        [
            {
                "event_id": "x",
                "event_type": "exposure",
                "member_id": 1,
                "offer_id": "C1-a",
                "ts": T0 + timedelta(hours=40),
            }
        ]
    )
    at = T0 + timedelta(hours=45)
    contacts = store.member_contacts([1, 2], at=at, sent_before=T0 + timedelta(hours=24))
    assert [(o, c) for o, c, _ in contacts[1].sent] == [("C1-a", "email")]
    assert contacts[1].sent[0][2] == T0
    assert contacts[1].offer_events == {"C1-a": (1, False)}
    assert contacts[2].sent == [] and contacts[2].offer_events == {}
    later = store.member_contacts([1], at=at, sent_before=at)[1]
    assert sorted(o for o, _, _ in later.sent) == ["C1-a", "C1-b"]


def test_campaign_usage_sums_the_window(store: InteractionStore) -> None:
    store.record_online(
        [_decision("d1", 1), _decision("d2", 2, member_id=2), _decision("d3", 30)], []
    )
    usage = store.campaign_usage(["C1", "C9"], T0, T0 + timedelta(days=1))
    assert usage == {"C1": (0.5, 1.0, 2)}


def test_an_unsynced_online_write_leaves_the_connection_durable(tmp_path: Any) -> None:
    with InteractionStore(f"sqlite:///{tmp_path / 'h.db'}") as store:
        assert store.record_online([_decision("d1", 0)], [], sync=False) == 1
        with store.engine.connect() as connection:
            mode = connection.exec_driver_sql("PRAGMA synchronous").scalar()
        assert mode == 2  # FULL again for the events that share the pool
        assert store.member_contacts(
            [1], at=T0 + timedelta(hours=1), sent_before=T0 + timedelta(hours=1)
        )[1].sent


def _hold_write_lock(path: Any, seconds: float, held: threading.Event) -> None:
    """Another process's writer, as SQLite sees it: a connection holding the write lock."""
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        held.set()
        time.sleep(seconds)
        other.execute("COMMIT")
    finally:
        other.close()


def test_an_online_write_waits_for_another_writer_without_sqlite_backoff(
    tmp_path: Any,
) -> None:
    path = tmp_path / "h.db"
    with InteractionStore(f"sqlite:///{path}") as store:
        store.record_online([_decision("d0", 0)], [])  # the pool holds a warm connection
        held = threading.Event()
        holder = threading.Thread(target=_hold_write_lock, args=(path, 0.43, held))
        holder.start()
        held.wait(5)
        start = time.monotonic()
        assert store.record_online([_decision("d1", 1)], [], sync=False) == 1
        waited = time.monotonic() - start
        holder.join()
        # released at 0.43 s: SQLite's own handler sleeps on until 0.528 s (1, 2, 5, … 100 ms)
        assert 0.38 <= waited < 0.52, waited
        with store.engine.connect() as connection:
            patience = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
        assert patience == 30_000  # the pooled connection waits patiently again


def test_an_online_write_gives_up_after_the_lock_wait(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "h.db"
    monkeypatch.setattr("nbo.history.store._LOCK_WAIT_S", 0.1)
    with InteractionStore(f"sqlite:///{path}") as store:
        held = threading.Event()
        holder = threading.Thread(target=_hold_write_lock, args=(path, 0.5, held))
        holder.start()
        held.wait(5)
        with pytest.raises(OperationalError, match="locked"):
            store.record_online([_decision("d1", 1)], [])
        holder.join()
        assert store.record_online([_decision("d1", 1)], []) == 1  # nothing was half-written
