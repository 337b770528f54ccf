"""The count models behind :class:`~nbo.models.timing.VisitTiming`: a mean and a median.

Both are gradient-boosted trees over the point-in-time visit features of
:mod:`nbo.features.visits`. The *mean* model is a Poisson regression with an offset: it learns
a multiplier on ``base``, BG/NBD's expectation for members who visited (else their shrunk
recent rate, :mod:`nbo.models.visit_btyd`), so it stays sensible on a handful of members; it
gives ``expected_visits`` and, through the day profile, ``p_visit``. The *median* model is
trained directly with absolute error on ``log1p(visits)`` (the median commutes with that
transform), because the point forecast with the least absolute error is
the median, and the median of a member's count depends on more than its mean: a weekly
shopper's four visits are nearly certain, a bursty shopper's are not.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl
from scipy.stats import nbinom, poisson
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.metrics import mean_poisson_deviance

from nbo.features.visits import BASE_RATE_COLUMNS, FEATURE_COLUMNS, WEEKDAY_COLUMNS
from nbo.models.boosted import raw_predict
from nbo.models.visit_btyd import BTYD_COLUMNS

__all__ = [
    "MEAN_COLUMNS",
    "MEDIAN_COLUMNS",
    "CountModels",
    "FeatureBins",
    "design",
    "nb_median",
    "nb_p_zero",
    "never_visited_mean",
]

_LEGACY_MEAN_COLUMNS = (*FEATURE_COLUMNS, *BASE_RATE_COLUMNS)  # models fitted before BTYD
MEAN_COLUMNS = (*_LEGACY_MEAN_COLUMNS, *BTYD_COLUMNS)
"""Features of the mean model."""

MEDIAN_COLUMNS = tuple(
    c for c in MEAN_COLUMNS if c not in WEEKDAY_COLUMNS and not c.startswith("pace_")
)
"""Features of the median model: the weekday mix and the paces relative to the offset change
nothing there (measured on Complete Journey) and cost a quarter of its fitting time."""

_BINNING_ROWS = 200_000  # rows the bin edges are taken from on a big club, as boosting does
_PATIENCE = 20  # held-out rounds without improvement before a validation fit stops


def design(
    frame: pl.DataFrame, columns: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Feature matrix (nulls as NaN), label (zeros where absent) and offset of a frame."""
    x = frame.select(pl.col(*columns).cast(pl.Float64)).to_numpy()
    has_y = "visits" in frame.columns
    y = frame["visits"].cast(pl.Float64).to_numpy() if has_y else np.zeros(frame.height)
    return x, y, frame["base"].to_numpy()


class CountModels:
    """The mean and the median model, fitted together on examples with a ``visits`` label.

    ``boosting`` holds the HistGradientBoosting settings both share (``max_iter`` the most
    rounds either may use). Given a held-out window, each model's rounds are first chosen on
    it from a fit on the earlier examples (Poisson deviance for the mean, absolute error of the
    whole counts for the median), with the mean's over-dispersion ``alpha_`` and its mean on
    the held-out rows (``held_out_mean_``, for the caller's calibration).
    """

    def __init__(self, boosting: dict[str, Any]) -> None:
        self.boosting = boosting

    def fit(
        self,
        mean_rows: pl.DataFrame,
        median_rows: pl.DataFrame,
        held_out: pl.DataFrame | None = None,
        earlier: pl.Expr | None = None,
    ) -> CountModels:
        """Fit on ``mean_rows`` and ``median_rows``, after validating on ``held_out``.

        ``earlier`` selects the rows of both whose labels end before ``held_out``'s start: the
        validation fits learn from those only.
        """
        self.mean_columns_, self.median_columns_ = MEAN_COLUMNS, MEDIAN_COLUMNS
        x, y, base = design(mean_rows, MEAN_COLUMNS)
        self.bins_ = FeatureBins().fit(x)
        self.n_iter_mean_ = self.n_iter_median_ = int(self.boosting["max_iter"])
        self.alpha_ = 0.0
        self.median_from_mean_ = False
        self.held_out_mean_: np.ndarray | None = None
        if held_out is not None and held_out.height and earlier is not None:
            self._validate(mean_rows.filter(earlier), median_rows.filter(earlier), held_out)
        self.mean_ = self._regressor("poisson", self.n_iter_mean_)
        self.mean_.fit(self.bins_.transform(x), y / base, sample_weight=base)
        x, y, _ = design(median_rows, MEDIAN_COLUMNS)
        self.median_ = self._regressor("absolute_error", self.n_iter_median_)
        self.median_.fit(x, np.log1p(y))
        return self

    def mean(self, features: pl.DataFrame) -> np.ndarray:
        """Expected visits over the trained horizon."""
        x, _, base = design(features, self._columns()[0])
        if features.height == 0:
            return base
        mean: np.ndarray = base * _predict(self.mean_, self.bins_.transform(x))
        return mean

    def median(self, features: pl.DataFrame) -> np.ndarray:
        """Median visits over the trained horizon, whole counts."""
        if features.height == 0:
            return np.zeros(0, dtype=np.int64)
        x, _, _ = design(features, self._columns()[1])
        return _whole_counts(_predict(self.median_, x))

    def _columns(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Columns of the mean and median model as fitted (older fits: without BTYD's)."""
        legacy = tuple(c for c in MEDIAN_COLUMNS if c not in BTYD_COLUMNS)
        mean = getattr(self, "mean_columns_", _LEGACY_MEAN_COLUMNS)
        return mean, getattr(self, "median_columns_", legacy)

    def _regressor(
        self, loss: str, max_iter: int, *, validated: bool = False
    ) -> HistGradientBoostingRegressor:
        """Boosting of either model; ``validated``: stop once the held-out loss stalls."""
        settings = self.boosting | {"max_iter": max_iter}
        return HistGradientBoostingRegressor(
            loss=loss, early_stopping=validated, n_iter_no_change=_PATIENCE, **settings
        )

    def _validate(
        self, mean_rows: pl.DataFrame, median_rows: pl.DataFrame, held_out: pl.DataFrame
    ) -> None:
        x, y, base = design(mean_rows, MEAN_COLUMNS)
        xv, yv, base_v = design(held_out, MEAN_COLUMNS)
        if y.sum() == 0:
            return  # nothing to learn a rate from before the held-out window
        x, xv = self.bins_.transform(x), self.bins_.transform(xv)
        mean = self._regressor("poisson", self.n_iter_mean_, validated=True)
        mean.fit(
            x, y / base, sample_weight=base, X_val=xv, y_val=yv / base_v, sample_weight_val=base_v
        )
        best, mu = math.inf, base_v
        for rounds, ratio in enumerate(mean.staged_predict(xv), start=1):
            deviance = mean_poisson_deviance(yv, base_v * ratio)
            if deviance < best:
                best, self.n_iter_mean_, mu = deviance, rounds, base_v * ratio
        self.held_out_mean_ = mu
        self.alpha_ = max(0.0, float(np.mean((yv - mu) ** 2 - mu) / np.mean(mu**2)))
        x, y, _ = design(median_rows, MEDIAN_COLUMNS)
        xv, _, _ = design(held_out, MEDIAN_COLUMNS)
        median = self._regressor("absolute_error", self.n_iter_median_, validated=True)
        median.fit(x, np.log1p(y), X_val=xv, y_val=np.log1p(yv))
        errors = [np.mean(np.abs(yv - _whole_counts(p))) for p in median.staged_predict(xv)]
        self.n_iter_median_ = int(np.argmin(errors)) + 1  # ties: the fewest rounds
        # on short horizons the trees may not leave the club's median of 0: then the
        # negative binomial's median of the mean is the better point forecast
        self.median_from_mean_ = bool(
            np.mean(np.abs(yv - nb_median(mu, self.alpha_))) < min(errors)
        )


def _predict(model: HistGradientBoostingRegressor, x: np.ndarray) -> np.ndarray:
    """``model.predict(x)``, the trees walked on binned features (:mod:`nbo.models.boosted`)."""
    return np.asarray(model._loss.link.inverse(raw_predict(model, x)), dtype=np.float64)


def _whole_counts(log_median: np.ndarray) -> np.ndarray:
    """Whole visit counts from the median model's ``log1p`` scale."""
    return np.asarray(np.rint(np.expm1(np.maximum(log_median, 0.0))), dtype=np.int64)


class FeatureBins:
    """Each feature cut into at most ``max_bins`` quantile bins (NaN kept), once for all fits.

    HistGradientBoosting bins features itself, but with sample weights (the offset of the mean
    model) it takes 254 weighted percentiles of every column, which dominates the fit. Given at
    most ``max_bins`` distinct values it uses them as they are, so binning here first, without
    weights, gives the same kind of bins at a fraction of the cost.
    """

    def __init__(self, max_bins: int = 255) -> None:
        self.max_bins = max_bins

    def fit(self, x: np.ndarray) -> FeatureBins:
        rows = x[:: max(1, len(x) // _BINNING_ROWS)]
        inner = np.linspace(0, 100, self.max_bins + 1)[1:-1]
        self.edges_: list[np.ndarray] = []
        for column in rows.T:
            values = np.sort(column[~np.isnan(column)])
            distinct = np.unique(values)
            if len(distinct) <= self.max_bins:
                edges = (distinct[:-1] + distinct[1:]) / 2
            else:
                edges = np.unique(np.percentile(values, inner, method="averaged_inverted_cdf"))
            self.edges_.append(edges)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Bin index of every value (``edges[i - 1] < value <= edges[i]``), NaN where NaN."""
        binned = np.empty_like(x, dtype=np.float64)
        for j, edges in enumerate(self.edges_):
            binned[:, j] = np.searchsorted(edges, x[:, j], side="left")
        binned[np.isnan(x)] = np.nan
        return binned


def nb_median(mean: np.ndarray, alpha: float) -> np.ndarray:
    """Median count of a negative binomial with this mean and over-dispersion ``alpha``."""
    mean = np.maximum(mean, 1e-9)
    if alpha <= 1e-6:
        return np.asarray(poisson.median(mean), dtype=np.int64)
    size = 1.0 / alpha
    return np.asarray(nbinom.median(size, size / (size + mean)), dtype=np.int64)


def nb_p_zero(mean: np.ndarray, alpha: float) -> np.ndarray:
    """P(no visit) under a negative binomial with this mean and over-dispersion ``alpha``."""
    mean = np.maximum(np.asarray(mean, dtype=np.float64), 0.0)
    if alpha <= 1e-6:
        return np.asarray(np.exp(-mean))
    return np.asarray((1.0 + alpha * mean) ** (-1.0 / alpha))


def never_visited_mean(train: pl.DataFrame, min_visits: int) -> float:
    """Mean label of never-visited examples, shrunk toward that of all cold-start examples."""
    overall = float(train["visits"].sum()) / train.height
    cold = train.filter(pl.col("visits_total") < min_visits)["visits", "visits_total"]
    cold_mean = (float(cold["visits"].sum()) + 20 * overall) / (cold.height + 20)
    never = cold.filter(pl.col("visits_total") == 0)["visits"]
    return (float(never.sum()) + 20 * cold_mean) / (never.len() + 20)
