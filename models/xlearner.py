"""The X-learner (Künzel et al., PNAS 2019) and its out-of-fold calibration.

:class:`XLearner` fits outcome models per arm, then effect models on the imputed effects;
:func:`out_of_fold_calibration` fits it on each half of the pairs (split by member), estimates
the other half, and calibrates those estimates on the outcomes
(:func:`~nbo.models.uplift_calibration.calibrate_effects`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from nbo.models.pair_scoring import tree_probability
from nbo.models.uplift_calibration import EffectCalibration, calibrate_effects, member_folds

__all__ = ["XLearner", "out_of_fold_calibration"]


@dataclass(frozen=True)
class XLearner:
    """A fitted X-learner: outcome models per arm, imputed-effect models, propensity weight.

    ``effect(x) = propensity · tau_control(x) + (1 − propensity) · tau_treated(x)``: the
    effect model learned on the larger (treated) arm gets the weight of the smaller one.
    """

    tau_treated: HistGradientBoostingRegressor
    tau_control: HistGradientBoostingRegressor
    propensity: float

    @classmethod
    def fit(
        cls,
        matrix: np.ndarray,
        treated: np.ndarray,
        outcome: np.ndarray,
        propensity: float,
        params: dict[str, float | int | None],
    ) -> XLearner:
        """Fit on rows of ``matrix`` with 0/1 ``outcome`` and boolean ``treated``."""
        t, c = treated.astype(bool), ~treated.astype(bool)
        y = outcome.astype(np.float64)

        def outcome_model(rows: np.ndarray) -> HistGradientBoostingClassifier:
            return HistGradientBoostingClassifier(early_stopping=False, **params).fit(
                matrix[rows], y[rows]
            )

        def effect_model(rows: np.ndarray, imputed: np.ndarray) -> HistGradientBoostingRegressor:
            return HistGradientBoostingRegressor(early_stopping=False, **params).fit(
                matrix[rows], imputed
            )

        mu_treated, mu_control = outcome_model(t), outcome_model(c)
        imputed_treated = y[t] - tree_probability(mu_control, matrix[t])
        imputed_control = tree_probability(mu_treated, matrix[c]) - y[c]
        return cls(
            tau_treated=effect_model(t, imputed_treated),
            tau_control=effect_model(c, imputed_control),
            propensity=propensity,
        )

    def effect(self, matrix: np.ndarray) -> np.ndarray:
        """The estimated effect on P(outcome) of each row, clipped to [-1, 1]."""
        e = self.propensity
        tau = e * self.tau_control.predict(matrix) + (1 - e) * self.tau_treated.predict(matrix)
        return np.clip(np.asarray(tau, dtype=np.float64), -1.0, 1.0)


def out_of_fold_calibration(
    matrix: np.ndarray,
    treated: np.ndarray,
    outcome: np.ndarray,
    propensity: float,
    params: dict[str, float | int | None],
    *,
    members: np.ndarray,
    bins: int,
    seed: int | None,
) -> EffectCalibration | None:
    """Each half's pairs (two folds by member) estimated by an X-learner fitted on the other
    half, calibrated on their outcomes; ``None`` when a half lacks an arm or an outcome."""
    second = member_folds(members, seed)
    estimate = np.empty(treated.size)
    arm = treated.astype(bool)
    for fold in (False, True):
        rows = second == fold
        fit_on = ~rows
        if not rows.any() or any(
            np.unique(outcome[fit_on & (arm == a)]).size < 2 for a in (True, False)
        ):
            return None
        half = XLearner.fit(matrix[fit_on], arm[fit_on], outcome[fit_on], propensity, params)
        estimate[rows] = half.effect(matrix[rows])
    return calibrate_effects(estimate, arm, outcome.astype(np.float64), propensity, bins)
