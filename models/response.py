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

import itertools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import numpy as np
import polars as pl
from pydantic import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt
from scipy.special import expit
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.exceptions import NotFittedError

from nbo.errors import NboError
from nbo.features.history import History
from nbo.features.offers import FEATURES, offer_table, response_features
from nbo.features.offers.columns import KEYS as _KEYS
from nbo.models.boosted import TreeTables
from nbo.models.params import LeafNodes, Share, check_params
from nbo.models.prior import redeem_prior
from nbo.models.response_pairs import (
    audience_pairs,
    campaign_members,
    offer_pairs,
    training_pairs,
)

__all__ = [
    "OfferResponse",
    "PairsError",
    "audience_pairs",
    "campaign_members",
    "offer_pairs",
    "pair_matrix",
    "score_pairs",
    "training_pairs",
    "tree_probability",
]


class PairsError(NboError, ValueError):
    """Pairs to score are invalid: a column missing or an offer the club does not have."""


_SCORING_THREADS = 2  # batches of pairs scored side by side (see predict_proba)
_MIN_PARALLEL_PAIRS = 100_000  # smaller inputs are one batch: threads would cost more


def _member_batches(ordered: pl.DataFrame, size: int) -> list[pl.DataFrame]:
    """Slices of about ``size`` rows of member-sorted ``ordered``, never splitting a member."""
    if ordered.height == 0:
        return []
    member = ordered["member_id"].to_numpy()
    starts = np.r_[0, np.flatnonzero(member[1:] != member[:-1]) + 1]  # first row of each member
    cuts = starts[np.searchsorted(starts, np.arange(size, ordered.height, size))]
    bounds = np.unique(np.r_[0, cuts, ordered.height])
    return [ordered.slice(a, b - a) for a, b in itertools.pairwise(bounds.tolist())]


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
        # Each campaign's pairs see the club as it was at its start (all starts are < as_of).
        # One collect per start: polars plans a union of them far worse than each alone.
        features = pl.concat(
            [
                response_features(History.at(history.club, start), group.lazy()).collect()
                for (start,), group in pairs.group_by("start_date", maintain_order=True)
            ]
        )
        self.campaign_types_ = sorted(features["campaign_type"].drop_nulls().unique().to_list())
        self.feature_names_ = [*FEATURES, *(f"campaign_type={t}" for t in self.campaign_types_)]
        # Fit on the sample as drawn (sample weights make the trees ~3x slower) and undo the
        # sampling on the odds: odds(club) = odds(sample) * positive weight / negative weight.
        weights = features.group_by("label").agg(pl.col("weight").first())
        weight_of = dict(zip(weights["label"].to_list(), weights["weight"].to_list(), strict=True))
        self.odds_scale_ = weight_of.get(1, 1.0) / weight_of.get(0, 1.0)
        self.model_ = HistGradientBoostingClassifier(
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization,
            early_stopping=False,
            random_state=self.random_state,
        ).fit(self._matrix(features), features["label"].to_numpy())
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


def pair_matrix(features: pl.DataFrame, campaign_types: list[str]) -> np.ndarray:
    """A pair model's input: :data:`FEATURES` then one indicator per known campaign type.

    Rounded to 1e-6: the spend sums behind the features come from parallel group-bys whose
    float summation order varies from run to run (differences of ~1e-14), and a tree model
    fitted on such values could split differently; rounded, the same data gives the same
    model (a difference can still cross a rounding edge, with odds of ~1e-8 per value).
    """
    types = [
        (pl.col("campaign_type") == t).fill_null(False).cast(pl.Float64).alias(f"type={t}")
        for t in campaign_types
    ]
    matrix = features.select(*FEATURES, *types).to_numpy().astype(np.float64, copy=False)
    return np.round(matrix, 6)


def tree_probability(model: HistGradientBoostingClassifier, matrix: np.ndarray) -> np.ndarray:
    """P(class 1) of a fitted binary ``model`` for each row of ``matrix``.

    The same numbers as ``model.predict_proba``, from the binned features and the trees'
    look-up tables (:mod:`nbo.models.boosted`): a few table reads per tree instead of a
    walk. Falls back to ``predict_proba`` where scikit-learn's internals differ.
    """
    try:
        tables = TreeTables.of(model)
        if tables is None:
            raise AttributeError("categorical features or several trees per iteration")
        raw = tables.raw(model._bin_mapper.transform(matrix))
    except (AttributeError, ImportError, TypeError, ValueError):
        return np.asarray(model.predict_proba(matrix)[:, 1], dtype=np.float64)
    return np.asarray(expit(raw), dtype=np.float64)


def score_pairs(
    history: History,
    pairs: pl.DataFrame,
    predict: Callable[[pl.DataFrame], np.ndarray],
    *,
    batch_size: int,
    receipts: pl.LazyFrame | None = None,
    offers: pl.LazyFrame | None = None,
) -> tuple[pl.DataFrame, np.ndarray]:
    """``predict`` of the :func:`response_features` of each (member_id, offer_id) in ``pairs``.

    The one scoring loop of the pair models. Returns the keys (member_id Int64, offer_id
    String) and one value per pair, in input order. Offers unknown to the club raise
    :class:`PairsError`. Pairs are scored in batches of ``batch_size`` whole members (in member
    order), each reading only its members' receipts; ``receipts`` (every line of
    ``history.transactions`` of the pairs' members, read once) and ``offers``
    (:func:`~nbo.features.offers.offer_table`) let a caller that scores a big club chunk by
    chunk read the club once.
    """
    missing = [c for c in _KEYS if c not in pairs.columns]
    if missing:
        raise PairsError(f"pairs need columns member_id and offer_id; missing {missing}")
    keyed = pairs.select(pl.col("member_id").cast(pl.Int64), pl.col("offer_id").cast(pl.String))
    known = history.club.offers.select("offer_id").collect()["offer_id"]
    unknown = keyed.filter(~pl.col("offer_id").is_in(known.implode()))["offer_id"].unique()
    if unknown.len():
        shown = ", ".join(sorted(unknown.cast(pl.String).fill_null("<null>").to_list())[:10])
        raise PairsError(f"{unknown.len()} offer id(s) not in the club's offers: {shown}")
    if offers is None and keyed.height:
        offers = offer_table(history, keyed.select("offer_id").unique().lazy()).collect().lazy()
    # Member order, so a batch's features read its own members' receipts only (and, on
    # data stored by member, only their part of the files).
    ordered = keyed.with_row_index("_row").sort("member_id", "_row")
    # At least two batches of a big input, scored side by side: the features' NumPy parts
    # and the trees run on one core each, so two batches keep both cores busy.
    size = batch_size
    if ordered.height >= 2 * _MIN_PARALLEL_PAIRS:
        size = min(size, -(-ordered.height // _SCORING_THREADS))
    batches = _member_batches(ordered, size)

    def score(batch: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = batch["member_id"].min(), batch["member_id"].max()
        lines = history.transactions if receipts is None else receipts
        features = response_features(
            history,
            batch.select(_KEYS).lazy(),
            receipts=lines.filter(pl.col("member_id").is_between(lo, hi)),
            offers=offers,
        ).collect()
        return batch["_row"].to_numpy(), predict(features)

    values = np.empty(keyed.height)
    if len(batches) > 1:
        with ThreadPoolExecutor(_SCORING_THREADS) as pool:
            scored = list(pool.map(score, batches))
    else:
        scored = [score(batch) for batch in batches]
    for rows, value in scored:
        values[rows] = value
    return keyed, values
