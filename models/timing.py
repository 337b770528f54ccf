"""Visit timing: how many times, on which days and at what hour a member will shop next.

A *visit* is one basket (receipt); see :mod:`nbo.features.visits`. :class:`VisitTiming` learns
from the past only: its examples are the members known at cutoffs ``as_of - horizon_days -
k * window_step_days``, with point-in-time features there and their visits over the next
``horizon_days`` as the label, so every label ends by ``as_of``
(:mod:`nbo.models.visit_windows`).

Two count models learn from them (:mod:`nbo.models.visit_counts`): a Poisson mean on windows
that do not overlap (``expected_visits``, and through the member's weekday profile the
day-level ``p_visit``, :mod:`nbo.models.visit_days`) and a median trained with absolute error
on every window (``likely_visits``). The most recent window is held out once, against models
of the windows whose labels end before it starts, to pick each model's number of boosting
rounds, to measure the over-dispersion of counts (a negative binomial ``alpha_``) and to
calibrate the day-level visit probabilities (isotonic); both models are then refitted on every
window. Both see BG/NBD's forecast at their cutoff, and the mean model takes BG/NBD's
expectation as its offset, so the trees only learn what the classic misses
(:mod:`nbo.models.visit_btyd`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

import numpy as np
import polars as pl
from pydantic import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.isotonic import IsotonicRegression
from sklearn.utils import check_random_state
from threadpoolctl import threadpool_limits

from nbo.features.history import History
from nbo.features.visits import (
    history_visits,
    preferred_hours,
    visit_features,
    with_base_rate,
)
from nbo.models.params import LeafNodes, check_params
from nbo.models.visit_btyd import btyd_features, btyd_training_features, fit_btyd
from nbo.models.visit_counts import CountModels, nb_median, never_visited_mean
from nbo.models.visit_days import day_rates, median_days, visited_days, weekday_shares
from nbo.models.visit_windows import window_cutoffs, window_examples

__all__ = ["P_VISIT_DAYS", "VisitTiming"]

P_VISIT_DAYS = 14
"""Days covered by ``p_visit``; day 0 is the ``as_of`` day itself."""

_MIN_CALIBRATION_ROWS = 1_000  # member-days; fewer and p_visit stays 1 - exp(-rate)
_OUTPUT = (
    "member_id", "expected_visits", "likely_visits", "p_visit", "next_visit_date",
    "preferred_weekday", "preferred_hour", "days_since_last_visit", "usual_gap_days",
    "lapsing", "cold_start",
)  # fmt: skip


class VisitTiming(BaseEstimator):  # type: ignore[misc]
    """Expected visits over a horizon, day-level visit probabilities, weekday/hour, lapsing.

    Parameters
    ----------
    horizon_days
        Length of the window whose visits are predicted, and of the training windows. On a
        history shorter than it plus a step, the count models learn half the history (at
        least 7 days; ``trained_horizon_days_``), scaled up to ``horizon_days``.
    n_windows, window_step_days
        Number of earlier cutoffs the training examples come from, and the days between them.
    max_train_members
        Members sampled (with ``random_state``) for training on a big club; all if fewer.
        Every cutoff contributes a row per sampled member known then.
    min_visits
        Members with fewer visits before ``as_of`` are ``cold_start``: they get the club's
        weekday, hour, day profile and usual gap. Their counts still come from the count models
        (trained on such members too, it is their segment's given recency and tenure); the mean
        of members who never visited is the training average of never-visited members.
    lapse_gap_multiple, lapse_min_days
        ``lapsing``: days since the last visit exceed both ``lapse_gap_multiple`` times the
        member's usual (median) gap between visit days over the last year and
        ``lapse_min_days``. Cold-start members, or members without two gaps, use the club's
        median usual gap. Members who never visited are not lapsing.
    profile_prior
        Pseudo-visits of the club weekday profile mixed into each member's.
    max_iter, learning_rate, max_leaf_nodes, min_samples_leaf, l2_regularization
        Gradient boosting settings of both count models; the rounds used are chosen on the
        held-out window.
    n_threads
        OpenMP threads of the boosting (None: all cores). 1 is much faster on a busy machine.
    random_state
        Seed of the member sample (the boosting itself is deterministic).
    """

    def __init__(
        self,
        *,
        horizon_days: PositiveInt = 28,
        n_windows: PositiveInt = 26,
        window_step_days: PositiveInt = 7,
        max_train_members: PositiveInt = 25_000,
        min_visits: PositiveInt = 3,
        lapse_gap_multiple: PositiveFloat = 3.0,
        lapse_min_days: NonNegativeInt = 21,
        profile_prior: NonNegativeFloat = 2.0,
        max_iter: PositiveInt = 300,
        learning_rate: PositiveFloat = 0.1,
        max_leaf_nodes: LeafNodes = 15,
        min_samples_leaf: PositiveInt = 40,
        l2_regularization: NonNegativeFloat = 1.0,
        n_threads: PositiveInt | None = None,
        random_state: int | None = 0,
    ) -> None:
        self.horizon_days = horizon_days
        self.n_windows = n_windows
        self.window_step_days = window_step_days
        self.max_train_members = max_train_members
        self.min_visits = min_visits
        self.lapse_gap_multiple = lapse_gap_multiple
        self.lapse_min_days = lapse_min_days
        self.profile_prior = profile_prior
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.n_threads = n_threads
        self.random_state = random_state

    def fit(self, history: History) -> VisitTiming:
        """Learn from visits before ``history.as_of`` at ``n_windows`` earlier cutoffs."""
        check_params(self)
        with threadpool_limits(self.n_threads, user_api="openmp"):
            return self._fit(history, check_random_state(self.random_state))

    def _fit(self, history: History, rng: np.random.RandomState) -> VisitTiming:
        sample = history.members.select("member_id").collect().sort("member_id")
        if sample.height > self.max_train_members:
            chosen = rng.choice(sample.height, self.max_train_members, replace=False)
            sample = sample[np.sort(chosen)]
        # one pass over the receipts serves every cutoff
        visits = history_visits(history, hours=False).join(
            sample.lazy(), on="member_id", how="semi"
        )
        visits = visits.collect().lazy()
        first_day = visits.select(pl.col("day").min()).collect().item()
        self.trained_horizon_days_ = self.horizon_days
        if first_day is not None and history.as_of_date - first_day < timedelta(
            days=self.horizon_days + self.window_step_days
        ):
            # a history hardly longer than the horizon: learn a shorter one, scaled up
            days = (history.as_of_date - first_day).days
            self.trained_horizon_days_ = min(self.horizon_days, max(7, days // 2))
        self.cutoffs_ = window_cutoffs(
            history.as_of_date,
            first_day,
            horizon_days=self._trained_h,
            step_days=self.window_step_days,
            n_windows=self.n_windows,
        )
        train = window_examples(history, visits, sample, self.cutoffs_, self._trained_h)
        if train.height:
            train, self.btyd_params_ = btyd_training_features(
                train, visits, self.cutoffs_, self._trained_h
            )
        # the mean model's windows do not overlap: every ceil(horizon / step)-th cutoff
        spaced = pl.col("cutoff").is_in(
            self.cutoffs_[:: -(-self._trained_h // self.window_step_days)]
        )
        if train.height == 0 or train.filter(spaced)["visits"].sum() == 0:
            since = f"between {self.cutoffs_[-1]} and" if self.cutoffs_ else "before"
            raise ValueError(
                f"no visits {since} {history.as_of_date}: nothing to learn visit timing from "
                "(a later as_of, or fewer/shorter windows?)"
            )
        self.n_train_examples_ = train.height
        self.never_visited_visits_ = never_visited_mean(train, self.min_visits)
        boosting = {
            "max_iter": self.max_iter,
            "learning_rate": self.learning_rate,
            "max_leaf_nodes": self.max_leaf_nodes,
            "min_samples_leaf": self.min_samples_leaf,
            "l2_regularization": self.l2_regularization,
        }
        held_out = train.filter(pl.col("cutoff") == self.cutoffs_[0])
        # their labels end before the held-out window starts
        earlier = pl.col("cutoff") <= self.cutoffs_[0] - timedelta(days=self._trained_h)
        if train.filter(earlier & spaced)["visits"].sum() == 0:
            # no window ends before the held-out one starts (a history not much longer than
            # the horizon): the rounds are chosen on a fifth of the members instead, or on a
            # small club, where that would be noise, one round on the offset calibrates it
            validating = pl.col("member_id").hash(rng.randint(2**31)) % 5 == 0
            if held_out.height >= 500:
                held_out, earlier = held_out.filter(validating), ~validating
            else:
                boosting["max_iter"] = 1
        self.counts_ = CountModels(boosting).fit(train.filter(spaced), train, held_out, earlier)
        self.n_iter_, self.n_iter_median_ = self.counts_.n_iter_mean_, self.counts_.n_iter_median_
        self.alpha_ = self.counts_.alpha_
        self.calibrator_: IsotonicRegression | None = None
        if self.counts_.held_out_mean_ is not None:
            self._calibrate(held_out, self.counts_.held_out_mean_, visits)
        return self

    def _calibrate(self, held_out: pl.DataFrame, mu: np.ndarray, visits: pl.LazyFrame) -> None:
        """Day-level visit probabilities against the first days of the held-out window."""
        start, days = self.cutoffs_[0], min(P_VISIT_DAYS, self._trained_h)  # before as_of
        rates = self._day_rates(
            held_out, self._mean(held_out, mu), self._cold(held_out), start, days
        )
        if rates.size >= _MIN_CALIBRATION_ROWS:
            truth = visited_days(held_out, visits, start, days)
            self.calibrator_ = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
            self.calibrator_.fit(rates.ravel(), truth.ravel())

    def predict(self, history: History, horizon_days: int | None = None) -> pl.DataFrame:
        """Visit timing of every member of ``history.members``, from visits before ``as_of``.

        ``expected_visits`` is the mean number of visits (baskets) in ``[as_of, as_of +
        horizon_days)``, scaled linearly from the trained horizon; ``likely_visits`` their
        median (the point forecast with the least absolute error): the median model's over the
        trained horizon, else (or where that was the better on the held-out window) the median
        of a negative binomial with that mean and ``alpha_``.
        ``p_visit[d]`` is P(a visit on day ``as_of + d``) from the member's rate and weekday
        profile. ``next_visit_date`` is the median day of the next visit: the first day by
        which a visit is more likely than not (past the ``p_visit`` days extrapolated at the
        member's average daily probability, capped at a year).
        """
        if not hasattr(self, "counts_"):
            raise NotFittedError("VisitTiming is not fitted yet; call fit(history) first")
        h = self.horizon_days if horizon_days is None else horizon_days
        if h < 1:
            raise ValueError(f"horizon_days must be >= 1, got {h}")
        with threadpool_limits(self.n_threads, user_api="openmp"):
            return self._predict(history, h)

    def _predict(self, history: History, h: int) -> pl.DataFrame:
        as_of = history.as_of_date
        visits = history_visits(history).collect().lazy()
        features, hours, club_hours = pl.collect_all(
            [
                with_base_rate(visit_features(visits, history.members, as_of), self._trained_h),
                preferred_hours(visits, as_of),
                visits.group_by("hour")
                .agg(pl.col("baskets").sum())
                .sort("baskets", "hour", descending=[True, False]),
            ]
        )
        features = features.sort("member_id")
        if hasattr(self, "btyd_params_"):  # fitted before BTYD's features: none
            btyd = fit_btyd(visits, as_of, self.btyd_params_)
            features = btyd_features(features, visits, as_of, self._trained_h, btyd)
        cold = self._cold(features)
        # the median model's trees on another core while the mean and p_visit are worked out
        with ThreadPoolExecutor(1) as pool:
            own = h == self._trained_h and not getattr(self.counts_, "median_from_mean_", False)
            median = pool.submit(self.counts_.median, features) if own else None
            mean_h = self._mean(features, self.counts_.mean(features))
            days = self._day_rates(features, mean_h, cold, as_of, P_VISIT_DAYS)
            p_visit = self._probabilities(days)
            expected = mean_h * h / self._trained_h
            likely = nb_median(expected, self.alpha_) if median is None else median.result()
        shares = weekday_shares(features, cold, self.profile_prior)
        gap = features["gap_median"].fill_null(np.nan).to_numpy()
        own_gap = ~cold & ~np.isnan(gap)
        club_gap = float(np.median(gap[own_gap])) if own_gap.any() else 7.0
        since_last = pl.col("days_since_last_visit")
        lapsing = (since_last > self.lapse_gap_multiple * pl.col("usual_gap_days")) & (
            since_last > self.lapse_min_days
        )
        club_hour = int(club_hours["hour"][0]) if club_hours.height else 12  # ties: earliest
        return (
            features.select("member_id", "days_since_last_visit")
            .with_columns(
                pl.Series("expected_visits", expected, dtype=pl.Float64),
                pl.Series("likely_visits", likely, dtype=pl.Int32),
                pl.Series("p_visit", p_visit).cast(pl.List(pl.Float64)),
                pl.Series("_days", median_days(p_visit), dtype=pl.Int32),
                pl.Series("preferred_weekday", shares.argmax(axis=1), dtype=pl.Int8),
                pl.Series("usual_gap_days", np.where(np.isnan(gap) | cold, club_gap, gap)),
                pl.Series("cold_start", cold, dtype=pl.Boolean),
            )
            .join(hours, on="member_id", how="left")
            .with_columns(
                (pl.lit(as_of) + pl.duration(days=pl.col("_days"))).alias("next_visit_date"),
                pl.when(~pl.col("cold_start"))
                .then(pl.col("preferred_hour"))
                .fill_null(club_hour)
                .cast(pl.Int8)
                .alias("preferred_hour"),
                lapsing.fill_null(False).alias("lapsing"),
            )
            .select(_OUTPUT)
        )

    @property
    def _trained_h(self) -> int:
        """The horizon the count models learnt (shorter than ``horizon_days`` on a short
        history; models fitted before that choice learnt ``horizon_days``)."""
        return int(getattr(self, "trained_horizon_days_", self.horizon_days))

    def _mean(self, features: pl.DataFrame, model_mean: np.ndarray) -> np.ndarray:
        """The count model's mean, or the never-visited average for members without a visit."""
        never = features["visits_total"].to_numpy() == 0
        return np.where(never, self.never_visited_visits_, model_mean)

    def _cold(self, features: pl.DataFrame) -> np.ndarray:
        return np.asarray(features["visits_total"].to_numpy() < self.min_visits)

    def _day_rates(
        self, features: pl.DataFrame, mean_h: np.ndarray, cold: np.ndarray, start: date, days: int
    ) -> np.ndarray:
        shares = weekday_shares(features, cold, self.profile_prior)
        return day_rates(features, mean_h, self._trained_h, shares, cold, start, days)

    def _probabilities(self, rates: np.ndarray) -> np.ndarray:
        if self.calibrator_ is None:
            return np.asarray(1.0 - np.exp(-rates))
        return np.asarray(self.calibrator_.predict(rates.ravel()), dtype=float).reshape(rates.shape)
