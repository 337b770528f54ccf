"""Metrics of what an offer changes: Qini and uplift curves, and p_buy's calibration.

Both curves rank members by an uplift score, best first, and follow the first k of N
(Radcliffe 2007; Gutierrez & Gérardy 2017). With ``n_t(k)``, ``n_c(k)`` the treated and control
members among them and ``y_t(k)``, ``y_c(k)`` their outcomes:

* Qini curve ``q(k) = (y_t(k) − y_c(k) · n_t(k) / n_c(k)) / N``: incremental outcomes among the
  treated of the first k, per member of the population (the control term is 0 while
  ``n_c(k) = 0``);
* uplift curve ``u(k) = (y_t(k) / n_t(k) − y_c(k) / n_c(k)) · k / N``: the effect of treating
  the first k, per member of the population (0 while either arm is empty).

The x axis is ``k / N``. Members with tied scores are taken together (points only at the end
of a tie), so the order within a tie does not matter. :func:`qini_coefficient` is the area
between the Qini curve and the random-targeting line from (0, 0) to (1, q(N)), *not* divided by
the area of a perfect model (Radcliffe's ratio), which is ill-defined where effects can be
negative; :func:`auuc` is the area under the uplift curve, whose random-targeting value is half
the average effect. Both are on the scale of "outcomes per member", trapezoid rule.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["auuc", "calibration_error", "qini_coefficient", "qini_curve", "uplift_curve"]


def _cumulative(
    uplift_score: ArrayLike, treated: ArrayLike, outcome: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """k, n_t, n_c, y_t, y_c at the end of each tie group (by score, descending), and N."""
    score = np.asarray(uplift_score, dtype=np.float64)
    t = np.asarray(treated).astype(bool)
    y = np.asarray(outcome, dtype=np.float64)
    if not (score.ndim == t.ndim == y.ndim == 1) or not (len(score) == len(t) == len(y)):
        raise ValueError("uplift_score, treated and outcome need one value per member each")
    if np.isnan(score).any() or np.isnan(y).any():
        raise ValueError("uplift_score and outcome must not be NaN")
    order = np.argsort(-score, kind="stable")
    score, t, y = score[order], t[order], y[order]
    last = np.r_[np.flatnonzero(score[1:] != score[:-1]), len(score) - 1] if len(score) else []
    n_t, y_t = np.cumsum(t)[last], np.cumsum(y * t)[last]
    n_c, y_c = np.cumsum(~t)[last], np.cumsum(y * ~t)[last]
    k = np.asarray(last, dtype=np.int64) + 1
    return k, n_t, n_c, y_t, y_c, len(score)


def qini_curve(
    uplift_score: ArrayLike, treated: ArrayLike, outcome: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """(share of members targeted, Qini gain per member), starting at (0, 0)."""
    k, n_t, n_c, y_t, y_c, n = _cumulative(uplift_score, treated, outcome)
    if n == 0:
        return np.zeros(1), np.zeros(1)
    ratio = np.divide(n_t, n_c, out=np.zeros(len(k)), where=n_c > 0)
    return np.r_[0.0, k / n], np.r_[0.0, (y_t - y_c * ratio) / n]


def uplift_curve(
    uplift_score: ArrayLike, treated: ArrayLike, outcome: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """(share of members targeted, effect of treating them per member), starting at (0, 0)."""
    k, n_t, n_c, y_t, y_c, n = _cumulative(uplift_score, treated, outcome)
    if n == 0:
        return np.zeros(1), np.zeros(1)
    both = (n_t > 0) & (n_c > 0)
    rate_t = np.divide(y_t, n_t, out=np.zeros(len(k)), where=both)
    rate_c = np.divide(y_c, n_c, out=np.zeros(len(k)), where=both)
    return np.r_[0.0, k / n], np.r_[0.0, (rate_t - rate_c) * k / n]


def _area(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))


def qini_coefficient(uplift_score: ArrayLike, treated: ArrayLike, outcome: ArrayLike) -> float:
    """Area between the Qini curve and random targeting (0 = no better than random)."""
    x, q = qini_curve(uplift_score, treated, outcome)
    return _area(x, q - x * q[-1])


def auuc(uplift_score: ArrayLike, treated: ArrayLike, outcome: ArrayLike) -> float:
    """Area under the uplift curve (random targeting: half the average effect)."""
    return _area(*uplift_curve(uplift_score, treated, outcome))


def calibration_error(probability: ArrayLike, outcome: ArrayLike, bins: int = 10) -> float:
    """Expected calibration error: ``Σ_b (n_b / N) · |mean p_b − mean y_b|`` over equal-width
    bins of the predicted probability (NaN for no rows)."""
    p = np.asarray(probability, dtype=np.float64)
    y = np.asarray(outcome, dtype=np.float64)
    if p.shape != y.shape or p.ndim != 1:
        raise ValueError("probability and outcome need one value per row each")
    if len(p) == 0:
        return float("nan")
    which = np.clip((p * bins).astype(np.int64), 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    gap = np.abs(np.bincount(which, p, bins) - np.bincount(which, y, bins))
    return float(gap.sum() / count.sum())
