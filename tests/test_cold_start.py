"""A club that starts with receipts: `nbo train` trains what has data and says what it skipped.

Three synthetic clubs cut from one: receipts only (no campaign tables), campaigns without a
redemption, and a single campaign. Each trains (exit 0), is promoted, evaluated, decided on,
planned and served; the models without examples predict their documented priors
(:mod:`nbo.models.prior`), flagged in the bundle's params and the output.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from nbo.cli import app
from nbo.data.io import ClubData
from nbo.features.history import History, as_datetime
from nbo.features.offers import response_features
from nbo.models.prior import purchase_prior, redeem_prior
from nbo.serving.app import create_app
from nbo.settings import Settings
from nbo.tracking.registry import configure, load_bundle
from tests.serving.conftest import KEYS, READER

pytestmark = pytest.mark.slow  # each club trains a model
runner = CliRunner()
AS_OF = "2024-04-01"
DAY = date(2024, 4, 2)
RECEIPTS = ("members", "products.parquet", "transactions")


@pytest.fixture(scope="module")
def clubs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from nbo.data.synth import generate_club

    root = tmp_path_factory.mktemp("cold")
    full = root / "full"
    generate_club(full, members=300, products=150, weeks=20, seed=7, workers=1)
    receipts, silent, single = root / "receipts", root / "no-redemptions", root / "single"
    receipts.mkdir()
    for name in RECEIPTS:
        source = full / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, receipts / name)
    shutil.copytree(full, silent)
    shutil.rmtree(silent / "redemptions")
    shutil.copytree(full, single)
    campaigns = pl.read_parquet(full / "campaigns.parquet")
    redeemed = pl.read_parquet(full / "redemptions").join(
        pl.read_parquet(full / "offers.parquet"), on="offer_id"
    )
    # the campaign with the most redemptions that starts before the training date
    started = campaigns.filter(pl.col("start_date") < date.fromisoformat(AS_OF))
    kept = (
        redeemed.filter(pl.col("campaign_id").is_in(started["campaign_id"].implode()))
        .group_by("campaign_id")
        .len()
        .sort("len", "campaign_id", descending=True)["campaign_id"][0]
    )
    offers = pl.read_parquet(full / "offers.parquet").filter(pl.col("campaign_id") == kept)
    tables = {
        "campaigns.parquet": campaigns.filter(pl.col("campaign_id") == kept),
        "offers.parquet": offers,
        "offer_products.parquet": pl.read_parquet(full / "offer_products.parquet").filter(
            pl.col("offer_id").is_in(offers["offer_id"].implode())
        ),
    }
    for name, frame in tables.items():
        frame.write_parquet(single / name)
    for name in ("campaign_audience", "redemptions"):
        frame = pl.read_parquet(full / name)
        key = pl.col("campaign_id") if "campaign_id" in frame.columns else pl.col("offer_id")
        wanted = kept if "campaign_id" in frame.columns else offers["offer_id"].implode()
        shutil.rmtree(single / name)
        (single / name).mkdir()
        chosen = frame.filter(key == wanted if isinstance(wanted, str) else key.is_in(wanted))
        chosen.write_parquet(single / name / "part-0.parquet")
    return {"receipts": receipts, "no-redemptions": silent, "single": single}


def _run(*args: str) -> str:
    result = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result.output


def _lifecycle(club: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """train, promote, evaluate, decide and plan the club; serve its plan; the train output."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    trained = _run("train", "--data", str(club), "--as-of", AS_OF)
    _run("promote")
    _run("evaluate", "--data", str(club), "--as-of", AS_OF, "--model", "models:/nbo@champion")
    db = f"sqlite:///{tmp_path / 'history.db'}"
    out = tmp_path / "decisions.parquet"
    _run("decide", "--data", str(club), "--at", f"{DAY}", "--out", str(out), "--database-url", db)
    plans = tmp_path / "plans"
    _run("plan", "--data", str(club), "--day", f"{DAY}", "--out", str(plans), "--database-url", db)
    settings = Settings(api_keys=KEYS, plan_dir=plans, data_dir=club, today=DAY,
                        database_url=f"sqlite:///{tmp_path / 'serve.db'}")  # fmt: skip
    with TestClient(create_app(settings)) as client:
        answer = client.get("/v1/members/2/offers", headers=READER)
        assert answer.status_code == 200, answer.text
    return trained


def test_a_receipts_only_club_trains_what_has_data_and_says_what_it_skipped(
    clubs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    club = clubs["receipts"]
    assert not (club / "campaigns.parquet").exists()
    trained = " ".join(_lifecycle(club, tmp_path, monkeypatch).split())
    assert "purchase propensity skipped: no targeted campaign before 2024-04-01" in trained
    assert "offer response skipped: no redemption in a campaign before 2024-04-01" in trained
    configure()
    bundle = load_bundle("models:/nbo@champion")
    assert not bundle.purchase.learned_ and not bundle.response.learned_
    assert bundle.params["response.learned"] is False and bundle.params["purchase.reason"]
    # the models that read receipts alone are trained: products and visits
    history = History.at(ClubData(club), as_datetime(AS_OF))
    members = history.members.select("member_id").head(20).collect()["member_id"].to_numpy()
    assert bundle.affinity.recommend(history, members, k=3).height > 0
    visits = bundle.timing.predict(history)["expected_visits"].to_numpy()
    assert np.isfinite(visits).all() and visits.max() > 0
    # the nightly job on the same club: trains, compares like for like, says what it skipped
    nightly = runner.invoke(app, ["retrain", "--data", str(club)], env={"COLUMNS": "200"})
    assert nightly.exit_code in (0, 3), nightly.output  # promoted or kept: no failure
    assert "offer response skipped: no redemption" in " ".join(nightly.output.split())


def test_campaigns_without_redemptions_decide_by_the_priors_with_logged_propensities(
    clubs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    club = clubs["no-redemptions"]
    trained = " ".join(_lifecycle(club, tmp_path, monkeypatch).split())
    assert "offer response skipped: no redemption" in trained
    assert "purchase propensity skipped" not in trained  # targeted campaigns teach p_buy
    configure()
    bundle = load_bundle("models:/nbo@champion")
    assert bundle.purchase.learned_ and not bundle.response.learned_
    decisions = pl.read_parquet(tmp_path / "decisions.parquet")
    assert decisions.height > 0
    assert decisions["propensity"].is_between(0.0, 1.0, closed="right").all()
    # p_redeem is the documented prior of each pair's features, as of the decision day
    history = History.at(ClubData(club), as_datetime(f"{DAY}"))
    decided = decisions.select("member_id", "offer_id", "p_redeem").head(50)
    features = response_features(history, decided.lazy()).collect()  # input order kept
    expected = redeem_prior(features, bundle.response.prior_redeem_share)
    np.testing.assert_allclose(decided["p_redeem"].to_numpy(), expected, rtol=1e-9)
    assert (purchase_prior(features) > 0).all() and np.ptp(expected) > 0


def test_a_single_campaign_club_trains_and_serves(
    clubs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    club = clubs["single"]
    assert pl.read_parquet(club / "campaigns.parquet").height == 1
    _lifecycle(club, tmp_path, monkeypatch)
    configure()
    bundle = load_bundle("models:/nbo@champion")
    assert bundle.response.learned_ and bundle.response.train_campaigns_ == [
        pl.read_parquet(club / "campaigns.parquet")["campaign_id"][0]
    ]
