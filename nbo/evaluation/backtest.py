"""Backtests as of a date: the bundle's models against baselines, side by side in one run.

Products: target = distinct products each member bought in the ``horizon_days`` after ``as_of``
(members known at ``as_of``), also split into repeat (bought before) and new-to-member products.
Offers: campaigns starting on/after ``as_of``, every coupon × every audience member. Visits:
baskets in the 28 days after ``as_of`` against a naive "same as the previous 28 days".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from nbo.data.io import ClubData
from nbo.evaluation.metrics import (
    auc,
    hit_rate_at_k,
    mae,
    per_member_ranking,
    ranking_metrics,
    ratio_interval,
)
from nbo.evaluation.uplift import auuc, calibration_error, qini_coefficient
from nbo.evaluation.visit_scores import timing_evaluation
from nbo.features.history import History
from nbo.features.purchases import member_item_stats, purchases_between
from nbo.models.cf import CollaborativeFilter
from nbo.models.purchase import purchase_labels, untreated_pairs
from nbo.models.response import offer_pairs
from nbo.models.uplift import randomized_pairs
from nbo.tracking.bundle import Bundle

__all__ = [
    "Evaluation",
    "baseline_recommendations",
    "evaluate_bundle",
    "naive_purchase_share",
    "offer_metrics",
    "product_metrics",
    "product_truth",
    "purchase_metrics",
    "ratios_to_baseline",
    "sampled_truth",
    "scored_offer_pairs",
    "uplift_metrics",
    "visit_evaluation",
    "visit_metrics",
]

K = 10
NAIVE_WEEKS = 8  # the naive p_buy: share of the last 8 weeks with a purchase of the products
MAX_OFFER_PAIRS = 50_000  # holdout pairs sampled for p_buy and uplift


def product_truth(history: History, days: int = 14) -> pl.DataFrame:
    """Distinct (member, product) bought in [as_of, as_of + days), for members known at as_of."""
    return (
        purchases_between(history.club.transactions, history.as_of, days)
        .join(history.members.select("member_id"), on="member_id", how="semi")
        .collect()
    )


def product_metrics(
    recs: pl.DataFrame, truth: pl.DataFrame, prior: pl.DataFrame
) -> dict[str, float]:
    """recall@10 and NDCG@10 overall, and recall@10 on repeat and on new-to-member products."""
    flagged = truth.join(
        prior.with_columns(_prior=pl.lit(True)), on=["member_id", "product_id"], how="left"
    )
    repeat = flagged.filter(pl.col("_prior").is_not_null()).drop("_prior")
    new = flagged.filter(pl.col("_prior").is_null()).drop("_prior")
    overall = ranking_metrics(recs, truth, K)
    return {
        "recall_at_10": overall[f"recall@{K}"],
        "ndcg_at_10": overall[f"ndcg@{K}"],
        "recall_at_10_repeat": ranking_metrics(recs, repeat, K)[f"recall@{K}"],
        "recall_at_10_new": ranking_metrics(recs, new, K)[f"recall@{K}"],
        "members": overall["members"],
    }


def ratios_to_baseline(
    methods: dict[str, pl.DataFrame], truth: pl.DataFrame, baseline: str = "P-TopFreq"
) -> dict[str, dict[str, float]]:
    """Each method's recall@10 and NDCG@10 as a ratio to ``baseline``'s, with 95 % intervals.

    The intervals are a paired bootstrap over the holdout members (:func:`ratio_interval`): the
    spread of the ratio from which members happen to be in the holdout.
    """
    base = per_member_ranking(methods[baseline], truth, K)
    out: dict[str, dict[str, float]] = {}
    for name, recs in methods.items():
        ours = per_member_ranking(recs, truth, K)
        row: dict[str, float] = {}
        for metric in ("recall", "ndcg"):
            num, den = ours[metric].to_numpy(), base[metric].to_numpy()
            total = den.sum()
            row[f"{metric}_ratio"] = float(num.sum() / total) if total else float("nan")
            row[f"{metric}_ratio_low"], row[f"{metric}_ratio_high"] = ratio_interval(num, den)
        out[name] = row
    return out


def _ranked(frame: pl.DataFrame, *by: str) -> pl.DataFrame:
    return (
        frame.sort(  # product_id last: ties must not be broken by chance
            ["member_id", *by, "product_id"], descending=[False] + [True] * len(by) + [False]
        )
        .with_columns(rank=pl.int_range(1, pl.len() + 1, dtype=pl.Int32).over("member_id"))
        .filter(pl.col("rank") <= K)
    )


def baseline_recommendations(
    history: History, members: np.ndarray, *, seed: int = 0
) -> dict[str, pl.DataFrame]:
    """G-TopFreq, P-TopFreq (padded with G-TopFreq), ALS alone and random, top-10 each."""
    stats = member_item_stats(history.transactions, history.as_of).collect()
    keys = pl.DataFrame({"member_id": members}, schema={"member_id": pl.Int64})
    popular = (
        stats.group_by("product_id")
        .agg(pl.col("n_baskets").sum().alias("baskets"))
        .sort("baskets", "product_id", descending=[True, False])
        .head(K)
        .with_columns(rank=pl.int_range(1, pl.len() + 1, dtype=pl.Int32))
    )
    g_top = keys.join(popular.select("product_id", "rank"), how="cross")
    own = _ranked(stats.join(keys, on="member_id", how="semi"), "n_baskets", "last_ts")
    padded = pl.concat(
        [
            own.select("member_id", "product_id", pl.col("rank").cast(pl.Int32)),
            g_top.with_columns(pl.col("rank") + K),
        ]
    ).unique(["member_id", "product_id"], keep="first")
    p_top = _ranked(padded.with_columns(-pl.col("rank").alias("neg")), "neg").drop("neg")
    cf = CollaborativeFilter(random_state=seed).fit(
        stats.select("member_id", "product_id", "decayed_56d")
    )
    als = cf.recommend(members, K, source="als", new_only=False)
    rng = np.random.default_rng(seed)
    catalogue = stats["product_id"].unique().sort().to_numpy()
    random = pl.DataFrame(
        {
            "member_id": np.repeat(members, K),
            "product_id": rng.choice(catalogue, size=len(members) * K),
            "rank": np.tile(np.arange(1, K + 1, dtype=np.int32), len(members)),
        }
    )
    return {"G-TopFreq": g_top, "P-TopFreq": p_top, "ALS": als, "random": random}


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


def sampled_truth(
    history: History, days: int, *, max_members: int | None = None, seed: int = 0
) -> tuple[pl.DataFrame, np.ndarray, pl.DataFrame]:
    """(truth, members, prior) of the ``days`` after ``history.as_of``: what the buying members
    bought (at most ``max_members`` of them, sampled from ``seed``), those members sorted, and
    the (member, product) pairs each had bought before."""
    truth = product_truth(history, days)
    members = truth["member_id"].unique().sort().to_numpy()
    if max_members is not None and len(members) > max_members:
        members = np.sort(np.random.default_rng(seed).choice(members, max_members, replace=False))
        truth = truth.filter(pl.col("member_id").is_in(members.tolist()))
    prior = (
        member_item_stats(
            history.transactions.filter(pl.col("member_id").is_in(members.tolist())), history.as_of
        )
        .select("member_id", "product_id")
        .collect()
    )
    return truth, members, prior


@dataclass
class Evaluation:
    """Holdout results: flat metrics for MLflow, product metrics per method, and the frames."""

    metrics: dict[str, float]
    table: dict[str, dict[str, float]]
    recommendations: dict[str, pl.DataFrame]
    truth: pl.DataFrame
    offers: pl.DataFrame
    visit_reliability: pl.DataFrame | None = None  # p_visit per decile: nbo's and BG/NBD's


def evaluate_bundle(
    bundle: Bundle,
    club: ClubData,
    *,
    baselines: bool = False,
    max_members: int | None = None,
    seed: int = 0,
    exposure: pl.DataFrame | None = None,
) -> Evaluation:
    """Holdout metrics of ``bundle`` as of its ``as_of`` (and the baselines' if asked);
    ``exposure`` as in :func:`uplift_metrics`."""
    history = History(club, bundle.as_of)
    truth, members, prior = sampled_truth(
        history, bundle.affinity.horizon_days, max_members=max_members, seed=seed
    )
    methods = {"nbo": bundle.affinity.recommend(history, members, k=K)}
    if baselines:
        methods |= baseline_recommendations(history, members, seed=seed)
    table = {name: product_metrics(recs, truth, prior) for name, recs in methods.items()}
    if baselines:
        for name, ratios in ratios_to_baseline(methods, truth).items():
            table[name] |= ratios
    offers = scored_offer_pairs(bundle, club, history)
    flat = {f"holdout_{k}": v for k, v in table["nbo"].items()}
    flat |= {f"holdout_{k}": v for k, v in offer_metrics(offers).items()}
    visits, curves = visit_evaluation(bundle, history)
    flat |= {f"holdout_{k}": v for k, v in visits.items()}
    flat |= {f"holdout_{k}": v for k, v in purchase_metrics(bundle, club, history).items()}
    uplift = uplift_metrics(bundle, club, history, exposure)
    flat |= {f"holdout_{k}": v for k, v in uplift.items()}
    return Evaluation(flat, table, methods, truth, offers, curves)
