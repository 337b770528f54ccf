"""Offline metrics shared by the backtest, the training pipeline and the model tests."""

from __future__ import annotations

import numpy as np
import polars as pl
from sklearn.metrics import roc_auc_score

__all__ = ["auc", "hit_rate_at_k", "mae", "ranking_metrics"]


def ranking_metrics(recs: pl.DataFrame, truth: pl.DataFrame, k: int = 10) -> dict[str, float]:
    """Mean recall@k and NDCG@k over the members in ``truth``.

    ``recs``: member_id, product_id, rank (1 = best). ``truth``: member_id, product_id, the distinct
    products each member bought in the target window. Members with no recommendation count as
    zero; recall is hits / |truth| (so a member who buys 30 products caps at 10/30).
    """
    top = recs.filter(pl.col("rank") <= k).select("member_id", "product_id", "rank")
    hits = truth.join(top, on=["member_id", "product_id"], how="left")
    per_member = hits.group_by("member_id").agg(
        pl.col("rank").is_not_null().sum().alias("hits"),
        pl.len().alias("n_truth"),
        (1.0 / (pl.col("rank").cast(pl.Float64) + 1.0).log(2)).fill_null(0.0).sum().alias("dcg"),
    )
    if per_member.height == 0:
        return {f"recall@{k}": 0.0, f"ndcg@{k}": 0.0, "members": 0.0}
    ideal = np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))  # best DCG for 1..k relevant items
    n_truth = per_member["n_truth"].to_numpy()
    idcg = ideal[np.minimum(n_truth, k) - 1]
    return {
        f"recall@{k}": float(np.mean(per_member["hits"].to_numpy() / n_truth)),
        f"ndcg@{k}": float(np.mean(per_member["dcg"].to_numpy() / idcg)),
        "members": float(per_member.height),
    }


def auc(y_true: np.ndarray | pl.Series, score: np.ndarray | pl.Series) -> float:
    """ROC AUC; NaN when only one class is present."""
    y = np.asarray(y_true)
    if y.min() == y.max():
        return float("nan")
    return float(roc_auc_score(y, np.asarray(score)))


def hit_rate_at_k(scored: pl.DataFrame, k: int = 3, group: str = "member_id") -> float:
    """Share of members (with at least one positive) who have a positive among their top-k.

    ``scored``: group column, ``score``, ``label`` (0/1).
    """
    ranked = scored.with_columns(
        pl.col("score").rank("ordinal", descending=True).over(group).alias("_rank")
    )
    per = (
        ranked.group_by(group)
        .agg(
            pl.col("label").max().alias("any"),
            (pl.col("label") * (pl.col("_rank") <= k)).max().alias("hit"),
        )
        .filter(pl.col("any") > 0)
    )
    return float(per["hit"].mean()) if per.height else float("nan")  # type: ignore[arg-type]


def mae(y_true: np.ndarray | pl.Series, y_pred: np.ndarray | pl.Series) -> float:
    return float(np.mean(np.abs(np.asarray(y_true, dtype=float) - np.asarray(y_pred, dtype=float))))
