"""Events cannot poison the history (issue 18, item 3): events dated in the future or about an
unknown offer are refused whole with each bad event's index; an event_id sent again with
another payload is a 409 naming it, with the same payload an idempotent duplicate."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.serving.conftest import READER, TODAY, WRITER

pytestmark = pytest.mark.slow  # the registry fixture trains a model

REPLAY_END = datetime(TODAY.year, TODAY.month, TODAY.day) + timedelta(days=1)


def _offer_ids(client: TestClient) -> list[str]:
    listed = client.get("/v1/offers", headers=READER)
    assert listed.status_code == 200, listed.text
    return [o["offer_id"] for o in listed.json()["offers"]]


def _event(event_id: str, offer_id: str, ts: datetime, **more: Any) -> dict[str, Any]:
    return {"event_id": event_id, "event_type": "click", "member_id": 1, "offer_id": offer_id,
            "ts": ts.isoformat()} | more  # fmt: skip


def _stored(client: TestClient, event_id: str) -> int:
    store = client.app.state.service.store  # type: ignore[attr-defined]
    events = store.events_for(1)
    return int((events["event_id"] == event_id).sum())


def _post(client: TestClient, *events: dict[str, Any]) -> Any:
    return client.post("/v1/events", json={"events": list(events)}, headers=WRITER)


def test_future_and_unknown_offer_events_are_refused_whole_with_each_index(
    client: TestClient,
) -> None:
    offer = _offer_ids(client)[0]
    good = _event("guard-good", offer, REPLAY_END - timedelta(hours=2))
    future = _event("guard-future", offer, datetime(2999, 1, 1))
    unknown = _event("guard-unknown", "no-such-offer", REPLAY_END - timedelta(hours=3))
    response = _post(client, good, future, unknown)
    assert response.status_code == 422, response.text
    problems = response.json()["detail"]
    assert [(p["loc"], p["type"]) for p in problems] == [
        (["body", "events", 1, "ts"], "future_event"),
        (["body", "events", 2, "offer_id"], "unknown_offer"),
    ]
    assert "no-such-offer" in problems[1]["msg"]
    assert _stored(client, "guard-good") == 0  # nothing of a refused batch is written
    assert _post(client, good).json() == {"inserted": 1, "duplicates": 0}


def test_the_future_skew_is_counted_from_the_service_now(
    make_client: Callable[..., TestClient],
) -> None:
    replay = make_client(event_max_future_seconds=1800)  # NBO_TODAY: its now is the day's end
    offer = _offer_ids(replay)[0]
    inside = _event("skew-in", offer, REPLAY_END + timedelta(minutes=29))
    beyond = _event("skew-out", offer, REPLAY_END + timedelta(minutes=31))
    assert _post(replay, inside).status_code == 200
    refused = _post(replay, beyond)
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"][2] == 0

    live = make_client(today=None)  # the real clock; aware times are compared in UTC
    now = datetime.now(UTC)
    soon = _event("live-soon", offer, now + timedelta(minutes=50))
    late = _event("live-late", offer, (now + timedelta(minutes=70)).astimezone())
    assert _post(live, soon).status_code == 200
    assert _post(live, late).status_code == 422


def test_an_event_id_sent_again_with_another_payload_is_a_conflict(client: TestClient) -> None:
    offer = _offer_ids(client)[0]
    first = _event("guard-dup", offer, REPLAY_END - timedelta(hours=5), amount=1.5)
    assert _post(client, first).json() == {"inserted": 1, "duplicates": 0}
    assert _post(client, first).json() == {"inserted": 0, "duplicates": 1}  # same: idempotent
    new = _event("guard-new", offer, REPLAY_END - timedelta(hours=5))
    changed = first | {"amount": 2.5}
    response = _post(client, new, changed)
    assert response.status_code == 409
    assert "'guard-dup'" in response.json()["detail"]
    assert _stored(client, "guard-new") == 0  # the batch is refused whole
    twice = _post(client, new, new | {"event_type": "dismissal"})  # repeated within the batch
    assert twice.status_code == 409 and "'guard-new'" in twice.json()["detail"]
    assert _stored(client, "guard-new") == 0
