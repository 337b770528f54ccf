"""Candidate products and their ranker features: one row per (member, product), every column."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from nbo.data.io import ClubData
from nbo.features.history import History
from nbo.models.affinity import ProductAffinity
from nbo.models.affinity_candidates import FEATURES, candidate_features
from nbo.models.cf import CollaborativeFilter
from tests.models.clubs import MILK, START, rhythm_club


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    club = ClubData(rhythm_club(tmp_path_factory.mktemp("rhythm") / "club"))
    return History.at(club, START.replace(hour=0) + timedelta(days=84))


def _candidates(history: History, members: np.ndarray) -> pl.DataFrame:
    model = ProductAffinity(n_cf=5, cf=CollaborativeFilter(factors=8, iterations=3))
    cf, item_repeat = model._fit_state(history)
    return candidate_features(
        history, members, cf, item_repeat.lazy(), n_repurchase=20, n_cf=5, n_popular=5
    )


def test_one_row_per_member_and_product_with_every_feature(history: History) -> None:
    frame = _candidates(history, np.array([1, 2]))
    assert set(FEATURES) <= set(frame.columns)
    assert frame.select("member_id", "product_id").is_duplicated().sum() == 0
    assert set(frame["member_id"].unique()) <= {1, 2}


def test_a_product_bought_before_carries_its_own_history(history: History) -> None:
    milk = (
        _candidates(history, np.array([1])).filter(pl.col("product_id") == MILK).row(0, named=True)
    )
    assert milk["bought_before"] == 1 and milk["n_baskets"] >= 1
    assert milk["days_since_last"] == pytest.approx(7.0, abs=0.5)  # bought on day 77
