"""Uplift: what an offer changes, P(buy | offer) − P(buy | no offer) in the offer's window.

:class:`OfferUplift` measures it where the club ran randomized exposure: campaigns before
``as_of`` whose audience has both treated members and controls held out at random
(``campaign_audience.treated`` false), and, given the service's interaction history, the
champion's offers against the holdout's would-be ones (``nbo.history.exposure``). On those
(member, offer) pairs, outcome = bought any of the offer's products in the window, features =
the offer response model's point-in-time pair features as of the campaign's start, it fits
an X-learner (:class:`XLearner`; Künzel et al., PNAS 2019): small control groups and a known
randomization propensity are its case. With enough control pairs its estimates are
calibrated out of fold (:func:`~nbo.models.xlearner.out_of_fold_calibration`): a decision picks
the pairs whose noisy estimate is highest, where uncalibrated estimates run high.

Without randomized data nothing can be measured: the model says so (``measured_`` false and
``reason_``) and predicts :func:`assumed_uplift`, an assumption, flagged
``uplift_measured = false`` on every row. See docs/uplift.md.
"""

from __future__ import annotations

from datetime import datetime
from typing import overload

import numpy as np
import polars as pl
from pydantic import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from nbo.data.audience import randomized_audience
from nbo.data.io import ClubData
from nbo.features.history import History
from nbo.features.offers import FEATURES, features_at_starts
from nbo.models.params import LeafNodes, check_params
from nbo.models.purchase import purchase_labels
from nbo.models.response import (
    PairsError,
    boosting_params,
    campaign_types,
    pair_matrix,
    score_pairs,
)
from nbo.models.uplift_calibration import EffectCalibration
from nbo.models.xlearner import XLearner, out_of_fold_calibration

__all__ = ["OfferUplift", "XLearner", "assumed_uplift", "randomized_pairs"]

SCORED = ("member_id", "offer_id", "p_buy", "p_redeem")


@overload
def assumed_uplift(p_redeem: pl.Expr, p_buy: pl.Expr) -> pl.Expr: ...
@overload
def assumed_uplift(p_redeem: np.ndarray, p_buy: np.ndarray) -> np.ndarray: ...
def assumed_uplift(
    p_redeem: pl.Expr | np.ndarray, p_buy: pl.Expr | np.ndarray
) -> pl.Expr | np.ndarray:
    """The assumed uplift where none is measured: ``p_redeem × (1 − p_buy)``.

    A redemption is incremental only where the member would not have bought anyway: it
    shrinks as ``p_buy`` grows and never exceeds ``p_redeem``. An assumption, not a measurement.
    """
    return p_redeem * (1 - p_buy)


def randomized_pairs(
    club: ClubData, campaigns: pl.DataFrame, exposure: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Randomized (member, offer) pairs of those ``campaigns``: the club's audiences with
    treated and control members, and the service's ``exposure`` from its interaction history
    (:func:`~nbo.data.audience.randomized_audience`).

    Columns member_id, offer_id, campaign_id, start_date, treated, from_history, sorted by
    campaign, member and offer. Empty when no campaign was randomized.
    """
    pairs = randomized_audience(
        club.campaign_audience, club.offers, None if exposure is None else exposure.lazy()
    )
    return (
        pairs.join(campaigns.lazy().select("campaign_id", "start_date"), on="campaign_id")
        .select("member_id", "offer_id", "campaign_id", "start_date", "treated", "from_history")
        .sort("campaign_id", "member_id", "offer_id")
        .collect()
    )


class OfferUplift(BaseEstimator):  # type: ignore[misc]
    """P(buy | offer) − P(buy | no offer), measured on randomized campaigns where there are any.

    Parameters
    ----------
    max_iter, learning_rate, max_leaf_nodes, min_samples_leaf, l2_regularization
        Passed to each of the X-learner's four gradient-boosted tree models.
    max_train_pairs
        Randomized pairs sampled to learn from (controls and treated alike).
    min_control_pairs
        Fewer control pairs than this is too little to measure anything: fall back.
    calibration_bins, calibration_min_controls
        Quantile bins of the out-of-fold calibration of the estimates
        (:mod:`~nbo.models.uplift_calibration`), done with at least that many control pairs
        (0 bins: never). With fewer, each half's learner is much noisier than the whole's
        and the map learned on the halves flattens the whole's estimates too far.
    include_running
        Also learn from campaigns still running at ``as_of`` (windows cut there).
    batch_size
        Pairs scored per feature pass in :meth:`predict`.
    random_state
        Seed for the pair sample and the models.
    """

    def __init__(
        self,
        *,
        max_iter: PositiveInt = 100,
        learning_rate: PositiveFloat = 0.1,
        max_leaf_nodes: LeafNodes = 7,
        min_samples_leaf: PositiveInt = 20,
        l2_regularization: NonNegativeFloat = 1.0,
        max_train_pairs: PositiveInt = 100_000,
        min_control_pairs: NonNegativeInt = 50,
        calibration_bins: NonNegativeInt = 10,
        calibration_min_controls: NonNegativeInt = 5_000,
        include_running: bool = False,
        batch_size: PositiveInt = 1_000_000,
        random_state: int | None = 0,
    ) -> None:
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.max_train_pairs = max_train_pairs
        self.min_control_pairs = min_control_pairs
        self.calibration_bins = calibration_bins
        self.calibration_min_controls = calibration_min_controls
        self.include_running = include_running
        self.batch_size = batch_size
        self.random_state = random_state

    def fit(self, history: History, exposure: pl.DataFrame | None = None) -> OfferUplift:
        """Fit the X-learner on randomized campaigns before ``as_of``, or record why not.

        ``exposure``: the service's randomized exposure (``InteractionStore.randomized_exposure``:
        member_id, offer_id, campaign_id, treated, decided_at); rows decided at or after
        ``as_of`` are ignored.
        """
        check_params(self)
        self.as_of_: datetime = history.as_of
        self.measured_: bool = False
        self.n_train_pairs_: int = 0
        self.learner_: XLearner | None = None
        self.calibration_: EffectCalibration | None = None
        campaigns = history.campaigns
        if not self.include_running:
            campaigns = campaigns.filter(pl.col("end_date") < history.as_of_date)
        if exposure is not None:
            exposure = exposure.filter(pl.col("decided_at") < history.as_of)
        pairs = randomized_pairs(history.club, campaigns.collect(), exposure)
        when = f"before {history.as_of:%Y-%m-%d}"
        controls = "treated" in history.club.campaign_audience.collect_schema().names()
        if not controls and (exposure is None or exposure.is_empty()):
            self.reason_: str = f"no randomized exposure {when}: the audiences have no controls"
            return self
        if pairs.height > self.max_train_pairs:
            pairs = pairs.sample(self.max_train_pairs, seed=self.random_state).sort(
                "campaign_id", "member_id", "offer_id"
            )
        n_control = int((~pairs["treated"]).sum()) if pairs.height else 0
        if n_control < self.min_control_pairs:
            self.reason_ = (
                f"no randomized exposure {when}: {n_control} control pairs in campaigns with "
                f"treated and control members (need {self.min_control_pairs})"
            )
            return self
        labelled = purchase_labels(pairs, history.transactions, history.club)
        arms = labelled.group_by("treated").agg(pl.col("label").n_unique())
        if arms.height < 2 or (arms["label"] < 2).any():
            self.reason_ = (
                f"randomized campaigns {when} have an arm where everyone or no one bought"
            )
            return self
        features = features_at_starts(history.club, labelled).sort(
            "campaign_id", "member_id", "offer_id"
        )  # the fit sees one row order, always
        self.campaign_types_: list[str] = campaign_types(features)
        self.feature_names_: list[str] = [
            *FEATURES,
            *(f"campaign_type={t}" for t in self.campaign_types_),
        ]
        treated = features["treated"].to_numpy()
        propensity = float(treated.mean())  # the randomization's treated share, pooled
        matrix, label = pair_matrix(features, self.campaign_types_), features["label"].to_numpy()
        self.learner_ = XLearner.fit(matrix, treated, label, propensity, boosting_params(self))
        if self.calibration_bins and n_control >= self.calibration_min_controls:
            self.calibration_ = out_of_fold_calibration(
                matrix, treated, label, propensity, boosting_params(self),
                members=features["member_id"].to_numpy(), bins=self.calibration_bins,
                seed=self.random_state,
            )  # fmt: skip
        self.measured_ = True
        self.n_train_pairs_ = features.height
        campaign_count = labelled["campaign_id"].n_unique()
        self.reason_ = (
            f"X-learner on {features.height} pairs ({n_control} control) of "
            f"{campaign_count} randomized campaign(s) {when}"
        )
        if self.calibration_ is not None:
            self.reason_ += f", calibrated out of fold ({self.calibration_.knots.size} bins)"
        served = features.filter(pl.col("from_history"))
        if served.height:
            self.reason_ += (
                f"; {served.height} pairs ({int((~served['treated']).sum())} holdout) from the "
                "service's champion and holdout in the interaction history"
            )
        return self

    def predict(
        self,
        history: History,
        scored: pl.DataFrame,
        *,
        receipts: pl.LazyFrame | None = None,
        offers: pl.LazyFrame | None = None,
    ) -> pl.DataFrame:
        """uplift of each pair of ``scored`` (member_id, offer_id, p_buy, p_redeem).

        Returns member_id, offer_id, uplift, uplift_measured in input order: the learner's
        estimate where the model was measured, else :func:`assumed_uplift` flagged false.
        ``receipts`` and ``offers`` as in :func:`~nbo.models.response.score_pairs`.
        """
        if not hasattr(self, "measured_"):
            raise NotFittedError("OfferUplift is not fitted yet; call fit(history) first")
        missing = [c for c in SCORED if c not in scored.columns]
        if missing:
            raise PairsError(f"scored pairs need columns {', '.join(SCORED)}; missing {missing}")
        probabilities = scored.select(pl.col("p_buy", "p_redeem").cast(pl.Float64))
        bad = probabilities.filter(
            pl.any_horizontal(pl.all().is_null() | pl.all().is_nan() | ~pl.all().is_between(0, 1))
        )
        if bad.height:
            raise PairsError(
                f"{bad.height} scored pair(s) have p_buy or p_redeem missing or outside [0, 1]"
            )
        if self.learner_ is None:
            keyed = scored.select(
                pl.col("member_id").cast(pl.Int64), pl.col("offer_id").cast(pl.String)
            )
            uplift = assumed_uplift(
                probabilities["p_redeem"].to_numpy(), probabilities["p_buy"].to_numpy()
            )
        else:
            # a model trained before the calibration existed has none: used as it was
            learner, calibration = self.learner_, getattr(self, "calibration_", None)

            def effect(features: pl.DataFrame) -> np.ndarray:
                estimate = learner.effect(pair_matrix(features, self.campaign_types_))
                return estimate if calibration is None else calibration(estimate)

            keyed, uplift = score_pairs(
                history,
                scored,
                effect,
                batch_size=self.batch_size,
                receipts=receipts,
                offers=offers,
            )
        return keyed.with_columns(
            uplift=pl.Series(uplift, dtype=pl.Float64),
            uplift_measured=pl.lit(self.learner_ is not None, dtype=pl.Boolean),
        )
