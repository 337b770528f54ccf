"""Recording decisions and events: round trips, idempotency, validation, durability settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sqlalchemy import text

from nbo.errors import EventError, HistoryError, NboError
from nbo.history import EventReceipt, InteractionStore
from nbo.history.schema import DECISION_DEFAULTS, DECISION_SCHEMA, EVENT_SCHEMA
from nbo.settings import get_settings
from tests.history.conftest import T0, decision_frame, event


def test_decisions_round_trip(store: InteractionStore) -> None:
    decided = decision_frame(
        {
            "campaign_id": "C1",
            "send_at": T0 + timedelta(hours=3),
            "expected_cost": 0.25,
            "track": "winback",
            "arm": "challenger",
            "reason": 'top "affinity", \nthen value',
        },
        {"member_id": 2, "decided_at": T0 + timedelta(minutes=1), "explored": True, "reason": ""},
        {"decided_at": T0 + timedelta(seconds=1, microseconds=5), "rank": 2},
    )
    assert store.record_decisions(decided) == 3
    stored = pl.concat([store.decisions_for(1), store.decisions_for(2)])
    expected = decided.select(
        pl.col(name).cast(dtype)
        if name in decided.columns
        else pl.lit(DECISION_DEFAULTS.get(name), dtype).alias(name)
        for name, dtype in DECISION_SCHEMA.items()
    ).sort("member_id", "decided_at")
    assert stored.schema == DECISION_SCHEMA
    assert stored.equals(expected)


def test_optional_columns_may_be_missing_and_extras_are_ignored(store: InteractionStore) -> None:
    decided = decision_frame({}).with_columns(score_debug=pl.lit([1, 2]))
    assert store.record_decisions(decided) == 1
    stored = store.decisions_for(1)
    assert stored.select("campaign_id", "send_at", "track", "arm", "reason").row(0) == (None,) * 5
    assert "score_debug" not in stored.columns


def test_duplicate_decisions_are_skipped_and_counted(store: InteractionStore) -> None:
    assert store.record_decisions(decision_frame({}, {}, {})) == 3
    again = decision_frame({}, {}, {}, {}).with_columns(
        decision_id=pl.Series(["d0", "d1", "new", "new"])
    )
    assert store.record_decisions(again) == 1
    assert sorted(store.decisions_for(1)["decision_id"]) == ["d0", "d1", "d2", "new"]


def test_duplicates_within_a_fresh_batch(store: InteractionStore) -> None:
    twice = decision_frame({}, {}).with_columns(decision_id=pl.lit("same"))
    assert store.record_decisions(twice) == 1


def test_many_decisions_in_one_call(store: InteractionStore) -> None:
    n = 60_000  # more than one slice of the bulk writer
    decided = pl.DataFrame(
        {
            "decision_id": [f"d{i}" for i in range(n)],
            "member_id": pl.int_range(n, eager=True) % 500,
            "offer_id": "C1-a",
            "channel": "app",
            "decided_at": pl.datetime_range(T0, T0 + timedelta(seconds=n - 1), "1s", eager=True),
            "rank": 1,
            "p_redeem": 0.1,
            "expected_value": 1.0,
            "propensity": 1.0,
            "explored": False,
            "model_version": "v2",
        }
    )
    assert store.record_decisions(decided) == n
    assert store.decisions_for(7).height == n // 500
    assert store.record_decisions(decided.head(10)) == 0


def test_aware_times_are_stored_as_naive_utc(store: InteractionStore) -> None:
    paris = timezone(timedelta(hours=1))
    decided = decision_frame({"decided_at": datetime(2024, 3, 4, 10, 0, tzinfo=paris)})
    decided = decided.with_columns(pl.col("decided_at").dt.convert_time_zone("Europe/Paris"))
    store.record_decisions(decided)
    assert store.decisions_for(1)["decided_at"].to_list() == [datetime(2024, 3, 4, 9, 0)]
    store.record_events([event("e1", "click", 0) | {"ts": datetime(2024, 3, 4, 10, tzinfo=paris)}])
    assert store.events_for(1)["ts"].to_list() == [datetime(2024, 3, 4, 9, 0)]


def test_missing_or_null_required_decision_columns(store: InteractionStore) -> None:
    with pytest.raises(HistoryError, match=r"missing required column.*p_redeem"):
        store.record_decisions(decision_frame({}).drop("p_redeem"))
    nulls = decision_frame({}, {"channel": None})
    with pytest.raises(HistoryError, match="'channel' is null in row 1"):
        store.record_decisions(nulls)
    with pytest.raises(HistoryError, match="'rank'"):
        store.record_decisions(decision_frame({"rank": "first"}))
    with pytest.raises(HistoryError, match="'p_redeem' is nan in row 1"):
        store.record_decisions(decision_frame({}, {"p_redeem": float("nan")}))
    assert store.decisions_for(1).is_empty()


def test_events_are_idempotent_on_event_id(store: InteractionStore) -> None:
    first = store.record_events([event("e1", "exposure", 0), event("e2", "click", 1)])
    assert first == EventReceipt(inserted=2, duplicates=0)
    again = store.record_events(
        [event("e1", "exposure", 0), event("e3", "redemption", 2), event("e3", "redemption", 2)]
    )
    assert again == EventReceipt(inserted=1, duplicates=2)
    assert store.events_for(1)["event_id"].to_list() == ["e1", "e2", "e3"]
    assert store.record_events([]) == EventReceipt(inserted=0, duplicates=0)


def test_events_from_a_frame_get_received_at(store: InteractionStore) -> None:
    before = datetime.now(UTC).replace(tzinfo=None)
    frame = pl.DataFrame(
        [event("e1", "exposure", 0) | {"channel": "app", "decision_id": "d1", "extra": 1}]
    )
    assert store.record_events(frame).inserted == 1
    stored = store.events_for(1)
    assert stored.schema == EVENT_SCHEMA
    assert stored.row(0)[:7] == ("e1", "exposure", 1, "C1-a", "d1", "app", T0)
    assert before <= stored["received_at"][0] <= datetime.now(UTC).replace(tzinfo=None)


def test_numpy_member_ids_are_integers(store: InteractionStore) -> None:
    member_id = np.int64(1)
    assert store.record_events([event("e1", "click", 0) | {"member_id": member_id}]).inserted == 1
    assert store.events_for(1).height == 1


def test_a_bad_event_type_names_the_row_and_stores_nothing(store: InteractionStore) -> None:
    batch = [event("e1", "exposure", 0), event("e2", "view", 1)]
    with pytest.raises(EventError, match=r"event 1: 'event_type' is 'view'") as caught:
        store.record_events(batch)
    assert (caught.value.index, caught.value.field) == (1, "event_type")
    assert isinstance(caught.value, NboError)
    assert store.events_for(1).is_empty()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"ts": "2024-03-04"}, "ts"),
        ({"member_id": "1"}, "member_id"),
        ({"offer_id": ""}, "offer_id"),
        ({"event_id": "x" * 65}, "event_id"),
        ({"channel": 3}, "channel"),
    ],
)
def test_other_invalid_event_fields(change: dict[str, object], field: str) -> None:
    from nbo.history.events import conform_events

    with pytest.raises(EventError, match=f"event 0: '{field}'"):
        conform_events([event("e1", "click", 0) | change], received_at=T0)


def test_sqlite_file_is_durable_wal(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/deep/er/nbo.db"
    with InteractionStore(url) as store, store.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL


def test_plain_postgresql_url_runs_on_psycopg(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql://")
    with InteractionStore(postgres_url) as store:
        assert store.engine.dialect.driver == "psycopg"
        assert "psycopg" in repr(store)


def test_unsupported_or_unreachable_database(tmp_path: Path) -> None:
    with pytest.raises(HistoryError, match="not supported"):
        InteractionStore("mysql://localhost/nbo")
    with pytest.raises(HistoryError, match="cannot migrate") as caught:
        InteractionStore("postgresql://nbo:secret@127.0.0.1:1/nbo")
    assert "secret" not in str(caught.value)
    (tmp_path / "file").touch()
    with pytest.raises(HistoryError, match="cannot create"):
        InteractionStore(f"sqlite:///{tmp_path}/file/nbo.db")


def test_url_defaults_to_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBO_DATABASE_URL", f"sqlite:///{tmp_path}/from_env.db")
    get_settings.cache_clear()
    try:
        with InteractionStore() as store:
            assert store.url.database == f"{tmp_path}/from_env.db"
    finally:
        get_settings.cache_clear()


def test_executemany_path_for_other_postgres_drivers(postgres_url: str) -> None:
    """Without psycopg's COPY the decisions go in by executemany, with the same counts."""
    from nbo.history.decisions import _insert_many, conform_decisions

    with InteractionStore(postgres_url) as store:
        with store.engine.begin() as connection:
            assert _insert_many(connection, conform_decisions(decision_frame({}, {}))) == 2
        with store.engine.begin() as connection:
            assert _insert_many(connection, conform_decisions(decision_frame({}, {}, {}))) == 1
        assert store.decisions_for(1).height == 3
