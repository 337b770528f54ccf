"""Category purchase propensity: P(member buys in category c within the next H days)."""

from __future__ import annotations

import numpy as np
import polars as pl
from sklearn.ensemble import HistGradientBoostingClassifier

from nbo.features.history import History, training_cuts
from nbo.features.purchases import (
    ITEM_STAT_FEATURES,
    item_popularity,
    member_activity,
    member_item_stats,
    purchases_between,
    with_category,
    with_labels,
)

__all__ = ["CategoryPropensity"]

FEATURES = [
    *ITEM_STAT_FEATURES,
    "n_days_14d",
    "n_days_56d",
    "basket_share",
    "member_baskets",
    "member_baskets_28d",
    "member_baskets_14d",
    "member_days_since_last",
    "member_tenure_days",
    "item_buyers",
    "item_baskets_28d",
    "item_share_28d",
]


class CategoryPropensity:
    """Gradient-boosted P(buy in category within ``horizon_days``) per (member, category).

    Scored for every category the member has bought plus the ``n_popular`` most popular ones,
    learned from ``train_cutoffs`` earlier cuts of the history.
    """

    def __init__(
        self,
        *,
        horizon_days: int = 14,
        n_popular: int = 20,
        train_cutoffs: int = 2,
        max_train_members: int = 20_000,
        max_iter: int = 100,
        random_state: int | None = 0,
    ) -> None:
        self.horizon_days = horizon_days
        self.n_popular = n_popular
        self.train_cutoffs = train_cutoffs
        self.max_train_members = max_train_members
        self.max_iter = max_iter
        self.random_state = random_state

    def _features(self, history: History, members: np.ndarray) -> pl.DataFrame:
        as_of = history.as_of
        keys = pl.DataFrame({"member_id": members}, schema={"member_id": pl.Int64}).lazy()
        all_lines = with_category(history.transactions, history.products)
        lines = all_lines.join(keys, on="member_id", how="semi")
        stats = member_item_stats(lines, as_of, item="category")
        popularity = item_popularity(all_lines, as_of, item="category").with_columns(
            (pl.col("item_baskets_28d") / pl.col("item_baskets_28d").sum()).alias("item_share_28d")
        )
        popular = popularity.sort(["item_baskets_28d", "category"], descending=[True, False]).head(
            self.n_popular
        )
        candidates = pl.concat(
            [
                stats.select("member_id", "category"),
                keys.join(popular.select("category"), how="cross"),
            ]
        ).unique()
        return (
            candidates.join(stats, on=["member_id", "category"], how="left")
            .join(member_activity(lines, as_of), on="member_id", how="left")
            .join(popularity, on="category", how="left")
            .with_columns((pl.col("n_baskets") / pl.col("member_baskets")).alias("basket_share"))
            .sort("member_id", "category")  # a fixed row order keeps training reproducible
            .collect()
        )

    def fit(self, history: History) -> CategoryPropensity:
        rng = np.random.default_rng(self.random_state)
        frames = []
        cuts = training_cuts(
            history,
            every_days=self.horizon_days,
            count=self.train_cutoffs,
            max_members=self.max_train_members,
            rng=rng,
        )
        for past, members in cuts:
            bought = purchases_between(
                with_category(history.transactions, history.products),
                past.as_of,
                self.horizon_days,
                item="category",
            ).collect()
            frames.append(
                with_labels(self._features(past, members), bought, ["member_id", "category"])
            )
        if not frames:
            raise ValueError(f"no receipts before {history.as_of:%Y-%m-%d} to learn from")
        train = pl.concat(frames, how="vertical_relaxed")
        labels = train["label"].to_numpy()
        if labels.min() == labels.max():
            raise ValueError("category propensity needs both bought and not-bought examples")
        self.model_ = HistGradientBoostingClassifier(
            max_iter=self.max_iter,
            learning_rate=0.1,
            early_stopping=False,
            random_state=self.random_state,
        ).fit(train.select(FEATURES).to_numpy(), labels)
        self.feature_names_ = list(FEATURES)
        return self

    def predict_proba(self, history: History, member_ids: np.ndarray | None = None) -> pl.DataFrame:
        """member_id, category, p_buy (within ``horizon_days`` of ``history.as_of``)."""
        if member_ids is None:
            member_ids = history.members.select("member_id").collect()["member_id"].to_numpy()
        frame = self._features(history, np.unique(np.asarray(member_ids, dtype=np.int64)))
        if frame.height == 0:
            return pl.DataFrame(
                schema={"member_id": pl.Int64, "category": pl.String, "p_buy": pl.Float64}
            )
        p = self.model_.predict_proba(frame.select(FEATURES).to_numpy())[:, 1]
        return (
            frame.select("member_id", "category")
            .with_columns(p_buy=pl.Series(p))
            .sort(["member_id", "p_buy", "category"], descending=[False, True, False])
        )
