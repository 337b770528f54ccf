"""Offline metrics shared by the backtest, the training pipeline and the model tests."""

from __future__ import annotations

import numpy as np
import polars as pl
from sklearn.metrics import roc_auc_score

__all__ = [
    "auc",
    "hit_rate_at_k",
    "mae",
    "per_member_ranking",
    "ranking_metrics",
    "ratio_interval",
]


def per_member_ranking(recs: pl.DataFrame, truth: pl.DataFrame, k: int = 10) -> pl.DataFrame:
    """recall@k and NDCG@k of every member in ``truth`` (member_id, recall, ndcg), by member_id.

    ``recs``: member_id, product_id, rank (1 = best). ``truth``: member_id, product_id, the distinct
    products each member bought in the target window. Members with no recommendation score zero;
    recall is hits / |truth| (so a member who buys 30 products caps at 10/30).
    """
    top = recs.filter(pl.col("rank") <= k).select("member_id", "product_id", "rank")
    hits = truth.join(top, on=["member_id", "product_id"], how="left")
    per_member = hits.group_by("member_id").agg(
        pl.col("rank").is_not_null().sum().alias("hits"),
        pl.len().alias("n_truth"),
        (1.0 / (pl.col("rank").cast(pl.Float64) + 1.0).log(2)).fill_null(0.0).sum().alias("dcg"),
    )
    ideal = np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))  # best DCG for 1..k relevant items
    n_truth = per_member["n_truth"].to_numpy()
    idcg = ideal[np.minimum(n_truth, k) - 1] if per_member.height else np.zeros(0)
    return pl.DataFrame(
        {
            "member_id": per_member["member_id"],
            "recall": per_member["hits"].to_numpy() / n_truth,
            "ndcg": per_member["dcg"].to_numpy() / idcg,
        }
    ).sort("member_id")


def ranking_metrics(recs: pl.DataFrame, truth: pl.DataFrame, k: int = 10) -> dict[str, float]:
    """Mean recall@k and NDCG@k over the members in ``truth`` (see :func:`per_member_ranking`)."""
    per_member = per_member_ranking(recs, truth, k)
    if per_member.height == 0:
        return {f"recall@{k}": 0.0, f"ndcg@{k}": 0.0, "members": 0.0}
    return {
        f"recall@{k}": float(per_member["recall"].mean()),  # type: ignore[arg-type]
        f"ndcg@{k}": float(per_member["ndcg"].mean()),  # type: ignore[arg-type]
        "members": float(per_member.height),
    }


def ratio_interval(
    numerator: np.ndarray,
    denominator: np.ndarray,
    *,
    draws: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Paired bootstrap interval of ``mean(numerator) / mean(denominator)`` over members.

    Both arrays hold one value per member, in the same order (a method's and its baseline's
    recall, say). Members are drawn with replacement, the same draw for both, so the interval
    reflects how much the ratio depends on which members happen to be in the holdout. NaN
    bounds when there are no members or a draw's denominator is zero throughout.
    """
    num, den = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    if num.shape != den.shape or num.ndim != 1:
        raise ValueError("numerator and denominator need one value per member each")
    n = len(num)
    if n == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    chunk = max(1, min(draws, 2_000_000 // n))  # at most ~16 MB of indices at a time
    ratios = []
    for start in range(0, draws, chunk):
        index = rng.integers(0, n, size=(min(chunk, draws - start), n))
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios.append(num[index].sum(axis=1) / den[index].sum(axis=1))
    values = np.concatenate(ratios)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


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
