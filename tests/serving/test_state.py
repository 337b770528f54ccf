"""The service reads day plans: 409 for a day without one, new and replaced plans picked up."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from nbo.plans import read_day, read_manifest, write_day
from nbo.serving.state import OfferService

from .conftest import ADMIN, READER, TODAY, planned_members

pytestmark = pytest.mark.slow  # the registry fixture trains a model
LATER = TODAY + timedelta(days=3)


@pytest.fixture()
def plans(plan_dir: Path, tmp_path: Path) -> Path:
    """A copy of the session's plan directory, for a test to add and replace plans in."""
    copy = tmp_path / "plans"
    shutil.copytree(plan_dir, copy, symlinks=True)
    return copy


def copy_day(plans: Path, day: date, **manifest: object) -> str:
    """TODAY's plan written again as ``day``'s (another plan id); returns the plan id."""
    today = read_day(plans, TODAY)
    policy = manifest.pop("policy", today.manifest["policy"])
    write_day(replace(today, day=day), plans, policy=policy, **manifest)
    written = read_manifest(plans, day)
    assert written is not None
    return str(written["plan_id"])


def _service(client: TestClient) -> OfferService:
    service: OfferService = client.app.state.service  # type: ignore[attr-defined]
    return service


def _at(day: date) -> dict[str, str]:
    return {"at": datetime.combine(day, datetime.min.time()).replace(hour=10).isoformat()}


def test_a_day_without_a_plan_is_a_409_naming_the_command(
    make_client: Callable[..., TestClient], plans: Path, synth_club: Path
) -> None:
    client = make_client(plan_dir=plans)
    command = f"nbo plan --data {synth_club} --day {LATER} --out {plans}"
    for method, path, body in [
        ("get", "/v1/members/1/offers", None),
        ("get", "/v1/members/1/recommendations", None),
        ("get", "/v1/offers", None),
        ("get", "/v1/campaigns", None),
        ("post", "/v1/offers/batch", {"member_ids": [1, 2], "at": _at(LATER)["at"]}),
    ]:
        if body is None:
            response = client.get(path, params=_at(LATER), headers=READER)
        else:
            response = client.post(path, json=body, headers=READER)
        assert response.status_code == 409, (method, path, response.text)
        assert command in response.json()["detail"], response.json()
    # the fast path answers the same 409
    assert client.get("/v1/members/1/offers", params=_at(LATER), headers=READER).json() == {
        "detail": f"no plan for {LATER} in {plans}; make it with: {command}"
    }


def test_a_new_days_plan_is_served_once_it_appears(
    make_client: Callable[..., TestClient], plans: Path
) -> None:
    client = make_client(plan_dir=plans)
    members = planned_members(client)[:10]
    url = f"/v1/members/{members[0]}/offers"
    assert client.get(url, params=_at(LATER), headers=READER).status_code == 409
    copy_day(plans, LATER)
    answers = [client.get(f"/v1/members/{m}/offers", params=_at(LATER), headers=READER)
               for m in members]  # fmt: skip
    assert all(a.status_code == 200 for a in answers), answers[0].text
    ids = [o["decision_id"] for a in answers for o in a.json()["offers"]]
    assert ids and all(i.startswith(f"{LATER:%Y%m%d}-email-") for i in ids)


def test_a_replaced_plan_is_picked_up_by_the_watch_and_on_reload(
    make_client: Callable[..., TestClient], plans: Path
) -> None:
    client = make_client(plan_dir=plans, plan_check_seconds=1.0)
    first = client.get("/v1/readyz").json()["plan"]["plan_id"]
    second = copy_day(plans, TODAY)  # nbo plan run again for the same day
    deadline = time.monotonic() + 30
    while client.get("/v1/readyz").json()["plan"]["plan_id"] != second:
        assert time.monotonic() < deadline, "the replaced plan was not picked up"
        time.sleep(0.2)
    assert second != first
    slow = make_client(plan_dir=plans, plan_check_seconds=3600)  # only a reload looks
    third = copy_day(plans, TODAY)
    assert slow.get("/v1/readyz").json()["plan"]["plan_id"] == second
    reloaded = slow.post("/v1/admin/reload", headers=ADMIN)
    assert reloaded.status_code == 200 and reloaded.json() == {
        "models": {"champion": "models:/nbo/1"}
    }
    assert slow.get("/v1/readyz").json()["plan"]["plan_id"] == third
    assert slow.get("/v1/members/1/offers", headers=READER).status_code == 200


def test_a_plan_made_under_another_policy_is_not_served(
    make_client: Callable[..., TestClient], plans: Path
) -> None:
    copy_day(plans, LATER, policy={"file": "other.yaml", "digest": "sha256:another"})
    client = make_client(plan_dir=plans)
    response = client.get("/v1/members/1/offers", params=_at(LATER), headers=READER)
    assert response.status_code == 409
    assert "another policy" in response.json()["detail"] and "--policy" in response.json()["detail"]


def test_a_channel_left_out_of_the_plan_is_a_409(
    make_client: Callable[..., TestClient], plans: Path
) -> None:
    today = read_day(plans, TODAY)
    champion = today.arms["champion"]
    email_only = replace(
        champion,
        plans={"email": champion.plans["email"]},
        cold={"email": champion.cold["email"]},
    )
    write_day(replace(today, day=LATER, arms={"champion": email_only}), plans,
              policy=today.manifest["policy"])  # fmt: skip
    client = make_client(plan_dir=plans)
    assert client.get("/v1/members/1/offers", params=_at(LATER), headers=READER).is_success
    app = client.get("/v1/members/1/offers", params=_at(LATER) | {"channel": "app"},
                     headers=READER)  # fmt: skip
    assert app.status_code == 409 and "no 'app' channel" in app.json()["detail"]


def test_without_todays_plan_the_service_starts_not_ready_and_answers_409(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    client = make_client(plan_dir=empty)
    ready = client.get("/v1/readyz")
    assert ready.status_code == 503 and ready.json()["status"] == "no plan"
    assert "nbo plan --data" in ready.json()["detail"]
    assert client.get("/v1/members/1/offers", headers=READER).status_code == 409
    assert client.post("/v1/admin/reload", headers=ADMIN).status_code == 409
