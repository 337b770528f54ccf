"""The offer service in-process: decisions recorded, contact policy online, auth, bad input."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import datetime, time
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from fastapi.testclient import TestClient

from tests.serving.conftest import ADMIN, READER, TODAY, WRITER, make_plan, planned_members

pytestmark = pytest.mark.slow  # the registry fixture trains a model


def _db(client: TestClient) -> sqlite3.Connection:
    url = client.app.state.settings.database_url  # type: ignore[attr-defined]
    return sqlite3.connect(url.removeprefix("sqlite:///"))


def _known_member_with_offers(client: TestClient, which: int = 0) -> int:
    return planned_members(client)[which]


def _at(hour: int, minute: int = 0) -> str:
    return datetime.combine(TODAY, time(hour, minute)).isoformat()


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/v1/healthz").json() == {"status": "ok"}
    ready = client.get("/v1/readyz")
    assert ready.status_code == 200
    assert ready.json()["models"]["champion"] == "models:/nbo/1"


def test_offers_are_recorded_and_asking_again_the_same_day_records_nothing_twice(
    client: TestClient,
) -> None:
    member = _known_member_with_offers(client)
    first = client.get(f"/v1/members/{member}/offers", headers=READER)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["arm"] == "champion" and body["cold_start"] is False
    assert 1 <= len(body["offers"]) <= 3
    assert [o["rank"] for o in body["offers"]] == list(range(1, len(body["offers"]) + 1))
    for offer in body["offers"]:
        assert offer["reason"] and offer["send_at"] >= body["at"][:10]
        assert offer["valid_from"] <= TODAY.isoformat() <= offer["valid_until"]
    ids = {o["decision_id"] for o in body["offers"]}
    with _db(client) as db:
        stored = {r[0] for r in db.execute("SELECT decision_id FROM decisions WHERE member_id=?",
                                           (member,))}  # fmt: skip
        arm = db.execute("SELECT arm FROM assignments WHERE member_id=?", (member,)).fetchone()
    assert stored == ids and arm == ("champion",)
    again = client.get(f"/v1/members/{member}/offers", headers=READER).json()
    assert {o["decision_id"] for o in again["offers"]} == ids
    with _db(client) as db:
        (count,) = db.execute(
            "SELECT COUNT(*) FROM decisions WHERE member_id=?", (member,)
        ).fetchone()
    assert count == len(ids)


def test_a_redemption_removes_the_offer_from_the_next_answer(client: TestClient) -> None:
    member = _known_member_with_offers(client, which=5)  # asked for by no other test
    url = f"/v1/members/{member}/offers"
    offers = client.get(url, params={"at": _at(10)}, headers=READER).json()["offers"]
    redeemed = offers[0]
    event = {"event_id": f"r-{member}", "event_type": "redemption", "member_id": member,
             "offer_id": redeemed["offer_id"], "decision_id": redeemed["decision_id"],
             "ts": _at(10, 30), "amount": 0.5}  # fmt: skip
    ack = client.post("/v1/events", json={"events": [event]}, headers=WRITER)
    assert ack.json() == {"inserted": 1, "duplicates": 0}
    assert client.post("/v1/events", json={"events": [event]}, headers=WRITER).json() == {
        "inserted": 0, "duplicates": 1,
    }  # fmt: skip
    after = client.get(url, params={"at": _at(11)}, headers=READER).json()["offers"]
    assert redeemed["offer_id"] not in {o["offer_id"] for o in after}


def test_an_unknown_member_gets_cold_start_offers(client: TestClient) -> None:
    response = client.get("/v1/members/987654321/offers", headers=READER)
    assert response.status_code == 200
    body = response.json()
    assert body["cold_start"] is True
    assert body["offers"], "new members get the club's popular offers"
    assert all(o["track"] in ("onboarding", "explore") for o in body["offers"])
    recs = client.get("/v1/members/987654321/recommendations?k=4", headers=READER).json()
    assert recs["cold_start"] is True and len(recs["products"]) == 4


def test_batch_answers_in_request_order(client: TestClient) -> None:
    member = _known_member_with_offers(client)
    ids = [member, 987654322, member + 1]
    response = client.post("/v1/offers/batch", json={"member_ids": ids, "limit": 1}, headers=READER)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["member_id"] for r in results] == ids
    assert all(len(r["offers"]) <= 1 for r in results)
    too_many = client.post("/v1/offers/batch", json={"member_ids": list(range(1001))},
                           headers=READER)  # fmt: skip
    assert too_many.status_code == 422


def test_catalogue_and_recommendations(client: TestClient) -> None:
    offers = client.get("/v1/offers", headers=READER).json()["offers"]
    campaigns = client.get("/v1/campaigns", headers=READER).json()["campaigns"]
    assert offers and campaigns
    assert {o["campaign_id"] for o in offers} <= {c["campaign_id"] for c in campaigns}
    member = _known_member_with_offers(client)
    recs = client.get(f"/v1/members/{member}/recommendations?k=5", headers=READER).json()
    assert [p["rank"] for p in recs["products"]] == list(range(1, len(recs["products"]) + 1))


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("get", "/v1/members/1/offers", {}, 401),
        ("get", "/v1/members/1/offers", {"X-API-Key": "nope"}, 401),
        ("post", "/v1/events", READER, 403),
        ("post", "/v1/admin/reload", WRITER, 403),
        ("get", "/v1/members/1/offers", WRITER, 200),  # roles include the ones below them
    ],
)
def test_api_keys_and_roles(
    client: TestClient, method: str, path: str, headers: dict[str, str], status: int
) -> None:
    kwargs: dict[str, Any] = {"headers": headers}
    if method == "post" and path == "/v1/events":
        kwargs["json"] = {"events": []}
    assert getattr(client, method)(path, **kwargs).status_code == status


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/members/1/offers?limit=0", "limit"),
        ("/v1/members/1/offers?at=yesterday", "at"),
        ("/v1/members/1/recommendations?k=500", "k"),
    ],
)
def test_malformed_input_is_a_422_naming_the_field(
    client: TestClient, path: str, field: str
) -> None:
    response = client.get(path, headers=READER)
    assert response.status_code == 422
    assert any(field in error["loc"] for error in response.json()["detail"])


@pytest.mark.parametrize("key", ["abc", "-3", "1.5", "99999999999999999999"])
def test_a_member_key_of_the_wrong_kind_is_a_422_naming_it(client: TestClient, key: str) -> None:
    """This club numbers its members: a key that is not a whole number is named in the 422."""
    for route in ("offers", "recommendations"):
        response = client.get(f"/v1/members/{key}/{route}", headers=READER)
        assert response.status_code == 422
        assert f"member '{key}'" in response.json()["detail"]


def test_policy_and_time_problems_are_422_with_detail(client: TestClient) -> None:
    unknown = client.get("/v1/members/1/offers?channel=pigeon", headers=READER)
    assert unknown.status_code == 422 and "pigeon" in unknown.json()["detail"]
    early = client.get("/v1/members/1/offers?at=2024-01-01T00:00:00", headers=READER)
    assert early.status_code == 422 and "training date" in early.json()["detail"]


def test_bad_events_are_refused_whole_with_the_field_named(client: TestClient) -> None:
    good = {"event_id": "ok-1", "event_type": "click", "member_id": 1, "offer_id": "x",
            "ts": "2024-04-01T10:00:00"}  # fmt: skip
    bad = good | {"event_id": "bad-1", "event_type": "purchase"}
    response = client.post("/v1/events", json={"events": [good, bad]}, headers=WRITER)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][:3] == ["body", "events", 1]
    with _db(client) as db:
        assert db.execute("SELECT COUNT(*) FROM events WHERE event_id='ok-1'").fetchone() == (0,)


def test_oversized_bodies_are_413(make_client: Callable[..., TestClient]) -> None:
    small = make_client(max_body_bytes=2048)
    events = [{"event_id": f"e{i}", "event_type": "click", "member_id": 1, "offer_id": "x",
               "ts": "2024-04-01T10:00:00"} for i in range(100)]  # fmt: skip
    assert small.post("/v1/events", json={"events": events}, headers=WRITER).status_code == 413
    body = json.dumps({"events": events}).encode()
    streamed = small.post(  # no Content-Length: chunked, counted as it arrives
        "/v1/events", content=iter([body[:1500], body[1500:]]),
        headers=WRITER | {"Content-Type": "application/json"},
    )  # fmt: skip
    assert streamed.status_code == 413


def test_holdout_members_get_no_offers_and_are_recorded(
    make_client: Callable[..., TestClient],
) -> None:
    everyone_held_out = make_client(holdout_share=1.0)
    member = _known_member_with_offers(everyone_held_out)
    body = everyone_held_out.get(f"/v1/members/{member}/offers", headers=READER).json()
    assert body["arm"] == "holdout" and body["offers"] == []
    with _db(everyone_held_out) as db:
        assert db.execute(
            "SELECT arm FROM assignments WHERE member_id=?", (member,)
        ).fetchone() == ("holdout",)


def test_challenger_arm_is_served_and_recorded(
    make_client: Callable[..., TestClient],
    registry: str,
    synth_club: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    plans = make_plan(registry, synth_club, tmp_path_factory.mktemp("challenger") / "plans",
                      "--challenger", "models:/nbo/1")  # fmt: skip
    service = make_client(challenger_share=1.0, plan_dir=plans)
    member = _known_member_with_offers(service)
    body = service.get(f"/v1/members/{member}/offers", headers=READER).json()
    assert body["arm"] == "challenger" and body["offers"]
    with _db(service) as db:
        arms = {r[0] for r in db.execute("SELECT arm FROM decisions WHERE member_id=?", (member,))}
    assert arms == {"challenger"}
    assert service.get("/v1/readyz").json()["models"] == {
        "champion": "models:/nbo/1", "challenger": "models:/nbo/1",
    }  # fmt: skip


def test_a_challenger_share_without_a_planned_challenger_is_served_by_the_champion(
    make_client: Callable[..., TestClient],
) -> None:
    service = make_client(challenger_share=1.0)
    member = _known_member_with_offers(service)
    body = service.get(f"/v1/members/{member}/offers", headers=READER).json()
    assert body["arm"] == "champion" and body["offers"]


def test_reload_and_metrics(client: TestClient) -> None:
    reloaded = client.post("/v1/admin/reload", headers=ADMIN)
    assert reloaded.status_code == 200 and reloaded.json()["models"]["champion"] == "models:/nbo/1"
    client.get(f"/v1/members/{_known_member_with_offers(client)}/offers", headers=READER)
    text = client.get("/v1/metrics", headers=ADMIN).text
    assert 'nbo_request_seconds_count{method="GET",route="/v1/members/{member_id}/offers"' in text
    assert "nbo_decisions_total" in text and 'nbo_model_loaded{arm="champion"' in text


def test_history_frames_feed_the_experiment_report(client: TestClient) -> None:
    from nbo.evaluation.experiment import arm_report
    from nbo.history import InteractionStore

    with InteractionStore(client.app.state.settings.database_url) as store:  # type: ignore[attr-defined]
        report = arm_report(store.experiment_frames())
    row = report.filter(pl.col("arm") == "champion").row(0, named=True)
    assert row["members"] >= 3 and row["served"] >= 1 and row["redeemers"] >= 1
    assert row["rate_low"] <= row["redemption_rate"] <= row["rate_high"]
