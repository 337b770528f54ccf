"""OfferPurchase: p_buy learned from untreated pairs, point-in-time safe, estimator contract."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import joblib
import numpy as np
import polars as pl
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from nbo.data.io import ClubData, write_dataset
from nbo.evaluation.metrics import auc
from nbo.features.history import History
from nbo.features.offers import response_features
from nbo.models.prior import purchase_prior
from nbo.models.purchase import OfferPurchase, purchase_labels, untreated_pairs
from nbo.models.response import PairsError
from tests.models.uplift_club import AS_OF, campaign_start, fav, uplift_club


def small_model() -> OfferPurchase:
    return OfferPurchase(min_samples_leaf=10, max_iter=50)


@pytest.fixture(scope="module")
def club(tmp_path_factory: pytest.TempPathFactory) -> ClubData:
    return ClubData(uplift_club(tmp_path_factory.mktemp("purchase") / "club"))


@pytest.fixture(scope="module")
def fitted(club: ClubData) -> OfferPurchase:
    return small_model().fit(History.at(club, AS_OF))


def test_learns_only_from_members_who_did_not_get_the_offer(club: ClubData) -> None:
    history = History.at(club, AS_OF)
    campaigns = history.campaigns.collect()
    pairs = untreated_pairs(club, campaigns)
    audience = club.campaign_audience.collect()
    treated = audience.filter(pl.col("treated")).select("campaign_id", "member_id")
    assert pairs.join(treated, on=["campaign_id", "member_id"], how="semi").height == 0
    controls = audience.filter(~pl.col("treated"))
    assert pairs.join(controls, on=["campaign_id", "member_id"], how="semi").height > 0
    assert (pairs["member_id"] % 3 == 0).any()  # outside the audience
    capped = untreated_pairs(club, campaigns, max_pairs=500, random_state=1)
    assert 400 < capped.height < 600
    assert capped.equals(untreated_pairs(club, campaigns, max_pairs=500, random_state=1))


def test_fit_and_regular_buyers_score_high(club: ClubData, fitted: OfferPurchase) -> None:
    assert fitted.train_campaigns_ == ["C1", "C2", "C3", "C4"]
    assert fitted.feature_names_[-1] == "window_days"
    history = History.at(club, AS_OF)
    pairs = pl.DataFrame({"member_id": [2, 1, 2], "offer_id": ["C5-3", "C5-2", "C5-8"]})
    regular_fav, other_fav, not_fav = fitted.predict_proba(history, pairs)["p_buy"].to_list()
    assert fav(2) == 3 and fav(1) == 2
    assert regular_fav > 0.7 > 0.5 > other_fav > 0.05 > not_fav


def test_ranks_the_holdout_campaign(club: ClubData, fitted: OfferPurchase) -> None:
    history = History.at(club, AS_OF)
    holdout = club.campaigns.filter(pl.col("start_date") >= AS_OF.date()).collect()
    truth = purchase_labels(
        untreated_pairs(club, holdout, members_at=AS_OF), club.transactions, club
    )
    scored = fitted.predict_proba(history, truth)
    assert scored.select("member_id", "offer_id").equals(truth.select("member_id", "offer_id"))
    assert auc(truth["label"], scored["p_buy"]) > 0.9
    # calibrated in total: the sample is uniform, so no weights to undo
    assert float(scored["p_buy"].mean()) == pytest.approx(float(truth["label"].mean()), rel=0.3)  # type: ignore[arg-type]


@pytest.mark.parametrize("cut", [AS_OF, campaign_start(4) + timedelta(days=7)])
def test_data_after_as_of_changes_nothing(tmp_path: Path, club: ClubData, cut: datetime) -> None:
    # the second cut falls inside C4's window: its labels must stop at the cut
    names = ("members", "products", "transactions", "campaigns", "campaign_audience")
    tables = {name: club.scan(name).collect() for name in (*names, "offers", "offer_products")}
    tables["redemptions"] = club.redemptions.collect()
    lines = tables["transactions"]
    after = lines.filter(pl.col("ts") >= cut)
    # everyone buys every offered product after the cut; the future audience changes too
    extra = after.head(200).with_columns(
        product_id=(pl.col("member_id") % 8 + 1), basket_id=pl.col("basket_id") + 10**6
    )
    tables["transactions"] = pl.concat(
        [lines, extra.with_columns(ts=pl.col("ts") + timedelta(days=1))]
    )
    tables["campaign_audience"] = tables["campaign_audience"].with_columns(
        treated=pl.when(pl.col("campaign_id") == "C5").then(False).otherwise(pl.col("treated"))
    )
    write_dataset(tables, tmp_path / "changed", source="test")
    changed = ClubData(tmp_path / "changed")
    pairs = pl.DataFrame({"member_id": list(range(1, 61)), "offer_id": ["C5-1"] * 60})

    def predictions(data: ClubData) -> pl.DataFrame:
        history = History.at(data, cut)
        return small_model().fit(history).predict_proba(history, pairs)

    assert predictions(club).equals(predictions(changed))


def test_estimator_contract_and_errors(
    club: ClubData, fitted: OfferPurchase, tmp_path: Path
) -> None:
    history = History.at(club, AS_OF)
    assert clone(fitted).get_params() == fitted.get_params()
    pairs = pl.DataFrame({"member_id": [1, 2], "offer_id": ["C5-1", "C5-2"]})
    joblib.dump(fitted, tmp_path / "purchase.joblib")
    assert (
        joblib.load(tmp_path / "purchase.joblib")
        .predict_proba(history, pairs)
        .equals(fitted.predict_proba(history, pairs))
    )
    with pytest.raises(NotFittedError):
        OfferPurchase().predict_proba(history, pairs)
    with pytest.raises(PairsError, match="NOPE"):
        fitted.predict_proba(history, pairs.with_columns(offer_id=pl.lit("NOPE")))
    early = History.at(club, AS_OF - timedelta(weeks=12))
    prior = small_model().fit(early)  # nothing to learn from yet: the documented prior
    assert not prior.learned_ and prior.model_ is None and "no targeted campaign" in prior.reason_
    features = response_features(early, pairs.select("member_id", "offer_id").lazy()).collect()
    np.testing.assert_array_equal(
        prior.predict_proba(early, pairs)["p_buy"].to_numpy(), purchase_prior(features)
    )
