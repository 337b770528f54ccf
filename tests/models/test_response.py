"""OfferResponse: behaviour, point-in-time safety and the estimator contract."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import joblib
import numpy as np
import polars as pl
import pytest
from sklearn.exceptions import NotFittedError

from nbo.data.completejourney import import_completejourney
from nbo.data.io import ClubData, write_dataset
from nbo.evaluation.metrics import auc
from nbo.features.history import History
from nbo.features.offers import FEATURES, response_features
from nbo.models.prior import redeem_prior
from nbo.models.response import OfferResponse
from nbo.models.response_pairs import offer_pairs, training_pairs
from tests.conftest import conform_frame

START = datetime(2024, 1, 1)
WEEKS = 20
AS_OF = START + timedelta(weeks=15)  # campaign C5 starts here; C1..C4 are history
SUBJECT, STRANGER = 2, 1  # buys product 9 weekly, uses coupons / never buys it, never redeems


def campaign_start(c: int) -> date:
    return (START + timedelta(weeks=3 * c)).date()


def offer_club(root: Path, *, members: int = 60, seed: int = 0) -> Path:
    """Members buy two favourite products weekly; coupon users redeem offers on them.

    Five two-week campaigns (every third week from week 3) of four one-product offers each,
    cycling through products 1..12, so C5 repeats C2's products. Everyone is in every audience.
    Even members use coupons on receipts and redeem 80% of the offers on their favourites; odd
    ones never redeem. Member 2 (the subject) favours products 9 and 1; member 1 favours 3, 4.
    """
    rng = np.random.default_rng(seed)
    favourites = {
        m: [int(p) for p in rng.choice(np.arange(1, 13), 2, replace=False)]
        for m in range(1, members + 1)
    }
    favourites[SUBJECT], favourites[STRANGER] = [9, 1], [3, 4]
    lines, basket = [], 0
    for member, products in favourites.items():
        for week in range(WEEKS):
            basket += 1
            ts = START + timedelta(weeks=week, days=int(rng.integers(0, 7)), hours=10)
            extra = [int(rng.integers(13, 30))]
            coupon = 0.5 if member % 2 == 0 and rng.random() < 0.3 else 0.0
            lines += [
                (member, basket, p, 1, ts, 1.0, 2.0, 0.0, coupon if p == products[0] else 0.0)
                for p in products + extra
            ]
    columns = [
        "member_id",
        "basket_id",
        "product_id",
        "store_id",
        "ts",
        "quantity",
        "sales_value",
        "retail_disc",
        "coupon_disc",
    ]
    transactions = pl.DataFrame(lines, schema=columns, orient="row")
    campaigns = pl.DataFrame(
        {
            "campaign_id": [f"C{c}" for c in range(1, 6)],
            "campaign_type": ["A", "B", "A", "B", "A"],
            "start_date": [campaign_start(c) for c in range(1, 6)],
            "end_date": [campaign_start(c) + timedelta(days=13) for c in range(1, 6)],
        }
    )
    offer_rows = [
        (f"C{c}-{k}", f"C{c}", (4 * c + k) % 12 + 1) for c in range(1, 6) for k in range(4)
    ]
    offers = pl.DataFrame(
        offer_rows, schema=["offer_id", "campaign_id", "product_id"], orient="row"
    )
    audience = campaigns.select("campaign_id").join(
        pl.DataFrame({"member_id": list(favourites)}), how="cross"
    )
    redeemed = [
        (
            member,
            offer_id,
            datetime.combine(campaign_start(int(campaign[1:])), datetime.min.time())
            + timedelta(days=int(rng.integers(1, 12))),
        )
        for member, products in favourites.items()
        for offer_id, campaign, product in offer_rows
        if member % 2 == 0 and product in products and rng.random() < 0.8
    ]
    tables = {
        "members": pl.DataFrame({"member_id": list(favourites)}),
        "products": pl.DataFrame(
            {
                "product_id": list(range(1, 30)),
                "department": ["GROCERY"] * 29,
                "category": [f"CAT{p % 4}" for p in range(1, 30)],
            }
        ),
        "transactions": transactions,
        "campaigns": campaigns,
        "campaign_audience": audience,
        "offers": offers.select("offer_id", "campaign_id"),
        "offer_products": offers.select("offer_id", "product_id"),
        "redemptions": pl.DataFrame(redeemed, schema=["member_id", "offer_id", "ts"], orient="row"),
    }
    write_dataset({n: conform_frame(n, f) for n, f in tables.items()}, root, source="test")
    return root


def small_model(**params: object) -> OfferResponse:
    return OfferResponse(min_samples_leaf=5, min_history_days=14, **params)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def club(tmp_path_factory: pytest.TempPathFactory) -> ClubData:
    return ClubData(offer_club(tmp_path_factory.mktemp("offers") / "club"))


@pytest.fixture(scope="module")
def fitted(club: ClubData) -> OfferResponse:
    return small_model().fit(History.at(club, AS_OF))


def test_fit_returns_self_and_learned_attributes(club: ClubData) -> None:
    model = small_model()
    assert model.fit(History.at(club, AS_OF)) is model
    assert model.feature_names_[: len(FEATURES)] == list(FEATURES)
    assert model.feature_names_[len(FEATURES) :] == ["campaign_type=A", "campaign_type=B"]
    assert model.train_campaigns_ == ["C1", "C2", "C3", "C4"]  # C1 starts 21 days in
    assert model.n_train_positives_ > 10


def test_buyer_who_redeemed_beats_stranger(club: ClubData, fitted: OfferResponse) -> None:
    pairs = pl.DataFrame({"member_id": [SUBJECT, STRANGER], "offer_id": ["C5-0", "C5-0"]})
    scored = fitted.predict_proba(History.at(club, AS_OF), pairs)  # C5-0 is product 9
    subject, stranger = scored["p_redeem"].to_list()
    assert subject > 0.3 > 0.05 > stranger


def test_ranks_future_campaign_well(club: ClubData, fitted: OfferResponse) -> None:
    truth = offer_pairs(club, AS_OF)
    assert truth["campaign_id"].unique().to_list() == ["C5"]
    assert truth.height == 60 * 4
    scored = fitted.predict_proba(History.at(club, AS_OF), truth)
    assert scored.select("member_id", "offer_id").equals(truth.select("member_id", "offer_id"))
    assert auc(truth["label"], scored["p_redeem"]) > 0.9
    assert scored["p_redeem"].is_between(0.0, 1.0).all()


def test_data_after_as_of_changes_no_prediction(tmp_path: Path, club: ClubData) -> None:
    later = AS_OF + timedelta(days=3)
    after_cut = pl.col("ts") >= AS_OF
    transactions = pl.concat(
        [
            club.transactions.collect(),
            club.transactions.filter(pl.col("member_id") == STRANGER)
            .head(3)
            .with_columns(
                product_id=pl.lit(9, pl.Int64), ts=pl.lit(later), basket_id=pl.lit(-1, pl.Int64)
            )
            .collect(),
        ]
    ).with_columns(
        pl.when(after_cut).then(pl.col("quantity") * 5).otherwise(pl.col("quantity")),
        pl.when(after_cut).then(pl.col("coupon_disc") + 1).otherwise(pl.col("coupon_disc")),
    )
    extra = pl.DataFrame(
        {"member_id": [STRANGER] * 2, "offer_id": ["C4-0", "C5-0"], "ts": [AS_OF, later]}
    )
    tables = {
        name: club.scan(name).collect()
        for name in (
            "members",
            "products",
            "campaigns",
            "campaign_audience",
            "offers",
            "offer_products",
        )
    }
    tables["transactions"] = transactions
    tables["redemptions"] = pl.concat(
        [club.redemptions.collect(), conform_frame("redemptions", extra)]
    )
    write_dataset(tables, tmp_path / "changed", source="test")
    changed = ClubData(tmp_path / "changed")
    pairs = offer_pairs(club, AS_OF).select("member_id", "offer_id")

    def predictions(data: ClubData) -> pl.DataFrame:
        history = History.at(data, AS_OF)
        return small_model().fit(history).predict_proba(history, pairs)

    assert predictions(club).equals(predictions(changed))
    assert not offer_pairs(club, AS_OF).equals(offer_pairs(changed, AS_OF))  # labels did change


def test_unknown_member_is_cold_start(club: ClubData, fitted: OfferResponse) -> None:
    pairs = pl.DataFrame({"member_id": [12345, SUBJECT], "offer_id": ["C5-0", "C5-0"]})
    scored = fitted.predict_proba(History.at(club, AS_OF), pairs)
    cold, subject = scored["p_redeem"].to_list()
    assert 0.0 <= cold < subject


def test_unknown_offer_is_an_error_naming_it(club: ClubData, fitted: OfferResponse) -> None:
    pairs = pl.DataFrame({"member_id": [1, 1, 2], "offer_id": ["C5-0", "NOPE-1", "NOPE-2"]})
    with pytest.raises(ValueError, match=r"2 offer id\(s\).*NOPE-1, NOPE-2"):
        fitted.predict_proba(History.at(club, AS_OF), pairs)


def test_empty_pairs_and_unfitted(club: ClubData, fitted: OfferResponse) -> None:
    empty = pl.DataFrame(schema={"member_id": pl.Int64, "offer_id": pl.String})
    scored = fitted.predict_proba(History.at(club, AS_OF), empty)
    assert scored.height == 0 and scored.schema["p_redeem"] == pl.Float64
    with pytest.raises(NotFittedError, match="not fitted"):
        OfferResponse().predict_proba(History.at(club, AS_OF), empty)
    early = History.at(club, START + timedelta(weeks=2))
    prior = small_model().fit(early)  # nothing to learn from yet: the documented prior
    assert not prior.learned_ and prior.model_ is None
    assert prior.reason_.startswith("no redemption in a campaign before")
    pairs = offer_pairs(club, AS_OF).select("member_id", "offer_id").head(30)
    features = response_features(early, pairs.select("member_id", "offer_id").lazy()).collect()
    np.testing.assert_array_equal(
        prior.predict_proba(early, pairs)["p_redeem"].to_numpy(),
        redeem_prior(features, prior.prior_redeem_share),
    )


def test_pickles_and_is_deterministic(
    tmp_path: Path, club: ClubData, fitted: OfferResponse
) -> None:
    history = History.at(club, AS_OF)
    pairs = offer_pairs(club, AS_OF).select("member_id", "offer_id")
    expected = fitted.predict_proba(history, pairs)
    joblib.dump(fitted, tmp_path / "response.joblib")
    loaded: OfferResponse = joblib.load(tmp_path / "response.joblib")
    assert loaded.predict_proba(history, pairs).equals(expected)
    assert small_model().fit(history).predict_proba(history, pairs).equals(expected)


def test_training_pairs_sample_deterministically(club: ClubData) -> None:
    history = History.at(club, AS_OF)
    full = training_pairs(history, min_history_days=14)
    positives = int(full["label"].sum())
    sampled = training_pairs(
        history, min_history_days=14, max_pairs=10_000, negatives_per_positive=2.0, random_state=3
    )
    assert int(sampled["label"].sum()) == positives  # every positive kept
    assert sampled.height - positives == 2 * positives
    negative_weight = sampled.filter(pl.col("label") == 0)["weight"].unique().item()
    assert negative_weight == pytest.approx(
        (full.height - positives) / (sampled.height - positives)
    )
    assert sampled.equals(
        training_pairs(
            history,
            min_history_days=14,
            max_pairs=10_000,
            negatives_per_positive=2.0,
            random_state=3,
        )
    )
    capped = training_pairs(history, min_history_days=14, max_pairs=40, random_state=3)
    assert capped.height <= 40 and int(capped["label"].sum()) == 20
    # sampled pairs are real audience × offer pairs with the right labels
    assert sampled.join(full, on=["member_id", "offer_id", "label"], how="anti").height == 0


@pytest.mark.slow
def test_offer_auc_on_complete_journey(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Real data, as of 2017-09-04 (benchmarks/offer_quality.py prints the full table)."""
    root = tmp_path_factory.mktemp("cj") / "completejourney"
    import_completejourney(root)
    club = ClubData(root)
    history = History.at(club, "2017-09-04")
    truth = offer_pairs(club, "2017-09-04")
    assert truth["campaign_id"].n_unique() == 10
    scored = OfferResponse().fit(history).predict_proba(history, truth)
    assert auc(truth["label"], scored["p_redeem"]) >= 0.90
    expected = float(scored["p_redeem"].sum())
    assert 0.7 < expected / int(truth["label"].sum()) < 1.3  # calibrated in total


def test_binned_scores_equal_the_models_own(club: ClubData, fitted: OfferResponse) -> None:
    # issue 4: predict_proba walks the trees on binned features for speed; same probabilities
    history = History.at(club, AS_OF)
    pairs = offer_pairs(club, AS_OF).select("member_id", "offer_id")
    matrix = fitted._matrix(response_features(history, pairs.lazy()).collect())
    expected = fitted.model_.predict_proba(matrix)[:, 1]
    np.testing.assert_allclose(fitted._sample_p(matrix), expected, rtol=1e-12, atol=1e-15)
