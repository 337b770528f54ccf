"""A service on a plan answers as planning in-process does, without the club's data or models."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from fastapi.testclient import TestClient

from nbo.data.io import ClubData
from nbo.decisioning.policy import Policy
from nbo.history import InteractionStore
from nbo.plans import DayPlan
from nbo.serving.process import ServeProcess
from nbo.serving.state import MemberOffers, OfferService
from tests.serving.conftest import KEYS, READER, TODAY, make_plan, planned_members, wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

AT = datetime.combine(TODAY, time(9, 30))
COMPARED = ("decision_id", "offer_id", "campaign_id", "rank", "p_redeem", "p_buy", "uplift",
            "uplift_measured", "incremental_value", "expected_value", "expected_cost", "reason",
            "track", "explored", "propensity")  # fmt: skip
TRAINING_CODE = ("sklearn", "implicit", "mlflow", "lightgbm", "joblib")


@pytest.fixture(scope="module")
def in_process(
    registry: str, synth_club: Path, tmp_path_factory: pytest.TempPathFactory
) -> DayPlan:
    """The day planned in this process, unsharded: what a worker built before plans existed."""
    from nbo.cli.plan import resolve_model
    from nbo.pipelines.plan import plan_day

    folder = tmp_path_factory.mktemp("in-process")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", registry)
        models = {"champion": resolve_model("models:/nbo/1")}
        # recommendations in chunks of 64 members here, of every member in the served plan
        patch.setattr("nbo.pipelines.plan.RECOMMEND_CHUNK", 64)
        with InteractionStore(f"sqlite:///{folder / 'empty.db'}") as store:
            return plan_day(ClubData(synth_club), Policy(), store, TODAY, models, shards=1)


def _expected(answer: MemberOffers) -> dict[str, Any]:
    return {
        "member_id": answer.member_id, "arm": answer.arm, "cold_start": answer.cold_start,
        "model_version": answer.model.version,
        "offers": [{name: getattr(d, name) for name in COMPARED} | {"send_at": d.send_at}
                   for d in answer.decisions],
    }  # fmt: skip


def _served(result: dict[str, Any]) -> dict[str, Any]:
    offers = []
    for offer in result["offers"]:
        sent = datetime.fromisoformat(offer["send_at"]).replace(tzinfo=None)
        offers.append({name: offer[name] for name in COMPARED} | {"send_at": sent})
    keys = ("member_id", "arm", "cold_start", "model_version")
    return {key: result[key] for key in keys} | {"offers": offers}


def test_decisions_from_the_plan_equal_todays_in_process_planning(
    make_client: Callable[..., TestClient], in_process: DayPlan
) -> None:
    # the service reads the session's plan (3 shards, memory-mapped) made by `nbo plan`; the
    # reference decides from the day planned here, whole, as every worker used to at start-up
    client = make_client()
    service: OfferService = client.app.state.service  # type: ignore[attr-defined]
    known = service.plans.get(TODAY).members
    members = [*sorted(int(m) for shard in known for m in shard), 987654321]  # + cold start
    assert len(members) > 250 and len(planned_members(client)) > 50
    compared = 0
    for channel in ("email", "app", "pos"):
        expected = [_expected(a) for a in service.decide(members, AT, channel, None, in_process)]
        served: list[dict[str, Any]] = []
        for start in range(0, len(members), 1000):
            body = {"member_ids": members[start : start + 1000], "at": AT.isoformat(),
                    "channel": channel}  # fmt: skip
            response = client.post("/v1/offers/batch", json=body, headers=READER)
            assert response.status_code == 200, response.text
            served += [_served(r) for r in response.json()["results"]]
        assert served == expected, channel
        compared += sum(len(e["offers"]) for e in expected)
    assert compared > 200
    for member in members[::3]:
        recs = client.get(f"/v1/members/{member}/recommendations?k=50", headers=READER).json()
        known = in_process.recommendations("champion", member)
        reference = known if known is not None else in_process.cold_recommendations("champion")
        assert recs["products"] == [
            {name: r[name] for name in ("rank", "product_id", "score", "reason")} for r in reference
        ]


def test_a_service_on_a_plan_answers_without_the_club_data_or_models(
    registry: str, synth_club: Path, tmp_path: Path
) -> None:
    club = tmp_path / "club"
    shutil.copytree(synth_club, club)
    plans = make_plan(registry, club, tmp_path / "plans")
    shutil.rmtree(club)  # the receipts are gone: only the plan remains
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NBO_", "MLFLOW_"))}
    env |= {
        "NBO_PLAN_DIR": str(plans), "NBO_DATA_DIR": str(club), "NBO_TODAY": f"{TODAY}",
        "NBO_DATABASE_URL": f"sqlite:///{tmp_path / 'nbo.db'}", "NBO_API_KEYS": json.dumps(KEYS),
        "NBO_HOLDOUT_SHARE": "0",
    }  # fmt: skip
    server = ServeProcess(env, tmp_path)
    try:
        server.start()
        wait_ready(server)
        with httpx.Client(base_url=server.base_url, headers=READER, timeout=30) as http:
            planned = http.get("/v1/offers").json()["offers"]
            assert planned
            answers = [http.get(f"/v1/members/{m}/offers").json() for m in range(1, 40)]
            assert sum(len(a["offers"]) for a in answers) > 20
            assert any(not a["cold_start"] for a in answers)
            assert http.get("/v1/members/3/recommendations").status_code == 200
        mapped = {m.path for m in psutil.Process(server.process.pid).memory_maps()}  # type: ignore[union-attr]
        loaded = [path for path in mapped if any(f"/{name}/" in path for name in TRAINING_CODE)]
        assert loaded == [], "the worker loaded training code"
    finally:
        server.kill()
    # what a worker imports (the same app, lifespan and a request, in a fresh interpreter)
    script = f"""
import json, sys
from fastapi.testclient import TestClient
from nbo.serving.app import create_app
from nbo.settings import Settings
settings = Settings(api_keys={KEYS!r}, plan_dir={str(plans)!r}, data_dir={str(club)!r},
                    today="{TODAY}", database_url="sqlite:///{tmp_path / "check.db"}")
with TestClient(create_app(settings)) as client:
    assert client.get("/v1/members/1/offers", headers={READER!r}).status_code == 200
print(json.dumps(sorted(sys.modules)))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    modules = json.loads(done.stdout.splitlines()[-1])
    forbidden = ("nbo.pipelines", "nbo.models", "nbo.tracking", "nbo.features", "nbo.data")
    assert [m for m in modules if m.startswith(forbidden)] == []
    assert [m for m in modules if m.split(".")[0] in TRAINING_CODE] == []
