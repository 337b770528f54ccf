"""Off-policy evaluation of a candidate policy on the logged decisions (``nbo experiment
evaluate-policy``), before it is launched.

A thin composition: the logged decisions and their outcomes (:func:`logged_outcomes`: a
redemption event in the offer's window; a purchase of its products from the receipts) → the
candidate's decisions for the same (day, channel) and members, with the contact history as it
was before that day (:func:`redecide`, nothing recorded) → the estimators of
:mod:`nbo.evaluation.ope` per reward (:func:`evaluate_policy`). Reading the history and the
policy, and logging to MLflow, happen in the CLI.

Contexts are (member, day, channel). The incremental-value reward of a logged decision is
``(bought - p_buy) * value - redeemed * cost``: with ``p_buy`` calibrated its expectation is the
decision's ``uplift * value - p_redeem * cost``. Decisions logged before these columns existed
(null ``p_buy``, ``value`` or ``cost``) count for redemptions only, and so does every other
decision of their context.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from nbo.data.io import ClubData
from nbo.decisioning.policy import Policy
from nbo.decisioning.prepare import ContactHistory
from nbo.errors import EvaluationError
from nbo.evaluation.ope import LoggedBandit, OpeEstimate, TargetChoices, estimate_all
from nbo.pipelines.decide import decide_batch
from nbo.tracking.bundle import Bundle

__all__ = [
    "CONTEXT",
    "PolicyEvaluation",
    "evaluate_policy",
    "logged_outcomes",
    "redecide",
]

CONTEXT = ("member_id", "day", "channel")
VALUE_COLUMNS = ("p_buy", "value", "cost")
TARGET_COLUMNS = (*CONTEXT, "offer_id", "propensity", "p_redeem", "incremental_value")


@dataclass(frozen=True)
class PolicyEvaluation:
    """Estimates of the candidate's redemptions and incremental value per context."""

    redemptions: dict[str, OpeEstimate]
    incremental_value: dict[str, OpeEstimate] | None
    logged_redemptions: float
    """What the logged policy got per context (the observed reference)."""
    logged_incremental_value: float | None
    contexts: int
    decisions: int
    decisions_without_value: int
    """Logged decisions without p_buy/value/cost (counted for redemptions only)."""


def logged_outcomes(
    logged: pl.DataFrame, redemptions: pl.DataFrame, club: ClubData
) -> pl.DataFrame:
    """The logged decisions with ``day``, ``redeemed``, ``bought`` and ``incremental_reward``.

    The offer's window runs from the decision to the end of its campaign (open when the club
    does not know the campaign). ``incremental_reward`` is null where the decision lacks
    ``p_buy``, ``value`` or ``cost``.
    """
    ends = club.offers.join(club.campaigns, on="campaign_id", how="left").select(
        "offer_id", window_end=pl.col("end_date").cast(pl.Datetime("us")) + timedelta(1)
    )
    decided = (
        logged.lazy()
        .with_columns(day=pl.col("decided_at").dt.date())
        .join(ends, on="offer_id", how="left")
    )
    in_window = (pl.col("ts") >= pl.col("decided_at")) & (
        pl.col("window_end").is_null() | (pl.col("ts") < pl.col("window_end"))
    )
    redeemed = (
        decided.select("decision_id", "member_id", "offer_id", "decided_at", "window_end")
        .join(
            redemptions.lazy().select("member_id", "offer_id", "ts"), on=["member_id", "offer_id"]
        )
        .filter(in_window)
        .select("decision_id", redeemed=pl.lit(1.0))
        .unique("decision_id")
    )
    members = logged["member_id"].unique().implode()
    bought = (
        decided.select("decision_id", "member_id", "offer_id", "decided_at", "window_end")
        .join(club.offer_products.select("offer_id", "product_id"), on="offer_id")
        .join(
            club.transactions.filter(pl.col("member_id").is_in(members)).select(
                "member_id", "product_id", "ts"
            ),
            on=["member_id", "product_id"],
        )
        .filter(in_window)
        .select("decision_id", bought=pl.lit(1.0))
        .unique("decision_id")
    )
    return (
        decided.join(redeemed, on="decision_id", how="left")
        .join(bought, on="decision_id", how="left")
        .with_columns(pl.col("redeemed", "bought").fill_null(0.0))
        .with_columns(
            incremental_reward=(pl.col("bought") - pl.col("p_buy")) * pl.col("value")
            - pl.col("redeemed") * pl.col("cost")
        )
        .drop("window_end")
        .collect()
    )


def redecide(
    club: ClubData,
    bundle: Bundle,
    policy: Policy,
    logged: pl.DataFrame,
    contacts_before: Callable[[datetime], ContactHistory],
) -> pl.DataFrame:
    """The candidate's decisions for each logged (day, channel), for the logged members.

    Each day is decided at its midnight with the contact history strictly before it.
    """
    runs = (
        logged.select(day=pl.col("decided_at").dt.truncate("1d"), channel="channel")
        .unique()
        .sort("day", "channel")
    )
    decided = []
    for day, channel in runs.iter_rows():
        members = logged.filter(
            (pl.col("decided_at").dt.truncate("1d") == day) & (pl.col("channel") == channel)
        )["member_id"].unique()
        batch = decide_batch(
            club, bundle, policy, at=day, channel=channel, contacts=contacts_before(day)
        )
        chosen = batch.result.decisions.filter(pl.col("member_id").is_in(members.implode()))
        decided.append(chosen.with_columns(day=pl.lit(day.date())))
    return pl.concat(decided, how="diagonal_relaxed") if decided else pl.DataFrame()


def _bandit(outcomes: pl.DataFrame, target: pl.DataFrame, reward: str, model: str) -> LoggedBandit:
    """The estimators' arrays for one reward (``model``: the decisions' own prediction of it)."""
    keys = list(CONTEXT)
    contexts = outcomes.select(keys).unique().sort(keys).with_row_index("context")
    rows = (
        outcomes.join(contexts, on=keys)
        .join(
            target.select(*keys, "offer_id", target_p=pl.col("propensity")),
            on=[*keys, "offer_id"],
            how="left",
        )
        .with_columns(pl.col("target_p").fill_null(0.0))
    )
    choices = (
        target.join(contexts, on=keys)
        .join(
            outcomes.select(*keys, "offer_id", logging_p=pl.col("propensity")),
            on=[*keys, "offer_id"],
            how="left",
        )
        .with_columns(pl.col("logging_p").fill_null(0.0))
    )
    q_target = (
        choices.group_by("context")
        .agg(q=(pl.col("propensity") * pl.col(model)).sum())
        .join(contexts.select("context"), on="context", how="right")
        .sort("context")["q"]
        .fill_null(0.0)
    )

    def floats(column: pl.Series) -> np.ndarray:
        return column.cast(pl.Float64).to_numpy()

    return LoggedBandit(
        context=rows["context"].cast(pl.Int64).to_numpy(),
        logging_propensity=floats(rows["propensity"]),
        target_probability=floats(rows["target_p"]),
        reward=floats(rows[reward]),
        n_contexts=contexts.height,
        q_logged=floats(rows[model]),
        q_target=floats(q_target),
        choices=TargetChoices(
            context=choices["context"].cast(pl.Int64).to_numpy(),
            target_probability=floats(choices["propensity"]),
            logging_propensity=floats(choices["logging_p"]),
        ),
    )


def evaluate_policy(
    outcomes: pl.DataFrame,
    target: pl.DataFrame,
    *,
    clip: float | None = 20.0,
    n_bootstrap: int = 500,
    seed: int = 0,
) -> PolicyEvaluation:
    """IPS, SNIPS and DR estimates of the candidate (``target``: its decisions, from
    :func:`redecide`) on the logged ``outcomes`` (:func:`logged_outcomes`)."""
    if outcomes.height == 0:
        raise EvaluationError("no logged decisions to evaluate the policy on")
    keys = list(CONTEXT)
    if target.height == 0:  # the candidate offers the logged members nothing
        target = outcomes.clear().select(*TARGET_COLUMNS)
    per_context = outcomes.group_by(keys).agg(
        redeemed=pl.col("redeemed").sum(),
        incremental=pl.col("incremental_reward").sum(),
        complete=pl.col("incremental_reward").is_not_null().all(),
    )
    redemptions = estimate_all(
        _bandit(outcomes, target, "redeemed", "p_redeem"),
        clip=clip, n_bootstrap=n_bootstrap, seed=seed,
    )  # fmt: skip
    complete = per_context.filter("complete").select(keys)
    valued = outcomes.join(complete, on=keys)
    incremental = None
    if valued.height:
        incremental = estimate_all(
            _bandit(
                valued,
                target.join(complete, on=keys).with_columns(
                    pl.col("incremental_value").fill_null(0.0)
                ),
                "incremental_reward",
                "incremental_value",
            ),
            clip=clip, n_bootstrap=n_bootstrap, seed=seed,
        )  # fmt: skip
    return PolicyEvaluation(
        redemptions=redemptions,
        incremental_value=incremental,
        logged_redemptions=float(per_context.select(pl.col("redeemed").mean()).item()),
        logged_incremental_value=(
            float(per_context.filter("complete").select(pl.col("incremental").mean()).item())
            if valued.height
            else None
        ),
        contexts=per_context.height,
        decisions=outcomes.height,
        decisions_without_value=int(
            outcomes.select(pl.any_horizontal(pl.col(VALUE_COLUMNS).is_null()).sum()).item()
        ),
    )
