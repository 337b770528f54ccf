"""Visit timing: how many times, on which days and at what hour a member will shop next.

A *visit* is one basket (receipt); see :mod:`nbo.features.visits`. :class:`VisitTiming` learns
from the past only: training examples are the members of ``History.at(club, c)`` at cutoffs
``c = as_of - k * horizon_days`` (``k = 1..n_windows``), with point-in-time visit features at
``c`` and the number of visits in ``[c, c + horizon_days)`` as the label, all before ``as_of``.

The count model is a Poisson gradient-boosted regression with an offset: it learns a multiplier
on a shrunk recent rate (last 91 days, pulled toward the club rate), so it stays sensible on a
handful of members and learns recency, regularity and trend effects on a large club. The most
recent window is held out once to pick the number of boosting rounds, to measure the
over-dispersion of counts (a negative binomial ``alpha_``) and to calibrate the day-level visit
probabilities (isotonic); the model is then refitted on every window.
"""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import polars as pl
from scipy.stats import nbinom, poisson
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.exceptions import NotFittedError
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import mean_poisson_deviance
from sklearn.utils import check_random_state
from threadpoolctl import threadpool_limits

from nbo.features.history import History
from nbo.features.visits import (
    BASE_RATE_COLUMNS,
    FEATURE_COLUMNS,
    WEEKDAY_COLUMNS,
    history_visits,
    preferred_hours,
    visit_features,
    visits_between,
    with_base_rate,
)

__all__ = ["P_VISIT_DAYS", "VisitTiming"]

P_VISIT_DAYS = 14
"""Days covered by ``p_visit``; day 0 is the ``as_of`` day itself."""

_MAX_NEXT_VISIT_DAYS = 365
_MIN_CALIBRATION_ROWS = 1_000  # member-days; fewer and p_visit stays 1 - exp(-rate)
_OUTPUT = (
    "member_id", "expected_visits", "likely_visits", "p_visit", "next_visit_date",
    "preferred_weekday", "preferred_hour", "days_since_last_visit", "usual_gap_days",
    "lapsing", "cold_start",
)  # fmt: skip


class VisitTiming:
    """Expected visits over a horizon, day-level visit probabilities, weekday/hour, lapsing.

    Parameters
    ----------
    horizon_days
        Length of the window whose visits are predicted, and of the training windows.
    n_windows
        Number of earlier cutoffs the training examples come from.
    max_train_members
        Members sampled (with ``random_state``) for training on a big club; all if fewer.
    min_visits
        Members with fewer visits before ``as_of`` are ``cold_start``: they get the club's
        weekday, hour, day profile and usual gap. Their counts still come from the count model
        (trained on such members too, it is their segment average given recency and tenure);
        members who never visited get the training average of never-visited members.
    lapse_gap_multiple, lapse_min_days
        ``lapsing``: days since the last visit exceed both ``lapse_gap_multiple`` times the
        member's usual (median) gap between visit days over the last year and
        ``lapse_min_days``. Cold-start members, or members without two gaps, use the club's
        median usual gap. Members who never visited are not lapsing.
    profile_prior
        Pseudo-visits of the club weekday profile mixed into each member's.
    max_iter, learning_rate, max_leaf_nodes, min_samples_leaf, l2_regularization
        Gradient boosting settings; the rounds used are chosen on the held-out window.
    n_threads
        OpenMP threads of the boosting (None: all cores). 1 is much faster on a busy machine.
    random_state
        Seed of the member sample (the boosting itself is deterministic).
    """

    def __init__(
        self,
        *,
        horizon_days: int = 28,
        n_windows: int = 6,
        max_train_members: int = 100_000,
        min_visits: int = 3,
        lapse_gap_multiple: float = 3.0,
        lapse_min_days: int = 21,
        profile_prior: float = 2.0,
        max_iter: int = 300,
        learning_rate: float = 0.05,
        max_leaf_nodes: int = 15,
        min_samples_leaf: int = 40,
        l2_regularization: float = 1.0,
        n_threads: int | None = None,
        random_state: int | None = 0,
    ) -> None:
        self.horizon_days = horizon_days
        self.n_windows = n_windows
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
        if min(self.horizon_days, self.n_windows, self.max_train_members, self.min_visits) < 1:
            raise ValueError("horizon_days, n_windows, max_train_members, min_visits must be >= 1")
        if self.lapse_gap_multiple <= 0 or self.profile_prior < 0 or self.max_iter < 1:
            raise ValueError("lapse_gap_multiple must be > 0, profile_prior >= 0, max_iter >= 1")
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
        days = [timedelta(days=self.horizon_days * k) for k in range(1, self.n_windows + 1)]
        self.cutoffs_ = [history.as_of_date - d for d in days]
        train = (
            pl.concat(
                self._examples(History.at(history.club, cutoff), visits, sample).with_columns(
                    pl.lit(k).alias("window")
                )
                for k, cutoff in enumerate(self.cutoffs_, start=1)
            )
            .collect()
            .sort("window", "member_id")
        )
        if train["visits"].sum() == 0:
            raise ValueError(
                f"no visits between {self.cutoffs_[-1]} and {history.as_of_date}: nothing to "
                "learn visit timing from (a later as_of, or fewer/shorter windows?)"
            )
        self.n_train_examples_ = train.height
        self.never_visited_visits_ = _never_visited_mean(train, self.min_visits)
        self.n_iter_, self.alpha_ = self.max_iter, 0.0
        self.calibrator_: IsotonicRegression | None = None
        held_out, earlier = train.filter(pl.col("window") == 1), train.filter(pl.col("window") > 1)
        if held_out.height and earlier["visits"].sum() > 0:
            self._validate(earlier, held_out, visits)
        x, y, base = _design(train)
        self.regressor_ = self._regressor(self.n_iter_).fit(x, y / base, sample_weight=base)
        return self

    def _examples(
        self, history: History, visits: pl.LazyFrame, sample: pl.DataFrame
    ) -> pl.LazyFrame:
        """Features of ``history``'s sampled members and their visits in the next horizon."""
        cutoff, h = history.as_of_date, self.horizon_days
        members = history.members.join(sample.lazy(), on="member_id", how="semi")
        return (
            with_base_rate(visit_features(visits, members, cutoff), h)
            .join(visits_between(visits, cutoff, h), on="member_id", how="left")
            .with_columns(pl.col("visits").fill_null(0))
        )

    def _regressor(self, max_iter: int) -> HistGradientBoostingRegressor:
        return HistGradientBoostingRegressor(
            loss="poisson",
            max_iter=max_iter,
            learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization,
            early_stopping=False,
        )

    def _validate(
        self, earlier: pl.DataFrame, held_out: pl.DataFrame, visits: pl.LazyFrame
    ) -> None:
        """Rounds, over-dispersion and day calibration on the most recent window, held out."""
        x, y, base = _design(earlier)
        model = self._regressor(self.max_iter).fit(x, y / base, sample_weight=base)
        xv, yv, base_v = _design(held_out)
        best, mu = math.inf, base_v
        for rounds, ratio in enumerate(model.staged_predict(xv), start=1):
            deviance = mean_poisson_deviance(yv, base_v * ratio)
            if deviance < best:
                best, self.n_iter_, mu = deviance, rounds, base_v * ratio
        self.alpha_ = max(0.0, float(np.mean((yv - mu) ** 2 - mu) / np.mean(mu**2)))
        cold, mu = self._cold(held_out), self._mean(held_out, mu)
        start, days = self.cutoffs_[0], min(P_VISIT_DAYS, self.horizon_days)  # before as_of
        rates = self._day_rates(held_out, mu, start, days, cold)
        visited = (
            held_out.select("member_id")
            .with_row_index("row")
            .lazy()
            .join(visits.filter(pl.col("day") >= start), on="member_id")
            .select("row", (pl.col("day") - pl.lit(start)).dt.total_days().alias("d"))
            .filter(pl.col("d") < days)
            .collect()
        )
        truth = np.zeros_like(rates)
        truth[visited["row"].to_numpy(), visited["d"].to_numpy()] = 1.0
        if rates.size >= _MIN_CALIBRATION_ROWS:
            self.calibrator_ = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
            self.calibrator_.fit(rates.ravel(), truth.ravel())

    def predict(self, history: History, horizon_days: int | None = None) -> pl.DataFrame:
        """Visit timing of every member of ``history.members``, from visits before ``as_of``.

        ``expected_visits`` is the mean number of visits (baskets) in ``[as_of, as_of +
        horizon_days)``, scaled linearly from the trained horizon; ``likely_visits`` its median
        under the fitted negative binomial (the point forecast with the least absolute error).
        ``p_visit[d]`` is P(a visit on day ``as_of + d``) from the member's rate and weekday
        profile. ``next_visit_date`` is the median day of the next visit: the first day by
        which a visit is more likely than not (past the ``p_visit`` days extrapolated at the
        member's average daily probability, capped at a year).
        """
        if not hasattr(self, "regressor_"):
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
                with_base_rate(visit_features(visits, history.members, as_of), self.horizon_days),
                preferred_hours(visits, as_of),
                visits.group_by("hour")
                .agg(pl.col("baskets").sum())
                .sort("baskets", "hour", descending=[True, False]),
            ]
        )
        features = features.sort("member_id")
        x, _, base = _design(features)
        cold = self._cold(features)
        mean_h = self._mean(
            features, base * self.regressor_.predict(x) if features.height else base
        )
        p_visit = self._probabilities(self._day_rates(features, mean_h, as_of, P_VISIT_DAYS, cold))
        expected = mean_h * h / self.horizon_days
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
                pl.Series("likely_visits", self._median(expected), dtype=pl.Int32),
                pl.Series("p_visit", p_visit).cast(pl.List(pl.Float64)),
                pl.Series("_days", _median_days(p_visit), dtype=pl.Int32),
                pl.Series(
                    "preferred_weekday", self._shares(features, cold).argmax(axis=1), dtype=pl.Int8
                ),
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

    def _mean(self, features: pl.DataFrame, model_mean: np.ndarray) -> np.ndarray:
        """The count model's mean, or the never-visited average for members without a visit."""
        never = features["visits_total"].to_numpy() == 0
        return np.where(never, self.never_visited_visits_, model_mean)

    def _cold(self, features: pl.DataFrame) -> np.ndarray:
        return np.asarray(features["visits_total"].to_numpy() < self.min_visits)

    def _shares(self, features: pl.DataFrame, cold: np.ndarray) -> np.ndarray:
        """Members' share of visits per weekday (Mon..Sun), with the club's as a prior."""
        counts = features.select(pl.col(WEEKDAY_COLUMNS).cast(pl.Float64)).to_numpy()
        club = counts.sum(axis=0) + 1.0  # +1: a weekday nobody visits yet is not impossible
        counts[cold] = 0.0
        prior = self.profile_prior * club / club.sum()
        return np.asarray((counts + prior) / (counts.sum(axis=1, keepdims=True) + prior.sum()))

    def _day_rates(
        self, features: pl.DataFrame, mean_h: np.ndarray, start: date, days: int, cold: np.ndarray
    ) -> np.ndarray:
        """Expected visit days on each of ``days`` days from ``start`` (members × days)."""
        per_day = features["baskets_per_visit_day"].fill_null(1.0).to_numpy()
        club_per_day = float(np.mean(per_day[~cold])) if (~cold).any() else 1.0
        per_day = np.where(cold, club_per_day, np.maximum(per_day, 1.0))
        weekdays = (start.weekday() + np.arange(days)) % 7
        daily = mean_h / self.horizon_days / per_day
        return np.asarray(daily[:, None] * 7.0 * self._shares(features, cold)[:, weekdays])

    def _probabilities(self, rates: np.ndarray) -> np.ndarray:
        if self.calibrator_ is None:
            return np.asarray(1.0 - np.exp(-rates))
        return np.asarray(self.calibrator_.predict(rates.ravel()), dtype=float).reshape(rates.shape)

    def _median(self, mean: np.ndarray) -> np.ndarray:
        """Median count of a negative binomial with this mean and the fitted ``alpha_``."""
        mean = np.maximum(mean, 1e-9)
        if self.alpha_ <= 1e-6:
            return np.asarray(poisson.median(mean), dtype=np.int64)
        size = 1.0 / self.alpha_
        return np.asarray(nbinom.median(size, size / (size + mean)), dtype=np.int64)


def _design(frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Feature matrix (nulls as NaN), label (zeros where absent) and offset of a frame."""
    x = frame.select(pl.col(*FEATURE_COLUMNS, *BASE_RATE_COLUMNS).cast(pl.Float64)).to_numpy()
    has_y = "visits" in frame.columns
    y = frame["visits"].cast(pl.Float64).to_numpy() if has_y else np.zeros(frame.height)
    return x, y, frame["base"].to_numpy()


def _never_visited_mean(train: pl.DataFrame, min_visits: int) -> float:
    """Mean label of never-visited examples, shrunk toward that of all cold-start examples."""
    overall = float(train["visits"].sum()) / train.height
    cold = train.filter(pl.col("visits_total") < min_visits)["visits", "visits_total"]
    cold_mean = (float(cold["visits"].sum()) + 20 * overall) / (cold.height + 20)
    never = cold.filter(pl.col("visits_total") == 0)["visits"]
    return (float(never.sum()) + 20 * cold_mean) / (never.len() + 20)


def _median_days(p_visit: np.ndarray) -> np.ndarray:
    """Days until the first day by which a visit is more likely than not (see predict)."""
    never = np.cumprod(1.0 - p_visit, axis=1)  # P(no visit on days 0..d)
    reached = never <= 0.5
    first = np.argmax(reached, axis=1)
    tail = ~reached.any(axis=1)
    if tail.any():
        mean_p = np.clip(p_visit[tail].mean(axis=1), 1e-9, 1.0 - 1e-9)
        extra = np.ceil(np.log(0.5 / never[tail, -1]) / np.log(1.0 - mean_p))
        first[tail] = np.minimum(p_visit.shape[1] - 1 + extra, _MAX_NEXT_VISIT_DAYS)
    return np.asarray(first)
