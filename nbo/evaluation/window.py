"""Several bundles on one evaluation window: the same members, pairs and truth for each.

The promotion gate compares a candidate with the champion on numbers from this function only:
both are scored as of the window's start ``start`` on what happened in ``[start, start +
days)``: products bought (recall@10, NDCG@10 over the members who bought), offers of the
campaigns starting in the window (AUC, hit-rate@3) and visits (MAE). The truth, the sampled
members and the offer pairs are computed once and shared, so the numbers differ only by model.
A bundle trained as of a later date than ``start`` has seen the window and is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import polars as pl

from nbo.data.io import ClubData
from nbo.errors import EvaluationError
from nbo.evaluation.backtest import K, offer_metrics, product_metrics, sampled_truth, visit_metrics
from nbo.features.history import History
from nbo.models.response import offer_pairs
from nbo.tracking.bundle import Bundle

__all__ = ["evaluate_window"]


def _window_pairs(club: ClubData, start: datetime, days: int) -> pl.DataFrame:
    """Audience × offers of the campaigns starting in ``[start, start + days)``, labelled."""
    end = (start + timedelta(days=days)).date()
    starting = club.campaigns.filter(pl.col("start_date") < end).select("campaign_id").collect()
    return offer_pairs(club, start).join(starting, on="campaign_id", how="semi")


def evaluate_window(
    bundles: Mapping[str, Bundle],
    club: ClubData,
    start: datetime,
    days: int,
    *,
    max_members: int | None = None,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Each bundle's metrics on ``[start, start + days)``, by the names of ``bundles``.

    Keys per bundle: ``recall_at_10``, ``ndcg_at_10`` (NaN when nobody bought in the window),
    ``members``, ``offer_auc``, ``offer_hit_rate_at_3``, ``offer_pairs`` (NaN without
    campaigns starting in it), ``visit_mae`` and ``visit_mae_naive``. ``max_members`` samples
    the buying members (the same sample for every bundle, from ``seed``).
    """
    for name, bundle in bundles.items():
        if bundle.as_of > start:
            raise EvaluationError(
                f"{name} was trained as of {bundle.as_of:%Y-%m-%d}, after the window's start "
                f"{start:%Y-%m-%d}: it has seen the window it would be evaluated on"
            )
    history = History(club, start)
    truth, members, prior = sampled_truth(history, days, max_members=max_members, seed=seed)
    pairs = _window_pairs(club, start, days)
    keys = pairs.select("member_id", "offer_id")
    out: dict[str, dict[str, float]] = {}
    for name, bundle in bundles.items():
        metrics: dict[str, float] = {"recall_at_10": float("nan"), "ndcg_at_10": float("nan")}
        if len(members):
            recs = bundle.affinity.recommend(history, members, k=K)
            found = product_metrics(recs, truth, prior)
            metrics = {key: found[key] for key in ("recall_at_10", "ndcg_at_10")}
        metrics["members"] = float(len(members))
        scored = pairs.with_columns(score=pl.lit(None, dtype=pl.Float64))
        if pairs.height:
            scored = pairs.with_columns(
                score=bundle.response.predict_proba(history, keys)["p_redeem"]
            )
        metrics |= offer_metrics(scored)
        visits = visit_metrics(bundle, history, days)
        metrics |= {key: visits[key] for key in ("visit_mae", "visit_mae_naive")}
        out[name] = metrics
    return out
