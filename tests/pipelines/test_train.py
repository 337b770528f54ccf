"""The training pipeline end to end on a small synthetic club, and its point-in-time guarantee."""

from __future__ import annotations

import math
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from nbo.data.io import ClubData, table_path
from nbo.features.history import History
from nbo.pipelines.train import train, train_bundle
from nbo.tracking.bundle import Bundle

AS_OF = datetime(2024, 4, 1)


@pytest.fixture(scope="module")
def trained(synth_club: Path) -> Bundle:
    return train(ClubData(synth_club), AS_OF, log=False).bundle


def test_train_produces_holdout_metrics(trained: Bundle) -> None:
    metrics = trained.metrics
    for key in (
        "holdout_recall_at_10",
        "holdout_ndcg_at_10",
        "holdout_visit_mae",
        "holdout_visit_mae_naive",
        "holdout_visit_rmse_ratio_bgnbd",
        "holdout_visit_poisson_deviance_ratio_bgnbd",
        "holdout_visit_brier_ratio_bgnbd",
        "holdout_visit_lapse_auc",
        "holdout_visit_lapse_auc_bgnbd",
    ):
        assert math.isfinite(metrics[key]), key
    assert 0 < metrics["holdout_recall_at_10"] <= 1
    assert trained.as_of == AS_OF
    assert trained.params["affinity.horizon_days"] == 14


def test_bundle_predictions_have_their_contract(trained: Bundle, synth_club: Path) -> None:
    club = ClubData(synth_club)
    recs = trained.recommend(club, AS_OF, k=5)
    assert recs.columns == ["member_id", "rank", "product_id", "score", "reason", "cold_start"]
    visits = trained.forecast_visits(club, AS_OF, 28)
    assert {
        "member_id",
        "expected_visits",
        "next_visit_date",
        "preferred_weekday",
        "preferred_hour",
    } <= set(visits.columns)
    offers = club.offers.select("offer_id").head(3).collect()["offer_id"].to_list()
    pairs = pl.DataFrame({"member_id": [1, 2, 3], "offer_id": offers, "at": [AS_OF] * 3})
    scored = trained.score_offers(club, pairs)
    assert scored["p_redeem"].is_between(0, 1).all() and scored.height == 3


def _read(root: Path, name: str) -> pl.DataFrame:
    return ClubData(root).raw(name).collect()


def _replace(root: Path, name: str, frame: pl.DataFrame) -> None:
    path = table_path(root, name)
    assert path is not None
    if path.is_dir():
        shutil.rmtree(path)
    frame.write_parquet(root / f"{name}.parquet")


def _tamper_after(source: Path, target: Path, cut: datetime) -> None:
    """Copy a dataset and change everything dated on or after ``cut``."""
    shutil.copytree(source, target)
    lines = _read(target, "transactions")
    later = lines.filter(pl.col("ts") >= cut)
    extra = later.head(500).with_columns(
        pl.col("basket_id") + 10**12, pl.col("ts") + timedelta(days=1)
    )
    _replace(
        target,
        "transactions",
        pl.concat(
            [
                lines.filter(pl.col("ts") < cut),
                later.with_columns(pl.col("quantity") * 3, pl.col("sales_value") * 2),
                extra,
            ]
        ),
    )
    redemptions = _read(target, "redemptions")
    fake = (
        _read(target, "campaign_audience")
        .join(_read(target, "offers"), on="campaign_id")
        .select("member_id", "offer_id")
        .head(50)
        .with_columns(ts=pl.lit(cut + timedelta(days=2)))
    )
    _replace(
        target,
        "redemptions",
        pl.concat([redemptions.filter(pl.col("ts") < cut), fake.cast(redemptions.schema)]).unique(),
    )


@pytest.mark.slow
def test_data_after_as_of_changes_nothing(
    trained: Bundle, synth_club: Path, tmp_path: Path
) -> None:
    tampered = tmp_path / "tampered"
    _tamper_after(synth_club, tampered, AS_OF)
    other = train_bundle(ClubData(tampered), AS_OF)
    original, changed = ClubData(synth_club), ClubData(tampered)
    assert other.recommend(changed, AS_OF, k=10).equals(trained.recommend(original, AS_OF, k=10))
    assert other.forecast_visits(changed, AS_OF).equals(trained.forecast_visits(original, AS_OF))
    pairs = (
        original.campaign_audience.join(original.offers, on="campaign_id")
        .select("member_id", "offer_id")
        .head(200)
        .collect()
        .with_columns(at=pl.lit(AS_OF))
    )
    assert other.score_offers(changed, pairs).equals(trained.score_offers(original, pairs))
    keys = pairs.select("member_id", "offer_id")
    assert other.purchase.predict_proba(History(changed, AS_OF), keys).equals(
        trained.purchase.predict_proba(History(original, AS_OF), keys)
    )
