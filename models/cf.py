"""Collaborative filtering with ``implicit``: ALS and item-item neighbours over receipts.

Both learn from a member × product matrix of time-decayed purchase counts. They are candidate
generators and feature sources for the product ranker, and ALS alone is a backtest baseline.
Polars frames go in and out; the CSR matrix exists only at the implicit boundary.
"""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from implicit.nearest_neighbours import BM25Recommender
from pydantic import NonNegativeFloat, NonNegativeInt, PositiveInt
from sklearn.base import BaseEstimator
from threadpoolctl import threadpool_limits

from nbo.models.params import check_params

__all__ = ["CollaborativeFilter"]


class CollaborativeFilter(BaseEstimator):  # type: ignore[misc]
    """ALS factors plus a BM25 item-item model over one member × product matrix.

    Parameters
    ----------
    factors, iterations, regularization, alpha
        ALS settings (``alpha`` scales the confidence of a purchase).
    neighbours
        K of the item-item model.
    random_state
        Seed of the ALS initialisation.
    num_threads
        ALS threads (0 = all cores; results then vary slightly between runs). The item-item
        model always uses every core (its result does not depend on them).
    """

    def __init__(
        self,
        *,
        factors: PositiveInt = 32,
        iterations: PositiveInt = 8,
        regularization: NonNegativeFloat = 0.05,
        alpha: NonNegativeFloat = 2.0,
        neighbours: PositiveInt = 20,
        random_state: int | None = 0,
        num_threads: NonNegativeInt = 1,
    ) -> None:
        self.factors = factors
        self.iterations = iterations
        self.regularization = regularization
        self.alpha = alpha
        self.neighbours = neighbours
        self.random_state = random_state
        self.num_threads = num_threads

    def fit(self, member_items: pl.DataFrame, weight: str = "decayed_56d") -> CollaborativeFilter:
        """Learn from ``member_items`` (member_id, product_id, ``weight``) rows."""
        check_params(self)
        if member_items.height == 0:
            raise ValueError("collaborative filtering needs at least one purchase")
        self.member_ids_ = np.sort(member_items["member_id"].unique().to_numpy())
        self.product_ids_ = np.sort(member_items["product_id"].unique().to_numpy())
        self.user_items_ = self._matrix(member_items, weight)
        confidence = self.user_items_.copy()
        confidence.data = 1.0 + self.alpha * np.log1p(confidence.data)
        self.als_ = AlternatingLeastSquares(
            factors=self.factors,
            iterations=self.iterations,
            regularization=self.regularization,
            random_state=self.random_state,
            num_threads=self.num_threads,
        )
        # Item-item on every core: each item's neighbours are found on their own, so threads do
        # not change them (checked on Complete Journey).
        self.item_item_ = BM25Recommender(K=self.neighbours, num_threads=0)
        # One BLAS thread: implicit parallelises itself. One ALS thread by default, because
        # multithreaded ALS is not bit-for-bit reproducible for a seed.
        with threadpool_limits(1, "blas"), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Method expects CSR input")  # implicit's own
            self.als_.fit(confidence.astype(np.float32), show_progress=False)
            self.item_item_.fit(self.user_items_, show_progress=False)
        return self

    def _matrix(self, member_items: pl.DataFrame, weight: str) -> sp.csr_matrix:
        rows = np.searchsorted(self.member_ids_, member_items["member_id"].to_numpy())
        cols = np.searchsorted(self.product_ids_, member_items["product_id"].to_numpy())
        data = member_items[weight].to_numpy().astype(np.float32)
        shape = (len(self.member_ids_), len(self.product_ids_))
        return sp.csr_matrix((data, (rows, cols)), shape=shape)

    def _member_rows(self, member_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row index of each known member and the mask of known members."""
        pos = np.searchsorted(self.member_ids_, member_ids)
        pos = np.clip(pos, 0, len(self.member_ids_) - 1)
        known = self.member_ids_[pos] == member_ids
        return pos, known

    def recommend(
        self, member_ids: np.ndarray, n: int, *, source: str = "als", new_only: bool = True
    ) -> pl.DataFrame:
        """Top-``n`` products per known member: member_id, product_id, score, rank."""
        pos, known = self._member_rows(np.asarray(member_ids))
        rows = pos[known]
        if len(rows) == 0:
            return pl.DataFrame(
                schema={
                    "member_id": pl.Int64,
                    "product_id": pl.Int64,
                    "score": pl.Float32,
                    "rank": pl.Int32,
                }
            )
        model = self.als_ if source == "als" else self.item_item_
        n = min(n, len(self.product_ids_))
        with threadpool_limits(1, "blas"):
            ids, scores = model.recommend(
                rows, self.user_items_[rows], N=n, filter_already_liked_items=new_only
            )
        valid = ids >= 0
        member_col = np.repeat(self.member_ids_[rows], ids.shape[1])[valid.ravel()]
        return pl.DataFrame(
            {
                "member_id": member_col,
                "product_id": self.product_ids_[ids[valid]],
                "score": scores[valid].astype(np.float32),
                "rank": np.tile(np.arange(1, ids.shape[1] + 1, dtype=np.int32), len(rows))[
                    valid.ravel()
                ],
            }
        )

    def als_score(self, pairs: pl.DataFrame) -> np.ndarray:
        """ALS affinity (factor dot product) per (member_id, product_id) row; NaN if unknown."""
        member_pos, member_known = self._member_rows(pairs["member_id"].to_numpy())
        product_ids = pairs["product_id"].to_numpy()
        product_pos = np.clip(
            np.searchsorted(self.product_ids_, product_ids), 0, len(self.product_ids_) - 1
        )
        product_known = self.product_ids_[product_pos] == product_ids
        users = np.asarray(self.als_.user_factors)
        items = np.asarray(self.als_.item_factors)
        score: np.ndarray = np.einsum("ij,ij->i", users[member_pos], items[product_pos])
        score = score.astype(np.float32)
        score[~(member_known & product_known)] = np.nan
        return score
