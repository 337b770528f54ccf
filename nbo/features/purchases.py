"""Point-in-time purchase features: member × item repurchase clocks, member and item activity.

"Item" is a product or a category: the same functions serve the product ranker and the
category propensity model (``item="product_id"`` or ``item="category"``). Every function takes
the receipt lines of a :class:`~nbo.features.history.History` (already cut at ``as_of``) and
returns a LazyFrame; nothing is collected here.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

__all__ = [
    "DAY_US",
    "ITEM_STAT_FEATURES",
    "days_before",
    "item_popularity",
    "member_activity",
    "member_item_stats",
    "purchases_between",
    "with_labels",
]

DAY_US = 86_400_000_000  # microseconds in a day

# Columns of member_item_stats that the product ranker and the category model both learn from.
ITEM_STAT_FEATURES = [
    "n_baskets",
    "n_days",
    "decayed_14d",
    "decayed_56d",
    "days_since_last",
    "interval_days",
    "due_ratio",
    "spend",
]


def days_before(as_of: datetime, column: str = "ts") -> pl.Expr:
    """Days between ``column`` and ``as_of`` as a float (0 = just before the cut)."""
    return (pl.lit(as_of) - pl.col(column)).dt.total_microseconds() / DAY_US


def member_item_stats(
    transactions: pl.LazyFrame,
    as_of: datetime,
    *,
    item: str = "product_id",
    half_lives: tuple[float, ...] = (14.0, 56.0),
) -> pl.LazyFrame:
    """Per (member, item): how often, how recently and how regularly the member buys it.

    ``interval_days`` is the member's usual gap between purchase days of the item (null with
    fewer than two purchase days); ``due_ratio`` = days since last purchase / interval, so a
    value near 1 means the repurchase clock says "now".
    """
    days = pl.col("ts").dt.date()
    age = days_before(as_of)
    stats = transactions.group_by("member_id", item).agg(
        pl.col("basket_id").n_unique().alias("n_baskets"),
        days.n_unique().alias("n_days"),
        pl.col("ts").max().alias("last_ts"),
        pl.col("ts").min().alias("first_ts"),
        # Sums are rounded: float addition order follows how the files are chunked, and the
        # last bits must not decide a ranking (same data, same features, whatever the layout).
        pl.col("sales_value").sum().round(6).alias("spend"),
        *[(0.5 ** (age / h)).sum().round(9).alias(f"decayed_{int(h)}d") for h in half_lives],
        (age < 28).sum().alias("lines_28d"),
        *[days.filter(age < w).n_unique().alias(f"n_days_{w}d") for w in (14, 56, 112)],
    )
    span = (pl.col("last_ts") - pl.col("first_ts")).dt.total_microseconds() / DAY_US
    since_last = days_before(as_of, "last_ts")
    interval = pl.when(pl.col("n_days") > 1).then(span / (pl.col("n_days") - 1)).otherwise(None)
    return (
        stats.with_columns(
            since_last.alias("days_since_last"),
            interval.alias("interval_days"),
        )
        .with_columns(
            (pl.col("days_since_last") / pl.col("interval_days")).alias("due_ratio"),
        )
        .drop("first_ts")
    )


def member_activity(transactions: pl.LazyFrame, as_of: datetime) -> pl.LazyFrame:
    """Per member: baskets, spend, recency, tenure and recent activity."""
    age = days_before(as_of)
    return transactions.group_by("member_id").agg(
        pl.col("basket_id").n_unique().alias("member_baskets"),
        pl.col("basket_id").filter(age < 28).n_unique().alias("member_baskets_28d"),
        pl.col("basket_id").filter(age < 14).n_unique().alias("member_baskets_14d"),
        pl.col("product_id").n_unique().alias("member_products"),
        pl.col("sales_value").sum().round(6).alias("member_spend"),
        age.min().alias("member_days_since_last"),
        age.max().alias("member_tenure_days"),
    )


def item_popularity(
    transactions: pl.LazyFrame, as_of: datetime, *, item: str = "product_id"
) -> pl.LazyFrame:
    """Per item: buyers and baskets overall and in the last 28 and 7 days."""
    age = days_before(as_of)
    return transactions.group_by(item).agg(
        pl.col("member_id").n_unique().alias("item_buyers"),
        pl.col("basket_id").n_unique().alias("item_baskets"),
        pl.col("basket_id").filter(age < 28).n_unique().alias("item_baskets_28d"),
        pl.col("basket_id").filter(age < 7).n_unique().alias("item_baskets_7d"),
    )


def purchases_between(
    transactions: pl.LazyFrame, start: datetime, days: int, *, item: str = "product_id"
) -> pl.LazyFrame:
    """Distinct (member, item) bought in ``[start, start + days)``: the label / truth window."""
    end = start + timedelta(days=days)
    return (
        transactions.filter((pl.col("ts") >= start) & (pl.col("ts") < end))
        .select("member_id", item)
        .unique()
    )


def with_labels(frame: pl.DataFrame, bought: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """``frame`` plus ``label``: 1 where its ``keys`` are among ``bought`` (distinct), else 0."""
    positives = bought.select(keys).with_columns(label=pl.lit(1, pl.Int8))
    return frame.join(positives, on=keys, how="left").with_columns(pl.col("label").fill_null(0))
