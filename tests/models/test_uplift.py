"""OfferUplift: the X-learner recovers a known effect; without controls it falls back, flagged;
controls are never response examples nor decided for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.exceptions import NotFittedError

from nbo.data.io import ClubData
from nbo.decisioning.policy import Policy
from nbo.features.history import History
from nbo.models.response import PairsError
from nbo.models.response_pairs import training_pairs
from nbo.models.uplift import OfferUplift, XLearner, assumed_uplift
from nbo.pipelines.candidates import OfferContext, active_offers
from tests.models.uplift_club import AS_OF, fav, regular, uplift_club

PARAMS: dict[str, float | int | None] = {"max_iter": 50, "min_samples_leaf": 20, "random_state": 0}


def test_x_learner_recovers_segment_effects() -> None:
    # segment 1: P(y) 0.2 -> 0.5 when treated (+0.3); segment 0: 0.4 either way; 25 % control
    rng = np.random.default_rng(0)
    n = 8000
    segment = rng.integers(0, 2, n)
    matrix = np.column_stack([segment, rng.normal(size=n)]).astype(np.float64)
    treated = rng.random(n) < 0.75
    p = np.where(segment == 1, 0.2 + 0.3 * treated, 0.4)
    outcome = (rng.random(n) < p).astype(np.int8)
    effect = XLearner.fit(matrix, treated, outcome, 0.75, PARAMS).effect(matrix)
    moved, unmoved = effect[segment == 1].mean(), effect[segment == 0].mean()
    # ~1000 controls per segment: the difference of two rates has a standard error of ~0.02,
    # so 0.06 is three of them; tree shrinkage only pulls towards the pooled effect
    assert moved == pytest.approx(0.3, abs=0.06)
    assert unmoved == pytest.approx(0.0, abs=0.06)
    assert (effect >= -1).all() and (effect <= 1).all()


@pytest.fixture(scope="module")
def club(tmp_path_factory: pytest.TempPathFactory) -> ClubData:
    return ClubData(uplift_club(tmp_path_factory.mktemp("uplift") / "club"))


def favourite_pairs(p_buy: float = 0.5, p_redeem: float = 0.2) -> pl.DataFrame:
    members = list(range(1, 241))
    return pl.DataFrame(
        {
            "p_redeem": [p_redeem] * len(members),  # columns in any order
            "offer_id": [f"C5-{fav(m)}" for m in members],
            "member_id": members,
            "p_buy": [p_buy] * len(members),
        }
    )


def test_measured_on_randomized_campaigns_ranks_the_moved_segment_first(club: ClubData) -> None:
    history = History.at(club, AS_OF)
    model = OfferUplift(min_samples_leaf=10).fit(history)
    assert model.measured_ and "X-learner" in model.reason_
    scored = favourite_pairs()
    out = model.predict(history, scored)
    assert out.columns == ["member_id", "offer_id", "uplift", "uplift_measured"]
    assert out["member_id"].equals(scored["member_id"]) and out["uplift_measured"].all()
    regulars = pl.col("member_id").is_in([m for m in range(1, 241) if regular(m)])
    moved, unmoved = out.filter(~regulars)["uplift"], out.filter(regulars)["uplift"]
    # true effects: 0.3 x P(no purchase anyway) ~ 0.2 for non-regulars, 0 for regulars; trees
    # pooled with the seven zero-effect offers per member shrink the first towards 0
    assert float(moved.mean()) > float(unmoved.mean()) + 0.05  # type: ignore[arg-type]
    assert abs(float(unmoved.mean())) < 0.08  # type: ignore[arg-type]


def test_without_controls_falls_back_to_the_flagged_assumption(tmp_path: Path) -> None:
    club = ClubData(uplift_club(tmp_path / "club", randomized=False))
    history = History.at(club, AS_OF)
    model = OfferUplift().fit(history)
    assert not model.measured_ and "no randomized exposure" in model.reason_
    scored = favourite_pairs(p_buy=0.25, p_redeem=0.4).with_columns(
        p_buy=pl.Series(np.linspace(0, 1, 240))
    )
    out = model.predict(history, scored)
    expected = assumed_uplift(scored["p_redeem"].to_numpy(), scored["p_buy"].to_numpy())
    np.testing.assert_allclose(out["uplift"].to_numpy(), expected)
    assert not out["uplift_measured"].any()
    assert (out["uplift"] <= scored["p_redeem"]).all()
    assert out["uplift"].is_sorted(descending=True)  # shrinks as p_buy grows


def test_assumed_uplift_is_one_rule_for_numpy_and_polars() -> None:
    frame = pl.DataFrame({"p_redeem": [0.5, 0.2, 0.0], "p_buy": [0.0, 0.5, 0.9]})
    by_expr = frame.select(assumed_uplift(pl.col("p_redeem"), pl.col("p_buy")))["p_redeem"]
    np.testing.assert_allclose(by_expr.to_numpy(), [0.5, 0.1, 0.0])
    np.testing.assert_allclose(
        assumed_uplift(frame["p_redeem"].to_numpy(), frame["p_buy"].to_numpy()), [0.5, 0.1, 0.0]
    )


def test_bad_scored_pairs_and_unfitted(club: ClubData) -> None:
    history = History.at(club, AS_OF)
    with pytest.raises(NotFittedError):
        OfferUplift().predict(history, favourite_pairs())
    model = OfferUplift(min_control_pairs=10**9).fit(history)  # too few controls: falls back
    assert not model.measured_ and "need" in model.reason_
    with pytest.raises(PairsError, match="missing"):
        model.predict(history, favourite_pairs().drop("p_buy"))
    with pytest.raises(PairsError, match=r"outside \[0, 1\]"):
        model.predict(history, favourite_pairs(p_buy=1.5))


def test_controls_are_no_examples_of_the_response_model_and_get_no_candidates(
    club: ClubData,
) -> None:
    audience = club.campaign_audience.collect()
    controls = audience.filter(~pl.col("treated")).select("campaign_id", "member_id")
    assert controls.height > 0
    history = History.at(club, AS_OF)
    pairs = training_pairs(history)
    assert pairs.height > 0
    # a control got no offer: neither a redemption nor a non-redemption to learn from
    assert pairs.join(controls, on=["campaign_id", "member_id"], how="semi").is_empty()
    offered = audience.filter(pl.col("treated")).select("campaign_id", "member_id")
    assert (
        pairs.select("campaign_id", "member_id")
        .unique()
        .join(offered, on=["campaign_id", "member_id"], how="anti")
        .is_empty()
    )
    # nbo does not decide for the club's controls: the running campaign's candidates skip them
    offers = active_offers(club, AS_OF, "C5")
    context = OfferContext.build(history, offers, Policy(), popular_offers=0)
    c5 = controls.filter(pl.col("campaign_id") == "C5")
    assert (
        context.audience.filter(pl.col("campaign_id") == "C5")
        .join(c5, on=["campaign_id", "member_id"], how="semi")
        .is_empty()
    )
    assert context.audience.filter(pl.col("campaign_id") == "C5").height == (
        offered.filter(pl.col("campaign_id") == "C5").height
    )
