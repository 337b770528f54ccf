"""E[effect | estimate]: the uplift model's estimates calibrated on randomized pairs, out of fold.

An X-learner's estimate is noisy, and a decision picks the pairs whose estimate is highest, so
on the chosen pairs the estimate runs high. The calibration learns what the effect really is
at each level of the estimate: the randomized pairs are split in two by member; each half's
pairs are estimated by a learner fitted on the other half; the estimates are cut into
quantile bins; in each bin the mean of the transformed outcome ``y · (t / e − (1 − t) / (1 −
e))`` (whose expectation is the effect, given the randomization's treated share ``e``) is the
effect there; an isotonic fit makes the map non-decreasing. Between the bins' centres it is
linear; beyond them it is flat. See docs/uplift.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from sklearn.isotonic import IsotonicRegression

__all__ = ["EffectCalibration", "calibrate_effects", "member_folds"]


@dataclass(frozen=True)
class EffectCalibration:
    """A non-decreasing map from an estimate to the effect, through ``(knots, values)``."""

    knots: NDArray[np.float64]  # each bin's mean estimate, increasing
    values: NDArray[np.float64]  # the effect there, non-decreasing, in [-1, 1]

    def __call__(self, estimate: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.interp(estimate, self.knots, self.values)


def calibrate_effects(
    estimate: NDArray[np.float64],
    treated: NDArray[np.bool_],
    outcome: NDArray[np.float64],
    propensity: float,
    bins: int,
) -> EffectCalibration | None:
    """The calibration of out-of-fold ``estimate`` against the randomized ``outcome``.

    ``None`` when the estimates take fewer than two distinct levels (nothing to map).
    """
    t = treated.astype(np.float64)
    transformed = outcome * (t / propensity - (1 - t) / (1 - propensity))
    edges = np.unique(np.quantile(estimate, np.linspace(0, 1, bins + 1)))
    if edges.size < 3:
        return None
    which = np.clip(np.searchsorted(edges, estimate, side="right") - 1, 0, edges.size - 2)
    count = np.bincount(which, minlength=edges.size - 1).astype(np.float64)
    kept = count > 0
    knots = np.bincount(which, weights=estimate, minlength=edges.size - 1)[kept] / count[kept]
    effect = np.bincount(which, weights=transformed, minlength=edges.size - 1)[kept] / count[kept]
    values = IsotonicRegression(y_min=-1.0, y_max=1.0).fit(knots, effect, sample_weight=count[kept])
    return EffectCalibration(knots, np.asarray(values.predict(knots), dtype=np.float64))


def member_folds(member_ids: NDArray[np.int64], seed: int | None) -> NDArray[np.bool_]:
    """Two folds by member (a member's pairs all in one): True for the second fold."""
    members, index = np.unique(member_ids, return_inverse=True)
    second = np.random.default_rng(seed).random(members.size) < 0.5
    return second[index]
