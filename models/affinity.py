"""Product affinity: what each member will buy next, with a reason.

Candidates come from the member's own repurchase history (time-decayed frequency and a
per-member, per-product replenishment clock), from collaborative filtering (ALS and BM25
item-item, via ``implicit``) and from popularity. Gradient-boosted rankers, trained on earlier
cuts of the same history (label: bought in the following ``horizon_days``) and averaged, order
them. Members with too little history get popularity within their segment, flagged ``cold_start``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
from pydantic import NonNegativeInt, PositiveFloat, PositiveInt
from sklearn.base import BaseEstimator, clone
from sklearn.ensemble import HistGradientBoostingClassifier

from nbo.features.history import History, training_cuts
from nbo.features.purchases import (
    item_popularity,
    member_item_stats,
    purchases_between,
    with_labels,
)
from nbo.models.affinity_candidates import FEATURES, candidate_features
from nbo.models.cf import CollaborativeFilter
from nbo.models.params import Share, check_params
from nbo.models.ranker_bag import RankerBag, bag_mask, split_gain_importance

__all__ = ["FEATURES", "ProductAffinity", "RankerBag", "candidate_features"]

REASONS = ("repurchase_due", "bought_before", "similar_members", "popular")


def _empty_recs() -> pl.DataFrame:
    return pl.DataFrame(schema={"member_id": pl.Int64, "product_id": pl.Int64})


class ProductAffinity(BaseEstimator):  # type: ignore[misc]
    """Top-k next products per member, scored by a learned ranker over candidate features.

    Parameters
    ----------
    horizon_days
        The ranker learns "bought within this many days" (the evaluation window is the same).
    n_repurchase, n_cf, n_popular
        Candidates per member from own history, from each CF model and from popularity.
    train_cutoffs
        How many earlier cuts (each ``horizon_days`` apart) the ranker learns from.
    n_rankers, negative_share
        Rankers averaged, each learning from every positive and its own ``negative_share``
        of the negatives (disjoint draws while ``n_rankers × negative_share ≤ 1``).
    max_train_members
        Members sampled per cut for ranker training (all members still get scored).
    min_baskets
        Members with fewer baskets are served the cold-start popularity answer.
    max_iter, learning_rate
        Boosting rounds and learning rate of each ranker.
    min_cf_buyers
        Products bought by fewer members are left out of collaborative filtering.
    cf
        The collaborative filter (cloned for each fit); None: the default one, seeded with
        ``random_state``.
    random_state
        Seed of the member sample, the negatives' draw, the rankers and (by default) the CF.
    """

    def __init__(
        self,
        *,
        horizon_days: PositiveInt = 14,
        n_repurchase: NonNegativeInt = 60,
        n_cf: NonNegativeInt = 20,
        n_popular: NonNegativeInt = 20,
        train_cutoffs: PositiveInt = 2,
        max_train_members: PositiveInt = 20_000,
        n_rankers: PositiveInt = 5,
        negative_share: Share = 0.15,
        min_baskets: NonNegativeInt = 2,
        max_iter: PositiveInt = 100,
        learning_rate: PositiveFloat = 0.08,
        min_cf_buyers: PositiveInt = 5,
        cf: CollaborativeFilter | None = None,
        random_state: int | None = 0,
    ) -> None:
        self.horizon_days = horizon_days
        self.n_repurchase = n_repurchase
        self.n_cf = n_cf
        self.n_popular = n_popular
        self.train_cutoffs = train_cutoffs
        self.max_train_members = max_train_members
        self.n_rankers = n_rankers
        self.negative_share = negative_share
        self.min_baskets = min_baskets
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.min_cf_buyers = min_cf_buyers
        self.cf = cf
        self.random_state = random_state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Load a pickle, including one saved when the CF was configured by ``cf_params``."""
        if "cf_params" in state:
            params = state.pop("cf_params")
            seeded = {"random_state": state.get("random_state"), **(params or {})}
            state["cf"] = None if params is None else CollaborativeFilter(**seeded)
        super().__setstate__(state)

    # -- fitting -----------------------------------------------------------------------------
    def _fit_state(self, history: History) -> tuple[CollaborativeFilter, pl.DataFrame]:
        """CF models and per-product repeat behaviour learned from ``history``."""
        stats = member_item_stats(history.transactions, history.as_of).collect()
        buyers = stats.group_by("product_id").agg(
            pl.len().alias("buyers"),
            (pl.col("n_days") >= 2).mean().alias("item_repeat_rate"),
            pl.col("interval_days").median().alias("item_interval"),
        )
        kept = stats.join(
            buyers.filter(pl.col("buyers") >= self.min_cf_buyers), on="product_id", how="semi"
        )
        unfitted = (
            CollaborativeFilter(random_state=self.random_state)
            if self.cf is None
            else clone(self.cf)
        )
        cf = unfitted.fit(kept.select("member_id", "product_id", "decayed_56d"))
        return cf, buyers.drop("buyers")

    def _training_frame(self, history: History, rng: np.random.Generator) -> pl.DataFrame:
        frames = []
        cuts = training_cuts(
            history,
            every_days=self.horizon_days,
            count=self.train_cutoffs,
            max_members=self.max_train_members,
            rng=rng,
        )
        for past, members in cuts:
            cf, item_repeat = self._fit_state(past)
            features = self._candidates(past, members, cf, item_repeat)
            # labels from [cut, cut + horizon): strictly before history.as_of
            bought = purchases_between(
                history.transactions, past.as_of, self.horizon_days
            ).collect()
            labelled = with_labels(features, bought, ["member_id", "product_id"])
            # one uniform draw per row decides which rankers learn from it as a negative
            draw = rng.random(labelled.height)
            keep = (labelled["label"].to_numpy() == 1) | (
                draw < self.n_rankers * self.negative_share
            )
            frames.append(labelled.with_columns(_draw=pl.Series(draw)).filter(pl.Series(keep)))
        if not frames:
            raise ValueError(f"no receipts before {history.as_of:%Y-%m-%d} to learn from")
        return pl.concat(frames, how="vertical_relaxed")

    def _candidates(
        self,
        history: History,
        members: np.ndarray,
        cf: CollaborativeFilter,
        item_repeat: pl.DataFrame,
    ) -> pl.DataFrame:
        return candidate_features(
            history,
            members,
            cf,
            item_repeat.lazy(),
            n_repurchase=self.n_repurchase,
            n_cf=self.n_cf,
            n_popular=self.n_popular,
        )

    def fit(self, history: History) -> ProductAffinity:
        """Train the ranker on earlier cuts of ``history``, then the CF models on all of it."""
        check_params(self)
        rng = np.random.default_rng(self.random_state)
        train = self._training_frame(history, rng)
        labels = train["label"].to_numpy()
        if labels.min() == labels.max():
            raise ValueError("the ranker needs both bought and not-bought candidates to learn from")
        draw = train["_draw"].to_numpy()
        rankers = []
        for k in range(self.n_rankers):
            rows = bag_mask(labels, draw, k, self.negative_share)
            # one ranker's rows at a time: a 1M-member club's frame is not copied whole
            features = train.filter(pl.Series(rows)).select(FEATURES).to_numpy()
            rankers.append(
                HistGradientBoostingClassifier(
                    max_iter=self.max_iter,
                    learning_rate=self.learning_rate,
                    max_leaf_nodes=31,
                    early_stopping=False,
                    random_state=self.random_state,
                ).fit(features, labels[rows])
            )
            del features
        self.ranker_ = RankerBag(rankers)
        self.importance_ = split_gain_importance(self.ranker_, FEATURES)
        first = bag_mask(labels, draw, 0, self.negative_share)  # what one ranker learned from
        self.train_rows_ = int(first.sum())
        self.train_positive_rate_ = float(labels[first].mean())
        self.cf_, self.item_repeat_ = self._fit_state(history)
        self.as_of_ = history.as_of
        self.fallback_ = self._popular_by_segment(history)
        return self

    def _popular_by_segment(self, history: History) -> pl.DataFrame:
        """Recent popularity (last 28 days), overall: the cold-start answer."""
        popularity = item_popularity(history.transactions, history.as_of).collect()
        return (
            popularity.sort(
                ["item_baskets_28d", "item_baskets", "product_id"], descending=[True, True, False]
            )
            .head(100)
            .select(
                "product_id",
                (pl.col("item_baskets_28d") / pl.col("item_baskets_28d").sum()).alias("score"),
            )
        )

    # -- predicting --------------------------------------------------------------------------
    def recommend(
        self, history: History, member_ids: np.ndarray | None = None, k: int = 10
    ) -> pl.DataFrame:
        """member_id, rank, product_id, score, reason, cold_start for every requested member."""
        if member_ids is None:
            member_ids = history.members.select("member_id").collect()["member_id"].to_numpy()
        member_ids = np.unique(np.asarray(member_ids, dtype=np.int64))
        baskets = (
            history.transactions.join(
                pl.DataFrame({"member_id": member_ids}).lazy(), on="member_id", how="semi"
            )
            .group_by("member_id")
            .agg(pl.col("basket_id").n_unique().alias("baskets"))
            .collect()
        )
        warm = baskets.filter(pl.col("baskets") >= self.min_baskets)["member_id"].to_numpy()
        cold = np.setdiff1d(member_ids, warm)
        parts = []
        if len(warm):
            features = self._candidates(history, np.sort(warm), self.cf_, self.item_repeat_)
            score = self.ranker_.predict_proba(features.select(FEATURES).to_numpy())[:, 1]
            ranked = (
                features.with_columns(score=pl.Series(score, dtype=pl.Float64))
                .sort(["member_id", "score", "product_id"], descending=[False, True, False])
                .group_by("member_id", maintain_order=True)
                .head(k)
            )
            parts.append(ranked.with_columns(_reason_code(), cold_start=pl.lit(False)))
        if len(cold):
            fallback = self.fallback_.head(k).with_columns(
                reason=pl.lit("popular"), cold_start=pl.lit(True)
            )
            parts.append(pl.DataFrame({"member_id": cold}).join(fallback, how="cross"))
        columns = ["member_id", "product_id", "score", "reason", "cold_start"]
        recs = (
            pl.concat([p.select(columns) for p in parts], how="vertical_relaxed")
            if parts
            else (
                pl.DataFrame(
                    schema={
                        "member_id": pl.Int64,
                        "product_id": pl.Int64,
                        "score": pl.Float64,
                        "reason": pl.String,
                        "cold_start": pl.Boolean,
                    }
                )
            )
        )
        return recs.with_columns(
            rank=pl.int_range(1, pl.len() + 1, dtype=pl.Int32).over("member_id")
        ).select("member_id", "rank", "product_id", "score", "reason", "cold_start")


def _reason_code() -> pl.Expr:
    """Why a product is recommended, from the strongest evidence behind it."""
    return (
        pl.when(pl.col("bought_before") == 1)
        .then(
            pl.when(pl.col("due_ratio") >= 0.8)
            .then(pl.lit("repurchase_due"))
            .otherwise(pl.lit("bought_before"))
        )
        .when(pl.col("als_rank").is_not_null() | pl.col("ii_rank").is_not_null())
        .then(pl.lit("similar_members"))
        .otherwise(pl.lit("popular"))
        .alias("reason")
    )
