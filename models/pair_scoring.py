"""The parts every pair model shares: the design matrix, the trees, the scoring loop.

The offer response, purchase propensity and uplift models all read the point-in-time pair
features of :mod:`nbo.features.offers` and fit gradient-boosted trees on them; this module
holds what they do alike, once.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import polars as pl
from scipy.special import expit
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingClassifier

from nbo.errors import NboError
from nbo.features.history import History
from nbo.features.offers import FEATURES, offer_table, response_features
from nbo.features.offers.columns import KEYS as _KEYS
from nbo.models.boosted import TreeTables

__all__ = [
    "BOOSTING",
    "PairsError",
    "boosting_params",
    "campaign_types",
    "pair_classifier",
    "pair_matrix",
    "score_pairs",
    "tree_probability",
]


class PairsError(NboError, ValueError):
    """Pairs to score are invalid: a column missing or an offer the club does not have."""


_SCORING_THREADS = 2  # batches of pairs scored side by side (see score_pairs)
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


BOOSTING = ("max_iter", "learning_rate", "max_leaf_nodes", "min_samples_leaf",
            "l2_regularization", "random_state")  # fmt: skip


def boosting_params(estimator: BaseEstimator) -> dict[str, Any]:
    """A pair model's parameters of its gradient-boosted trees (:data:`BOOSTING`)."""
    params = estimator.get_params(deep=False)
    return {name: params[name] for name in BOOSTING}


def pair_classifier(estimator: BaseEstimator) -> HistGradientBoostingClassifier:
    """The tree model of a pair model, from its own parameters (no early stopping)."""
    return HistGradientBoostingClassifier(early_stopping=False, **boosting_params(estimator))


def campaign_types(features: pl.DataFrame) -> list[str]:
    """The campaign types of training ``features``, sorted: :func:`pair_matrix`'s indicators."""
    return sorted(features["campaign_type"].drop_nulls().unique().to_list())


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
