"""The holdout metrics of the pair models and the visit forecasts, for the backtest.

Offers: ``p_redeem`` on the campaigns starting on/after ``as_of`` (every coupon × every
audience member); purchase propensity against a naive "weeks with a purchase" share; uplift's
Qini and AUUC on held-out randomized pairs; visits against the naive previous window and
BG/NBD (:mod:`nbo.evaluation.visit_scores`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl

from nbo.data.io import ClubData
from nbo.evaluation.metrics import auc, hit_rate_at_k, mae, ratio_interval
from nbo.evaluation.uplift import auuc, calibration_error, qini_coefficient
from nbo.evaluation.visit_scores import timing_evaluation
from nbo.features.history import History
from nbo.models.purchase import purchase_labels, untreated_pairs
from nbo.models.response import offer_pairs
from nbo.models.uplift import randomized_pairs
from nbo.tracking.bundle import Bundle

__all__ = [
    "MAX_OFFER_PAIRS",
    "NAIVE_WEEKS",
    "naive_purchase_share",
    "offer_metrics",
    "purchase_metrics",
    "scored_offer_pairs",
    "uplift_metrics",
    "visit_evaluation",
    "visit_metrics",
]

NAIVE_WEEKS = 8  # the naive p_buy: share of the last 8 weeks with a purchase of the products
MAX_OFFER_PAIRS = 50_000  # holdout pairs sampled for p_buy and uplift


def scored_offer_pairs(bundle: Bundle, club: ClubData, history: History) -> pl.DataFrame:
    """Holdout offer pairs (campaigns starting on/after as_of) with label and model score."""
    pairs = offer_pairs(club, history.as_of)
    if pairs.height == 0:
        return pairs.with_columns(score=pl.lit(None, dtype=pl.Float64))
    scored = bundle.response.predict_proba(history, pairs.select("member_id", "offer_id"))
    return pairs.with_columns(score=scored["p_redeem"])


def offer_metrics(scored: pl.DataFrame) -> dict[str, float]:
    """Offer AUC and hit-rate@3 (NaN when there are no holdout campaigns)."""
    if scored.height == 0:
        return {"offer_auc": float("nan"), "offer_hit_rate_at_3": float("nan"), "offer_pairs": 0.0}
    return {
        "offer_auc": auc(scored["label"], scored["score"]),
        "offer_hit_rate_at_3": hit_rate_at_k(scored, 3),
        "offer_pairs": float(scored.height),
    }


def naive_purchase_share(history: History, pairs: pl.DataFrame) -> pl.Series:
    """Share of the last :data:`NAIVE_WEEKS` weeks before ``as_of`` in which the member bought
    any of the offer's products, per row of ``pairs`` (member_id, offer_id)."""
    start = history.as_of - timedelta(weeks=NAIVE_WEEKS)
    weeks = (
        history.transactions.filter(pl.col("ts") >= start)
        .join(pairs.lazy().select("member_id").unique(), on="member_id", how="semi")
        .join(history.club.offer_products.select("offer_id", "product_id"), on="product_id")
        .group_by("member_id", "offer_id")
        .agg(((pl.col("ts") - start).dt.total_days() // 7).n_unique().alias("weeks"))
        .collect()
    )
    share = pairs.select("member_id", "offer_id").join(
        weeks, on=["member_id", "offer_id"], how="left", maintain_order="left"
    )
    return (share["weeks"].fill_null(0) / NAIVE_WEEKS).alias("naive")


def purchase_metrics(bundle: Bundle, club: ClubData, history: History) -> dict[str, float]:
    """p_buy on the untreated pairs of the holdout campaigns: AUC and calibration error of
    the model and of :func:`naive_purchase_share`, mean p_buy and the observed rate."""
    campaigns = club.campaigns.filter(pl.col("start_date") >= history.as_of_date).collect()
    pairs = untreated_pairs(club, campaigns, members_at=history.as_of, max_pairs=MAX_OFFER_PAIRS)
    labelled = purchase_labels(pairs, club.transactions, club)
    if labelled.height == 0:
        return {"pbuy_pairs": 0.0}
    label = labelled["label"].to_numpy()
    p_buy = bundle.purchase.predict_proba(history, labelled)["p_buy"].to_numpy()
    naive = naive_purchase_share(history, labelled).to_numpy()
    return {
        "pbuy_auc": auc(label, p_buy),
        "pbuy_auc_naive": auc(label, naive),
        "pbuy_ece": calibration_error(p_buy, label),
        "pbuy_ece_naive": calibration_error(naive, label),
        "pbuy_mean": float(p_buy.mean()),
        "pbuy_rate": float(label.mean()),
        "pbuy_pairs": float(labelled.height),
    }


def uplift_metrics(
    bundle: Bundle, club: ClubData, history: History, exposure: pl.DataFrame | None = None
) -> dict[str, float]:
    """Qini coefficient and AUUC of the bundle's uplift on the holdout's randomized campaigns.

    ``uplift_measured`` says whether the model measured uplift (1) or assumed it (0); the
    curves need treated and control members, so they are absent without randomized exposure.
    ``exposure``: the service's randomized exposure (``nbo.history.exposure``); its rows decided
    at or after ``as_of`` are held-out randomized data too.
    """
    out = {"uplift_measured": float(bundle.uplift.measured_)}
    campaigns = club.campaigns.filter(pl.col("start_date") >= history.as_of_date).collect()
    if exposure is not None:
        exposure = exposure.filter(pl.col("decided_at") >= history.as_of)
    pairs = randomized_pairs(club, campaigns, exposure)
    if pairs.height > MAX_OFFER_PAIRS:
        pairs = pairs.sample(MAX_OFFER_PAIRS, seed=0)
    if pairs.height == 0:
        return out
    labelled = purchase_labels(pairs, club.transactions, club)
    keys = labelled.select("member_id", "offer_id")
    scored = keys.with_columns(
        p_redeem=bundle.response.predict_proba(history, keys)["p_redeem"],
        p_buy=bundle.purchase.predict_proba(history, keys)["p_buy"],
    )
    uplift = bundle.uplift.predict(history, scored)["uplift"].to_numpy()
    treated, label = labelled["treated"].to_numpy(), labelled["label"].to_numpy()
    return out | {
        "uplift_qini": qini_coefficient(uplift, treated, label),
        "uplift_auuc": auuc(uplift, treated, label),
        "uplift_pairs": float(labelled.height),
    }


def visit_metrics(bundle: Bundle, history: History, days: int = 28) -> dict[str, float]:
    """:func:`visit_evaluation`'s metrics alone."""
    return visit_evaluation(bundle, history, days)[0]


def visit_evaluation(
    bundle: Bundle, history: History, days: int = 28
) -> tuple[dict[str, float], pl.DataFrame]:
    """Visit MAE of the timing model and of the naive previous-window forecast; its proper
    scores beside BG/NBD's, and both ``p_visit`` reliability curves
    (:func:`~nbo.evaluation.visit_scores.timing_evaluation`)."""
    members = history.members.select("member_id")

    def window(start: datetime) -> pl.LazyFrame:
        lines = history.club.transactions.filter(
            (pl.col("ts") >= start) & (pl.col("ts") < start + timedelta(days=days))
        )
        return lines.group_by("member_id").agg(pl.col("basket_id").n_unique().alias("visits"))

    frame = (
        members.join(window(history.as_of), on="member_id", how="left")
        .join(
            window(history.as_of - timedelta(days=days)).rename({"visits": "naive"}),
            on="member_id",
            how="left",
        )
        .fill_null(0)
        .collect()
    )
    # likely_visits is the median forecast: the point forecast that minimises absolute error
    forecast = bundle.timing.predict(history, horizon_days=days).select(
        "member_id", "expected_visits", "likely_visits"
    )
    # sorted: the bootstrap's draws then fall on the same members in every run
    frame = frame.join(forecast, on="member_id", how="left").fill_null(0).sort("member_id")
    model = mae(frame["visits"], frame["likely_visits"])
    naive = mae(frame["visits"], frame["naive"])
    visits, likely, previous = (
        frame[c].cast(pl.Float64).to_numpy() for c in ("visits", "likely_visits", "naive")
    )  # as floats: the counts are unsigned
    low, high = ratio_interval(np.abs(visits - likely), np.abs(visits - previous))
    scores, curves = timing_evaluation(bundle.timing, history, days)
    return {
        "visit_mae": model,
        "visit_mae_mean_forecast": mae(frame["visits"], frame["expected_visits"]),
        "visit_mae_naive": naive,
        "visit_mae_ratio": model / naive if naive else float("nan"),
        "visit_mae_ratio_low": low,
        "visit_mae_ratio_high": high,
    } | scores, curves
