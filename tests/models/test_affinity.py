"""Product affinity: repurchase clocks, candidates, cold start, persistence, determinism."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import numpy as np
import polars as pl
import pytest

from nbo.data.io import ClubData
from nbo.features.history import History
from nbo.models.affinity import ProductAffinity, RankerBag
from nbo.models.cf import CollaborativeFilter
from tests.models.clubs import BREAD, MILK, START, rhythm_club

SMALL: dict[str, Any] = {
    "n_repurchase": 20,
    "n_cf": 5,
    "n_popular": 5,
    "max_iter": 40,
    "cf": CollaborativeFilter(factors=8, iterations=3),
    # One ranker: here milk and bread are both certain within the 14-day horizon, and one
    # ranker's exact tie is broken by product id; an average of several breaks it by float noise.
    "n_rankers": 1,
    "negative_share": 0.3,
}


@pytest.fixture(scope="module")
def club(tmp_path_factory: pytest.TempPathFactory) -> ClubData:
    return ClubData(rhythm_club(tmp_path_factory.mktemp("rhythm") / "club"))


@pytest.fixture(scope="module")
def fitted(club: ClubData) -> tuple[ProductAffinity, History]:
    # member 1 bought milk on day 77 (week 11); day 84 is exactly 7 days later
    history = History.at(club, START.replace(hour=0) + (START - START) + _days(84))
    return ProductAffinity(**SMALL).fit(history), history


def _days(n: int):  # type: ignore[no-untyped-def]
    from datetime import timedelta

    return timedelta(days=n)


def test_weekly_milk_is_first_on_day_seven(fitted: tuple[ProductAffinity, History]) -> None:
    model, history = fitted
    recs = model.recommend(history, np.array([1]), k=5)
    assert recs["product_id"][0] == MILK
    first = recs.row(0, named=True)
    assert first["reason"] == "repurchase_due" and not first["cold_start"]
    assert recs["rank"].to_list() == list(range(1, recs.height + 1))


def test_fit_returns_self_and_learned_attributes(club: ClubData) -> None:
    model = ProductAffinity(**SMALL)
    history = History.at(club, "2024-03-25")
    assert model.fit(history) is model
    assert model.train_rows_ > 0 and 0 < model.train_positive_rate_ < 1
    assert set(model.importance_) >= {"due_ratio", "days_since_last"}


def test_cold_start_member_gets_popular_products(fitted: tuple[ProductAffinity, History]) -> None:
    model, history = fitted
    recs = model.recommend(history, np.array([999_999]), k=3)
    assert recs["cold_start"].all() and (recs["reason"] == "popular").all()
    assert set(recs["product_id"]) <= {MILK, BREAD} | set(range(3, 30))
    assert recs["product_id"][0] == MILK  # everyone buys milk: the most popular product


def test_recommendations_are_unique_and_limited_to_k(
    fitted: tuple[ProductAffinity, History],
) -> None:
    model, history = fitted
    recs = model.recommend(history, k=4)
    per_member = recs.group_by("member_id").agg(pl.len(), pl.col("product_id").n_unique())
    assert (per_member["len"] <= 4).all()
    assert (per_member["len"] == per_member["product_id"]).all()
    assert set(recs["reason"].unique()) <= {
        "repurchase_due",
        "bought_before",
        "similar_members",
        "popular",
    }


def test_joblib_round_trip_and_determinism(
    fitted: tuple[ProductAffinity, History], tmp_path: Path, club: ClubData
) -> None:
    model, history = fitted
    path = tmp_path / "affinity.joblib"
    joblib.dump(model, path)
    again = joblib.load(path)
    assert again.recommend(history, k=5).equals(model.recommend(history, k=5))
    refit = ProductAffinity(**SMALL).fit(history)
    assert refit.recommend(history, k=5).equals(model.recommend(history, k=5))


def test_ranker_bag_averages_its_rankers(fitted: tuple[ProductAffinity, History]) -> None:
    _, history = fitted
    model = ProductAffinity(**(SMALL | {"n_rankers": 3, "negative_share": 0.2})).fit(history)
    assert isinstance(model.ranker_, RankerBag) and len(model.ranker_.rankers) == 3
    features = np.zeros((3, model.ranker_.rankers[0].n_features_in_))
    mean = np.mean([r.predict_proba(features) for r in model.ranker_.rankers], axis=0)
    assert np.allclose(model.ranker_.predict_proba(features), mean)


def test_no_history_is_a_clear_error(club: ClubData) -> None:
    with pytest.raises(ValueError, match="no receipts before"):
        ProductAffinity(**SMALL).fit(History.at(club, "2023-06-01"))
