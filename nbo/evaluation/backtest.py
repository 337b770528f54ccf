"""Backtests as of a date: the bundle's models against baselines, side by side in one run.

Products: target = distinct products each member bought in the ``horizon_days`` after ``as_of``
(members known at ``as_of``), also split into repeat (bought before) and new-to-member products.
Offers: campaigns starting on/after ``as_of``, every coupon × every audience member. Visits:
baskets in the 28 days after ``as_of`` against a naive "same as the previous 28 days".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from nbo.data.io import ClubData
from nbo.evaluation.metrics import (
    per_member_ranking,
    ranking_metrics,
    ratio_interval,
)
from nbo.evaluation.model_metrics import (
    naive_purchase_share,
    offer_metrics,
    purchase_metrics,
    scored_offer_pairs,
    uplift_metrics,
    visit_evaluation,
    visit_metrics,
)
from nbo.features.history import History
from nbo.features.purchases import member_item_stats, purchases_between
from nbo.models.cf import CollaborativeFilter
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
