"""Offer response: P(member redeems offer o when it is offered at t).

:class:`OfferResponse` learns from the club's own past campaigns: every (audience member × offer)
pair of a campaign that started before ``as_of`` is an example, labelled by whether the member
redeemed that offer before ``as_of``, with features computed as of the campaign's start (see
:mod:`nbo.features.offers`). Negatives are sampled (they outnumber redemptions several
hundred to one) and a gradient-boosted tree model (scikit-learn's
``HistGradientBoostingClassifier``, log loss) maps features to a probability, with the sampling
undone on the odds so ``p_redeem`` is calibrated for the club.

The examples and the evaluation set of pairs come from :mod:`nbo.models.response_pairs`.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl
from pydantic import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.exceptions import NotFittedError

from nbo.features.history import History
from nbo.features.offers import FEATURES, features_at_starts
from nbo.models.pair_scoring import (
    BOOSTING,
    PairsError,
    boosting_params,
    campaign_types,
    pair_classifier,
    pair_matrix,
    score_pairs,
    tree_probability,
)
from nbo.models.params import LeafNodes, Share, check_params
from nbo.models.prior import redeem_prior
from nbo.models.response_pairs import (
    audience_pairs,
    campaign_members,
    offer_pairs,
    training_pairs,
)

__all__ = [
    "BOOSTING",
    "OfferResponse",
    "PairsError",
    "audience_pairs",
    "boosting_params",
    "campaign_members",
    "campaign_types",
    "offer_pairs",
    "pair_classifier",
    "pair_matrix",
    "score_pairs",
    "training_pairs",
    "tree_probability",
]


class OfferResponse(BaseEstimator):  # type: ignore[misc]
    """P(member redeems an offer), learned from the club's past campaigns.

    Parameters
    ----------
    max_iter, learning_rate, max_leaf_nodes, min_samples_leaf, l2_regularization
        Passed to scikit-learn's ``HistGradientBoostingClassifier`` (strong L2 and small trees:
        positives are rare, a few hundred per campaign).
    max_train_pairs
        Cap on training pairs (see :func:`training_pairs`); bounds fit time and memory on big
        clubs.
    negatives_per_positive
        Negatives sampled per positive (weighted back); ``None`` keeps them all.
    include_running
        Also learn from campaigns still running at ``as_of`` (redemptions so far as labels).
    min_history_days
        Skip campaigns that start this soon after the first receipt in the data.
    batch_size
        Pairs scored per feature pass in :meth:`predict_proba` (bounds memory; a batch holds
        whole members).
    random_state
        Seed for the pair sample and the model.
    prior_redeem_share
        Until the club's campaigns hold a redemption, ``p_redeem`` is the documented prior
        :func:`~nbo.models.prior.redeem_prior` with this share of buyers redeeming (``learned_``
        false, ``reason_`` saying why).
    """

    def __init__(
        self,
        *,
        max_iter: PositiveInt = 200,
        learning_rate: PositiveFloat = 0.05,
        max_leaf_nodes: LeafNodes = 7,
        min_samples_leaf: PositiveInt = 40,
        l2_regularization: NonNegativeFloat = 10.0,
        max_train_pairs: PositiveInt = 500_000,
        negatives_per_positive: PositiveFloat | None = 50.0,
        include_running: bool = True,
        min_history_days: NonNegativeInt = 28,
        batch_size: PositiveInt = 1_000_000,
        random_state: int | None = 0,
        prior_redeem_share: Share = 0.05,
    ) -> None:
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.max_train_pairs = max_train_pairs
        self.negatives_per_positive = negatives_per_positive
        self.include_running = include_running
        self.min_history_days = min_history_days
        self.batch_size = batch_size
        self.random_state = random_state
        self.prior_redeem_share = prior_redeem_share

    def fit(self, history: History) -> OfferResponse:
        """Learn from the campaigns in ``history`` (features as of each campaign's start)."""
        check_params(self)
        pairs = training_pairs(
            history,
            include_running=self.include_running,
            min_history_days=self.min_history_days,
            max_pairs=self.max_train_pairs,
            negatives_per_positive=self.negatives_per_positive,
            random_state=self.random_state,
        )
        self.as_of_: datetime = history.as_of
        self.learned_: bool = False
        self.model_: HistGradientBoostingClassifier | None = None
        self.campaign_types_: list[str] = []
        self.feature_names_: list[str] = list(FEATURES)
        self.odds_scale_: float = 1.0
        self.n_train_pairs_: int = pairs.height
        self.n_train_positives_: int = int(pairs["label"].sum()) if pairs.height else 0
        self.train_campaigns_: list[str] = sorted(pairs["campaign_id"].unique().to_list())
        if self.n_train_positives_ == 0:
            self.reason_: str = f"no redemption in a campaign before {history.as_of:%Y-%m-%d}"
            return self
        self.reason_ = ""
        self.learned_ = True
        # each campaign's pairs see the club as it was at its start (all starts are < as_of)
        features = features_at_starts(history.club, pairs)
        self.campaign_types_ = campaign_types(features)
        self.feature_names_ = [*FEATURES, *(f"campaign_type={t}" for t in self.campaign_types_)]
        # Fit on the sample as drawn (sample weights make the trees ~3x slower) and undo the
        # sampling on the odds: odds(club) = odds(sample) * positive weight / negative weight.
        weights = features.group_by("label").agg(pl.col("weight").first())
        weight_of = dict(zip(weights["label"].to_list(), weights["weight"].to_list(), strict=True))
        self.odds_scale_ = weight_of.get(1, 1.0) / weight_of.get(0, 1.0)
        self.model_ = pair_classifier(self).fit(
            self._matrix(features), features["label"].to_numpy()
        )
        self.n_train_pairs_ = features.height
        return self

    def predict_proba(
        self,
        history: History,
        pairs: pl.DataFrame,
        *,
        receipts: pl.LazyFrame | None = None,
        offers: pl.LazyFrame | None = None,
    ) -> pl.DataFrame:
        """p_redeem of each (member_id, offer_id) in ``pairs``, features as of ``history``.

        Returns member_id, offer_id, p_redeem in input order. Members unknown to the club get
        cold-start features (zeros); offers unknown to the club raise :class:`PairsError`.
        Batching, ``receipts`` and ``offers`` as in :func:`score_pairs`.
        """
        if not hasattr(self, "as_of_"):
            raise NotFittedError("OfferResponse is not fitted yet; call fit(history) first")

        def p_redeem(features: pl.DataFrame) -> np.ndarray:
            if self.model_ is None:
                return redeem_prior(features, self.prior_redeem_share)
            sample_p = self._sample_p(self._matrix(features))
            with np.errstate(divide="ignore"):
                odds = sample_p / (1.0 - sample_p) * self.odds_scale_
            return np.where(np.isinf(odds), 1.0, odds / (1.0 + odds))

        keyed, p = score_pairs(
            history, pairs, p_redeem, batch_size=self.batch_size, receipts=receipts, offers=offers
        )
        return keyed.with_columns(p_redeem=pl.Series(p, dtype=pl.Float64))

    def _sample_p(self, matrix: np.ndarray) -> np.ndarray:
        """The trees' P(redeem) on the training sample's odds (:func:`tree_probability`)."""
        if self.model_ is None:
            raise NotFittedError("OfferResponse learned nothing: it predicts its prior")
        return tree_probability(self.model_, matrix)

    def _matrix(self, features: pl.DataFrame) -> np.ndarray:
        """The model's input (:func:`pair_matrix`)."""
        return pair_matrix(features, self.campaign_types_)
