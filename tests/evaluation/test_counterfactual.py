"""Decisions scored against known counterfactuals, on tiny frames computed by hand."""

from __future__ import annotations

import math

import polars as pl
import pytest

from nbo.evaluation.counterfactual import (
    BUY,
    NBO,
    ORACLE,
    ORACLE_FREE,
    RANDOM,
    REDEEM,
    Targets,
    method_summary,
    offers_per_list,
    positive_per_list,
    random_per_list,
    targets,
    top_per_list,
    true_incremental,
)

OFFERS = ["C1-01", "C1-02", "C1-03"]

# per (member, offer): p_buy_control, p_buy_treated, p_redeem_treated, value, coupon_cost and,
# by hand, true_incremental = (p1 − p0) × value − p_redeem_treated × coupon_cost
TRUTH_ROWS = [
    (1, "C1-01", 0.2, 0.5, 0.3, 2.0, 1.0),  # 0.3 × 2 − 0.3 × 1 = 0.3
    (1, "C1-02", 0.6, 0.6, 0.5, 1.0, 0.5),  # 0 − 0.25 = −0.25 (a sure thing)
    (1, "C1-03", 0.1, 0.2, 0.1, 4.0, 2.0),  # 0.4 − 0.2 = 0.2
    (2, "C1-01", 0.5, 0.25, 0.2, 2.0, 1.0),  # −0.5 − 0.2 = −0.7 (do not disturb)
    (2, "C1-02", 0.0, 0.4, 0.2, 1.0, 0.5),  # 0.4 − 0.1 = 0.3
    (2, "C1-03", 0.3, 0.3, 0.1, 4.0, 2.0),  # 0 − 0.2 = −0.2
]
TRUE = {(1, "C1-01"): 0.3, (1, "C1-02"): -0.25, (1, "C1-03"): 0.2,
        (2, "C1-01"): -0.7, (2, "C1-02"): 0.3, (2, "C1-03"): -0.2}  # fmt: skip


def _truth() -> pl.DataFrame:
    member, offer, p0, p1, redeem, value, coupon = zip(*TRUTH_ROWS, strict=True)
    return pl.DataFrame(
        {
            "campaign_id": ["C1"] * len(member),
            "offer_id": offer,
            "member_id": member,
            "treated": [True] * len(member),
            "response_type": ["x"] * len(member),
            "p_buy_control": p0,
            "p_buy_treated": p1,
            "p_redeem_treated": redeem,
            "value": value,
            "coupon_cost": coupon,
        }
    )


def _eligible() -> pl.DataFrame:
    """nbo's view of the six pairs: its scores and its estimate of the incremental value."""
    return pl.DataFrame(
        {
            "campaign_id": ["C1"] * 6,
            "member_id": [1, 1, 1, 2, 2, 2],
            "offer_id": OFFERS * 2,
            "p_redeem": [0.1, 0.6, 0.2, 0.5, 0.1, 0.3],
            "p_buy": [0.2, 0.7, 0.1, 0.6, 0.05, 0.01],
            "incremental_value": [0.35, -0.1, 0.1, -0.3, 0.25, 0.0],
            "value": [9.0] * 6,  # nbo's own value: must not be confused with the truth's
        }
    )


def _keyed(frame: pl.DataFrame, column: str = "true_incremental") -> dict[tuple[int, str], float]:
    return {(r["member_id"], r["offer_id"]): r[column] for r in frame.iter_rows(named=True)}


def _picked(frame: pl.DataFrame) -> list[tuple[int, str]]:
    return sorted(zip(frame["member_id"], frame["offer_id"], strict=True))


def test_true_incremental_by_hand() -> None:
    scored = true_incremental(_eligible(), _truth())
    assert _keyed(scored) == pytest.approx(TRUE)
    assert _keyed(scored, "true_uplift")[(2, "C1-01")] == pytest.approx(-0.25)
    assert _keyed(scored, "true_gain")[(1, "C1-03")] == pytest.approx(0.4)
    # the truth's value arrives beside nbo's, not over it
    assert scored["value"].to_list() == [9.0] * 6
    assert _keyed(scored, "true_value")[(1, "C1-03")] == 4.0


def test_contact_cost_is_charged_once_per_pair() -> None:
    scored = true_incremental(_eligible(), _truth(), contact_cost=0.05)
    assert _keyed(scored) == pytest.approx({k: v - 0.05 for k, v in TRUE.items()})
    assert _keyed(scored, "true_cost")[(1, "C1-01")] == pytest.approx(0.35)


def test_pairs_without_truth_are_an_error() -> None:
    stranger = _eligible().with_columns(member_id=pl.Series([1, 1, 1, 2, 2, 3]))
    with pytest.raises(ValueError, match="1 pair"):
        true_incremental(stranger, _truth())
    with pytest.raises(ValueError, match="campaign_id"):
        true_incremental(_eligible().drop("campaign_id"), _truth())


def test_top_per_list_takes_nbos_count_by_score() -> None:
    eligible = true_incremental(_eligible(), _truth())
    nbo = eligible.filter(
        pl.struct("member_id", "offer_id").is_in(
            [{"member_id": 1, "offer_id": "C1-01"}, {"member_id": 2, "offer_id": "C1-02"},
             {"member_id": 2, "offer_id": "C1-03"}]
        )
    )  # fmt: skip
    counts = offers_per_list(nbo)
    assert dict(zip(counts["member_id"], counts["offers"], strict=True)) == {1: 1, 2: 2}
    by_redeem = top_per_list(eligible, counts, "p_redeem")
    assert _picked(by_redeem) == [(1, "C1-02"), (2, "C1-01"), (2, "C1-03")]
    by_buy = top_per_list(eligible, counts, "p_buy")
    assert _picked(by_buy) == [(1, "C1-02"), (2, "C1-01"), (2, "C1-02")]
    oracle = top_per_list(eligible, counts, "true_incremental")
    assert _picked(oracle) == [(1, "C1-01"), (2, "C1-02"), (2, "C1-03")]
    free = positive_per_list(eligible, slots=2)
    assert _picked(free) == [(1, "C1-01"), (1, "C1-03"), (2, "C1-02")]
    assert _picked(positive_per_list(eligible, slots=1)) == [(1, "C1-01"), (2, "C1-02")]

    summary = method_summary(
        {NBO: nbo, REDEEM: by_redeem, BUY: by_buy, ORACLE: oracle, ORACLE_FREE: free}
    )
    true = dict(zip(summary["method"], summary["true"], strict=True))
    assert true == pytest.approx(
        {NBO: 0.4, REDEEM: -1.15, BUY: -0.65, ORACLE: 0.4, ORACLE_FREE: 0.8}
    )
    row = summary.row(0, named=True)
    assert (row["decisions"], row["lists"]) == (3, 2)
    assert row["expected"] == pytest.approx(0.35 + 0.25 + 0.0)
    assert row["true_gain"] == pytest.approx(0.6 + 0.4 + 0.0)
    assert row["true_cost"] == pytest.approx(0.3 + 0.1 + 0.2)
    assert row["redemptions"] == pytest.approx(0.3 + 0.2 + 0.1)

    figures = targets(summary)
    assert (figures.nbo, figures.oracle, figures.redeem, figures.expected) == pytest.approx(
        (0.4, 0.4, -1.15, 0.6)
    )
    assert figures.vs_oracle == pytest.approx(1.0)
    assert figures.vs_redeem == pytest.approx(1.55 / 1.15)
    assert figures.expected_over_true == pytest.approx(1.5)
    assert figures.met() == {
        "profit ≥ 0.6 × oracle": True,
        "beats p_redeem by ≥ 0.5 × |p_redeem|": True,
        "expected within ±30 % of true": False,  # 0.6 against 0.4 is +50 %
    }


def test_top_per_list_ties_short_lists_and_absent_lists() -> None:
    eligible = _eligible().with_columns(score=pl.lit(1.0))
    counts = pl.DataFrame({"campaign_id": ["C1"], "member_id": [1], "offers": [2]})
    # equal scores: the first offers by id; member 2 has no count, so gets nothing
    assert _picked(top_per_list(eligible, counts, "score")) == [(1, "C1-01"), (1, "C1-02")]
    more = counts.with_columns(offers=pl.lit(5))
    assert top_per_list(eligible, more, "score").height == 3


def test_random_per_list_is_seeded_counted_and_uniform() -> None:
    eligible = _eligible()
    counts = pl.DataFrame({"campaign_id": ["C1", "C1"], "member_id": [1, 2], "offers": [1, 2]})
    once = random_per_list(eligible, counts, seed=7)
    shuffled = random_per_list(eligible.reverse(), counts, seed=7)
    assert _picked(once) == _picked(shuffled)
    assert offers_per_list(once).sort("member_id")["offers"].to_list() == [1, 2]
    # over many seeds, member 1's single offer is each of its three about a third of the time
    hits = pl.concat(
        [random_per_list(eligible, counts, seed=s).filter(pl.col("member_id") == 1)
         for s in range(600)]
    )["offer_id"].value_counts()  # fmt: skip
    shares = dict(zip(hits["offer_id"], hits["count"] / 600, strict=True))
    assert set(shares) == set(OFFERS)
    assert all(abs(share - 1 / 3) < 0.07 for share in shares.values())


def test_targets_missed() -> None:
    short = Targets(nbo=0.5, oracle=1.0, redeem=0.4, expected=0.64)
    assert short.met() == {
        "profit ≥ 0.6 × oracle": False,  # 0.5 of the oracle
        "beats p_redeem by ≥ 0.5 × |p_redeem|": False,  # 0.1 ahead, needs 0.2
        "expected within ±30 % of true": True,  # +28 %
    }
    # a loss is never a pass, even when the oracle loses more
    losing = Targets(nbo=-1.0, oracle=-2.0, redeem=-3.0, expected=-1.0)
    assert not losing.met()["profit ≥ 0.6 × oracle"]
    assert math.isnan(losing.vs_oracle)
    assert Targets(nbo=0.3, oracle=1.0, redeem=0.0, expected=0.3).vs_redeem == math.inf


def test_targets_needs_the_three_methods() -> None:
    summary = method_summary({NBO: true_incremental(_eligible(), _truth()).head(0)})
    assert summary.row(0, named=True)["true"] == 0.0
    with pytest.raises(ValueError, match="oracle"):
        targets(summary.vstack(summary.with_columns(method=pl.lit(RANDOM))))
