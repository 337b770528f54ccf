"""Randomized exposure read from the interaction history, and the uplift model learning from it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from nbo.data.io import ClubData
from nbo.features.history import History
from nbo.history import InteractionStore
from nbo.models.uplift import OfferUplift

from .conftest import T0, decision_frame
from .exposure_club import AS_OF, exposure_club, fav, regular, served_decisions


def test_holdout_would_be_offers_are_controls_and_the_champion_s_sent_ones_treated(
    store: InteractionStore,
) -> None:
    hour = timedelta(hours=1)
    store.record_decisions(
        decision_frame(
            # member 1, champion: sent twice, the first decision makes the row
            {"member_id": 1, "campaign_id": "C1", "arm": "champion", "explored": True,
             "propensity": 0.1},
            {"member_id": 1, "campaign_id": "C1", "arm": "champion", "decided_at": T0 + hour},
            # member 2, holdout: would-be offers, not delivered
            {"member_id": 2, "campaign_id": "C1", "arm": "holdout", "delivered": False},
            {"member_id": 2, "offer_id": "C2-b", "campaign_id": "C2", "arm": "holdout",
             "delivered": False},
            # left out: the challenger's, a batch run's (no arm), an offer of no campaign, a
            # member in two arms (a new salt moved them), and what was decided at or after T0+2h
            {"member_id": 3, "campaign_id": "C1", "arm": "challenger"},
            {"member_id": 4, "campaign_id": "C1"},
            {"member_id": 5, "arm": "champion"},
            {"member_id": 6, "campaign_id": "C1", "arm": "champion"},
            {"member_id": 6, "offer_id": "C1-b", "campaign_id": "C1", "arm": "holdout",
             "delivered": False},
            {"member_id": 7, "campaign_id": "C1", "arm": "holdout", "delivered": False,
             "decided_at": T0 + 2 * hour},
        )
    )  # fmt: skip
    exposure = store.randomized_exposure(before=T0 + 2 * hour)
    assert exposure.select("member_id", "offer_id", "campaign_id", "treated").rows() == [
        (1, "C1-a", "C1", True),
        (2, "C1-a", "C1", False),
        (2, "C2-b", "C2", False),
    ]
    first = exposure.row(0, named=True)
    assert first["decided_at"] == T0 and first["explored"] and first["propensity"] == 0.1
    assert store.randomized_exposure(before=T0).is_empty()


@pytest.fixture(scope="module")
def club(tmp_path_factory: pytest.TempPathFactory) -> ClubData:
    return ClubData(exposure_club(tmp_path_factory.mktemp("exposure") / "club"))


@pytest.fixture(scope="module")
def exposure(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    """The service's exposure before AS_OF, through a real store (SQLite)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('history') / 'nbo.db'}"
    with InteractionStore(url) as store:
        store.record_decisions(served_decisions())
        return store.randomized_exposure(before=AS_OF)


def _favourites(history: History, model: OfferUplift) -> pl.DataFrame:
    members = [m for m in range(1, 241) if m % 3 != 0]
    scored = pl.DataFrame(
        {
            "member_id": members,
            "offer_id": [f"C5-{fav(m)}" for m in members],
            "p_buy": [0.5] * len(members),
            "p_redeem": [0.2] * len(members),
        }
    )
    regulars = [m for m in members if regular(m)]
    return model.predict(history, scored).with_columns(regular=pl.col("member_id").is_in(regulars))


def test_the_history_s_holdout_measures_uplift_where_the_club_data_has_none(
    club: ClubData, exposure: pl.DataFrame
) -> None:
    history = History.at(club, AS_OF)
    alone = OfferUplift(min_samples_leaf=10).fit(history)
    assert not alone.measured_ and "no randomized exposure" in alone.reason_

    model = OfferUplift(min_samples_leaf=10).fit(history, exposure)
    assert model.measured_, model.reason_
    assert "interaction history" in model.reason_ and "holdout" in model.reason_
    out = _favourites(history, model)
    assert out["uplift_measured"].all()
    moved = float(out.filter(~pl.col("regular"))["uplift"].mean())  # type: ignore[arg-type]
    unmoved = float(out.filter(pl.col("regular"))["uplift"].mean())  # type: ignore[arg-type]
    # true effects: 0.3 x P(no purchase anyway) ~ 0.25 for non-regulars, 0 for regulars
    assert moved > unmoved + 0.05
    assert abs(unmoved) < 0.08


def test_exposure_decided_on_or_after_as_of_is_not_seen(
    club: ClubData, exposure: pl.DataFrame
) -> None:
    history = History.at(club, AS_OF)
    model = OfferUplift(min_samples_leaf=10).fit(history, exposure)
    # the future, tampered with: every pair again, decided at AS_OF, arms swapped
    future = exposure.with_columns(decided_at=pl.lit(AS_OF), treated=~pl.col("treated"))
    tampered = OfferUplift(min_samples_leaf=10).fit(history, pl.concat([future, exposure]))
    assert tampered.reason_ == model.reason_
    assert _favourites(history, tampered).equals(_favourites(history, model))
    only_future = OfferUplift(min_samples_leaf=10).fit(history, future)
    assert not only_future.measured_


def test_exposure_of_a_challenger_s_decisions_is_not_read(tmp_path: Path) -> None:
    with InteractionStore(f"sqlite:///{tmp_path / 'nbo.db'}") as store:
        store.record_decisions(
            served_decisions().with_columns(
                arm=pl.when(pl.col("arm") == "champion").then(pl.lit("challenger"))
                .otherwise(pl.col("arm"))
            )
        )  # fmt: skip
        exposure = store.randomized_exposure(before=AS_OF)
    assert not exposure["treated"].any() and exposure.height > 0


def _nbo_with_served_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    """``nbo *args --history-url URL`` (exit 0) on a fresh MLflow store, the service's decisions
    in the history at URL; the command's output."""
    from typer.testing import CliRunner

    from nbo.cli import app

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'history.db'}"
    with InteractionStore(url) as store:
        store.record_decisions(served_decisions())
    result = CliRunner().invoke(app, [*args, "--history-url", url], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    return result.output


def test_nbo_train_history_url_measures_uplift_from_the_service_s_holdout(
    club: ClubData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    as_of = f"{AS_OF:%Y-%m-%d}"
    output = _nbo_with_served_history(
        tmp_path, monkeypatch, "train", "--data", str(club.root), "--as-of", as_of
    )
    text = " ".join(output.split())  # rich wraps long lines
    assert "1,280 pairs (416 holdout) before 2024-04-29" in text
    assert "holdout) on or after 2024-04-29" in text
    assert "uplift measured: X-learner" in text and "interaction history" in text
    # the exposure after --as-of is the back-test's held-out randomized data
    import mlflow

    (run,) = mlflow.search_runs(experiment_names=["nbo"], output_format="list")
    metrics = run.data.metrics
    assert metrics["holdout_uplift_measured"] == 1.0
    assert metrics["holdout_uplift_pairs"] > 0 and metrics["holdout_uplift_qini"] > 0


def test_nbo_retrain_history_url_measures_uplift_too(
    club: ClubData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # exit 0: no champion yet, so the candidate is promoted
    output = _nbo_with_served_history(tmp_path, monkeypatch, "retrain", "--data", str(club.root))
    # every decision came before the last receipt: all of them teach the uplift model
    assert "1,600 pairs (520 holdout) before 2024-05-20" in output
    import mlflow

    (run,) = mlflow.search_runs(experiment_names=["nbo"], output_format="list")
    assert run.data.params["uplift.measured"] == "True"
    assert "interaction history" in run.data.params["uplift.reason"]
