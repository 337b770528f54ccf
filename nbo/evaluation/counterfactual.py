"""Decisions scored against known counterfactuals: what they truly changed, in money.

A club generated with ``nbo data synth --counterfactuals`` comes with its truth
(:func:`nbo.data.synth.read_truth`): for every (campaign, offer, member) of an audience, the
probability to buy the offer's products with and without the offer, to redeem it, the club's
margin on a purchase (``value``) and what a redemption costs it (``coupon_cost``). Sending offer
o to member m is then worth, in expectation::

    true_uplift      = p_buy_treated − p_buy_control
    true_gain        = true_uplift × true_value
    true_cost        = p_redeem_treated × coupon_cost + contact_cost
    true_incremental = true_gain − true_cost

nbo's own estimate of the same quantity, ``incremental_value = uplift × value − (p_redeem × cost
+ contact_cost)``, has the same form with the models' estimates in place of the truth, so the
two sums over a set of decisions compare directly. Both are exact expectations: given the
decisions there is no sampling noise.

The comparison methods choose among the rows the engine found eligible (``plan_static`` then
``with_contacts``: the candidates that pass every rule), for each list — a member's offers of
one decision run, here one campaign — as many offers as nbo gave that list
(:func:`top_per_list`), so totals compare like with like: ranking by a score (``p_redeem``,
``p_buy``), a seeded random draw (:func:`random_per_list`), and the oracle (ranking by
``true_incremental``). :func:`positive_per_list` is the oracle without that count: every offer
that truly pays, up to the slots. The engine's list rules (one offer per category, slots kept
for new products, the member's cost cap) bind nbo only, so the comparison leans their way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl

__all__ = [
    "BUY",
    "LIST_KEYS",
    "NBO",
    "ORACLE",
    "ORACLE_FREE",
    "RANDOM",
    "REDEEM",
    "TRUTH_KEYS",
    "Targets",
    "method_summary",
    "offers_per_list",
    "positive_per_list",
    "random_per_list",
    "targets",
    "top_per_list",
    "true_incremental",
]

LIST_KEYS = ["campaign_id", "member_id"]
TRUTH_KEYS = ["campaign_id", "offer_id", "member_id"]

NBO = "nbo"
REDEEM = "p_redeem"
BUY = "p_buy"
RANDOM = "random"
ORACLE = "oracle"
ORACLE_FREE = "oracle, free"

_TRUTH_COLUMNS = ("response_type", "p_buy_control", "p_buy_treated", "p_redeem_treated")


def true_incremental(
    pairs: pl.DataFrame, truth: pl.DataFrame, *, contact_cost: float = 0.0
) -> pl.DataFrame:
    """``pairs`` with their truth and true_uplift, true_gain, true_cost, true_incremental.

    ``pairs`` needs campaign_id, offer_id and member_id; ``truth`` is ``read_truth``'s frame
    (its ``value`` arrives as ``true_value``). ``contact_cost`` is charged once per pair, as
    the engine charges it in ``expected_cost``. Raises ``ValueError`` if a pair has no truth
    (not an audience pair of the club's campaigns).
    """
    missing = [c for c in TRUTH_KEYS if c not in pairs.columns]
    if missing:
        raise ValueError(f"pairs lack column(s) {missing}")
    facts = truth.select(
        *TRUTH_KEYS, *_TRUTH_COLUMNS, pl.col("value").alias("true_value"), "coupon_cost"
    )
    joined = pairs.join(facts, on=TRUTH_KEYS, how="left", validate="m:1")
    unknown = joined.filter(pl.col("p_buy_control").is_null())
    if unknown.height:
        first = unknown.select(TRUTH_KEYS).row(0, named=True)
        raise ValueError(
            f"{unknown.height} pair(s) have no truth, e.g. {first}: score only audience pairs "
            "of a club generated with counterfactuals"
        )
    return (
        joined.with_columns(
            true_uplift=pl.col("p_buy_treated") - pl.col("p_buy_control"),
            true_cost=pl.col("p_redeem_treated") * pl.col("coupon_cost") + contact_cost,
        )
        .with_columns(true_gain=pl.col("true_uplift") * pl.col("true_value"))
        .with_columns(true_incremental=pl.col("true_gain") - pl.col("true_cost"))
    )


def offers_per_list(decisions: pl.DataFrame) -> pl.DataFrame:
    """campaign_id, member_id, offers: how many offers each list of ``decisions`` holds."""
    return decisions.group_by(LIST_KEYS).agg(offers=pl.len().cast(pl.Int64))


def top_per_list(eligible: pl.DataFrame, counts: pl.DataFrame, score: str) -> pl.DataFrame:
    """Each list's ``counts.offers`` eligible rows with the highest ``score`` (ties: offer_id).

    Lists missing from ``counts`` get nothing; a list with fewer eligible rows gets them all.
    """
    take = counts.select(*LIST_KEYS, _take=pl.col("offers"))
    return (
        eligible.join(take, on=LIST_KEYS, how="inner")
        .sort([*LIST_KEYS, score, "offer_id"], descending=[False, False, True, False],
              nulls_last=True)
        .filter(pl.int_range(pl.len()).over(LIST_KEYS) < pl.col("_take"))
        .drop("_take")
    )  # fmt: skip


def random_per_list(eligible: pl.DataFrame, counts: pl.DataFrame, *, seed: int) -> pl.DataFrame:
    """:func:`top_per_list` by a uniform draw: ``counts.offers`` random eligible rows per list.

    The draw follows the rows sorted by list and offer, so the same ``seed`` gives the same
    choice whatever the input order.
    """
    ordered = eligible.sort([*LIST_KEYS, "offer_id"])
    draw = np.random.default_rng(seed).random(ordered.height)
    return top_per_list(ordered.with_columns(_draw=pl.Series(draw)), counts, "_draw").drop("_draw")


def positive_per_list(
    eligible: pl.DataFrame, slots: int, score: str = "true_incremental"
) -> pl.DataFrame:
    """Per list, the rows with a positive ``score``, best first, at most ``slots`` of them."""
    return (
        eligible.filter(pl.col(score) > 0)
        .sort([*LIST_KEYS, score, "offer_id"], descending=[False, False, True, False])
        .filter(pl.int_range(pl.len()).over(LIST_KEYS) < slots)
    )


def method_summary(chosen: Mapping[str, pl.DataFrame]) -> pl.DataFrame:
    """One row per method of ``chosen`` (name → its rows through :func:`true_incremental`).

    Columns: method, decisions, lists, expected (Σ incremental_value, nbo's estimate), true
    (Σ true_incremental), true_gain, true_cost, redemptions (Σ p_redeem_treated).
    """
    rows = [
        frame.select(
            method=pl.lit(name),
            decisions=pl.len().cast(pl.Int64),
            lists=pl.struct(LIST_KEYS).n_unique().cast(pl.Int64),
            expected=pl.col("incremental_value").sum(),
            true=pl.col("true_incremental").sum(),
            true_gain=pl.col("true_gain").sum(),
            true_cost=pl.col("true_cost").sum(),
            redemptions=pl.col("p_redeem_treated").sum(),
        )
        for name, frame in chosen.items()
    ]
    return pl.concat(rows)


@dataclass(frozen=True)
class Targets:
    """nbo's true incremental profit against the oracle, ranking by p_redeem and itself."""

    nbo: float  # Σ true_incremental of nbo's decisions
    oracle: float  # the same for the oracle at nbo's counts
    redeem: float  # the same for ranking by p_redeem at nbo's counts
    expected: float  # Σ incremental_value of nbo's decisions (what a campaign summary reports)

    @property
    def vs_oracle(self) -> float:
        """nbo / oracle (NaN when the oracle gains nothing)."""
        return self.nbo / self.oracle if self.oracle > 0 else float("nan")

    @property
    def vs_redeem(self) -> float:
        """(nbo − redeem) / |redeem| (±inf when ranking by p_redeem is exactly 0)."""
        gap = self.nbo - self.redeem
        return gap / abs(self.redeem) if self.redeem else float(np.copysign(np.inf, gap))

    @property
    def expected_over_true(self) -> float:
        """nbo's expected / true incremental profit (NaN when the truth is 0)."""
        return self.expected / self.nbo if self.nbo else float("nan")

    def met(self) -> dict[str, bool]:
        """Each target: profit positive and ≥ 0.6 × the oracle's; nbo − redeem ≥ 0.5 × |redeem|;
        expected within ±30 % of the truth."""
        return {
            "profit ≥ 0.6 × oracle": self.nbo > 0 and self.nbo >= 0.6 * self.oracle,
            "beats p_redeem by ≥ 0.5 × |p_redeem|": self.nbo - self.redeem
            >= 0.5 * abs(self.redeem),
            "expected within ±30 % of true": abs(self.expected - self.nbo) <= 0.3 * abs(self.nbo),
        }


def targets(summary: pl.DataFrame) -> Targets:
    """The figures of :class:`Targets` from a :func:`method_summary` with nbo, oracle, p_redeem."""
    by_method = {row["method"]: row for row in summary.iter_rows(named=True)}
    missing = [m for m in (NBO, ORACLE, REDEEM) if m not in by_method]
    if missing:
        raise ValueError(f"the summary lacks method(s) {missing}")
    return Targets(
        nbo=float(by_method[NBO]["true"]),
        oracle=float(by_method[ORACLE]["true"]),
        redeem=float(by_method[REDEEM]["true"]),
        expected=float(by_method[NBO]["expected"]),
    )
