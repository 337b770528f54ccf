"""Candidate products per member and their ranker features, as of a date (product affinity).

Candidates come from the member's own repurchase history (time-decayed frequency and a
per-member, per-product replenishment clock), from collaborative filtering (ALS and BM25
item-item) and from recent popularity. Each candidate gets the columns of :data:`FEATURES`,
computed from receipts before ``history.as_of`` only.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from nbo.features.history import History
from nbo.features.purchases import (
    ITEM_STAT_FEATURES,
    item_popularity,
    member_activity,
    member_item_stats,
)
from nbo.models.cf import CollaborativeFilter

__all__ = ["FEATURES", "candidate_features"]

FEATURES = [
    *ITEM_STAT_FEATURES,
    "lines_28d",
    "basket_share",
    "member_baskets",
    "member_baskets_28d",
    "member_days_since_last",
    "member_tenure_days",
    "member_products",
    "item_buyers",
    "item_baskets",
    "item_baskets_28d",
    "item_baskets_7d",
    "als_score",
    "als_rank",
    "ii_rank",
    "pop_rank",
    "bought_before",
    "category_share",
    "category_days_since_last",
    "item_repeat_rate",
    "item_interval",
    "due_gap",
    "expected_by_rate",
    "decayed_112d",
    "item_due_ratio",
    "n_days_14d",
    "n_days_56d",
    "n_days_112d",
    "in_last_basket",
    "member_baskets_14d",
    "freq_rank",
    "decay_rank",
    "freq_rel",
    "decay_rel",
    "recent_rank",
]


def candidate_features(
    history: History,
    member_ids: np.ndarray,
    cf: CollaborativeFilter,
    item_repeat: pl.LazyFrame,
    *,
    n_repurchase: int,
    n_cf: int,
    n_popular: int,
) -> pl.DataFrame:
    """Candidates and ranker features for ``member_ids`` as of ``history.as_of``."""
    as_of = history.as_of
    members = pl.DataFrame({"member_id": member_ids}, schema={"member_id": pl.Int64}).lazy()
    lines = history.transactions.join(members, on="member_id", how="semi")
    all_lines = history.transactions
    stats = member_item_stats(lines, as_of, half_lives=(14.0, 56.0, 112.0))
    own = (
        stats.sort(["decayed_56d", "n_baskets", "product_id"], descending=[True, True, False])
        .group_by("member_id", maintain_order=True)
        .head(n_repurchase)
        .select("member_id", "product_id")
    )
    popularity = (
        item_popularity(all_lines, as_of).join(item_repeat, on="product_id", how="left").collect()
    )
    popular = popularity.sort(
        ["item_baskets_28d", "item_baskets", "product_id"], descending=[True, True, False]
    ).head(n_popular)
    popular = popular.with_columns(pop_rank=pl.int_range(1, pl.len() + 1, dtype=pl.Int32))
    als = cf.recommend(member_ids, n_cf, source="als").rename({"rank": "als_rank"})
    item_item = cf.recommend(member_ids, n_cf, source="item_item").rename({"rank": "ii_rank"})
    candidates = pl.concat(
        [
            own.collect(),
            als.select("member_id", "product_id"),
            item_item.select("member_id", "product_id"),
            members.join(popular.lazy().select("product_id"), how="cross").collect(),
        ],
        how="vertical",
    ).unique(["member_id", "product_id"])

    products = history.products.select("product_id", "category")
    category_stats = member_item_stats(
        lines.join(products, on="product_id"), as_of, item="category"
    ).select(
        "member_id",
        "category",
        pl.col("n_baskets").alias("category_baskets"),
        pl.col("days_since_last").alias("category_days_since_last"),
    )
    frame = (
        candidates.lazy()
        .join(stats, on=["member_id", "product_id"], how="left")
        .join(member_activity(lines, as_of), on="member_id", how="left")
        .join(popularity.lazy(), on="product_id", how="left")
        .join(products, on="product_id", how="left")
        .join(category_stats, on=["member_id", "category"], how="left")
        .join(
            als.lazy().select("member_id", "product_id", "als_rank"),
            on=["member_id", "product_id"],
            how="left",
        )
        .join(
            item_item.lazy().select("member_id", "product_id", "ii_rank"),
            on=["member_id", "product_id"],
            how="left",
        )
        .join(popular.lazy().select("product_id", "pop_rank"), on="product_id", how="left")
        .with_columns(
            pl.col("n_baskets").is_not_null().cast(pl.Int8).alias("bought_before"),
            (pl.col("n_baskets") / pl.col("member_baskets")).alias("basket_share"),
            (pl.col("category_baskets") / pl.col("member_baskets")).alias("category_share"),
            (pl.col("days_since_last") - pl.col("interval_days")).alias("due_gap"),
            (pl.col("days_since_last") / pl.col("item_interval")).alias("item_due_ratio"),
            (pl.col("days_since_last") <= pl.col("member_days_since_last") + 0.01)
            .cast(pl.Int8)
            .alias("in_last_basket"),
            # within-member standing: lets a pointwise model rank like P-TopFreq, then refine it
            pl.col("n_baskets").rank("min", descending=True).over("member_id").alias("freq_rank"),
            pl.col("decayed_56d")
            .rank("min", descending=True)
            .over("member_id")
            .alias("decay_rank"),
            (pl.col("n_baskets") / pl.col("n_baskets").max().over("member_id")).alias("freq_rel"),
            (pl.col("decayed_56d") / pl.col("decayed_56d").max().over("member_id")).alias(
                "decay_rel"
            ),
            pl.col("decayed_14d")
            .rank("min", descending=True)
            .over("member_id")
            .alias("recent_rank"),
            # purchases expected in the horizon at the member's own rate for the product
            (pl.col("n_days") / pl.col("member_tenure_days").clip(lower_bound=7.0) * 14.0).alias(
                "expected_by_rate"
            ),
        )
        .collect()
    )
    frame = frame.sort("member_id", "product_id")  # a fixed row order keeps training reproducible
    return frame.with_columns(als_score=pl.Series(cf.als_score(frame), dtype=pl.Float32))
