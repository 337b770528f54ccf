"""Qini and uplift curves, AUUC and calibration error against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from nbo.evaluation.uplift import (
    auuc,
    calibration_error,
    qini_coefficient,
    qini_curve,
    uplift_curve,
)

# four members, best score first: treated buyer, control, treated non-buyer, control
SCORE = np.array([4.0, 3.0, 2.0, 1.0])
TREATED = np.array([True, False, True, False])
OUTCOME = np.array([1, 0, 0, 0])


def test_qini_curve_and_coefficient_by_hand() -> None:
    x, q = qini_curve(SCORE, TREATED, OUTCOME)
    np.testing.assert_allclose(x, [0, 0.25, 0.5, 0.75, 1.0])
    # y_t - y_c * n_t / n_c per member: the one treated buyer counts from the first member on
    np.testing.assert_allclose(q, [0, 0.25, 0.25, 0.25, 0.25])
    # q - x * q(1) = [0, .1875, .125, .0625, 0]; trapezoids of width .25
    assert qini_coefficient(SCORE, TREATED, OUTCOME) == pytest.approx(0.09375)


def test_uplift_curve_and_auuc_by_hand() -> None:
    _, u = uplift_curve(SCORE, TREATED, OUTCOME)
    # k=1 has no control yet (0); k=2: (1 - 0) * 2/4; k=3: (1/2 - 0) * 3/4; k=4: (1/2) * 4/4
    np.testing.assert_allclose(u, [0, 0, 0.5, 0.375, 0.5])
    # trapezoids of width .25: (0 + 0)/2, (0 + .5)/2, (.5 + .375)/2, (.375 + .5)/2
    assert auuc(SCORE, TREATED, OUTCOME) == pytest.approx(0.28125)


def test_reversed_ranking_scores_below_random() -> None:
    assert (
        qini_coefficient(-SCORE, TREATED, OUTCOME) < 0 < qini_coefficient(SCORE, TREATED, OUTCOME)
    )


def test_ties_are_taken_together_whatever_their_order() -> None:
    tied = np.array([1.0, 1.0, 0.0, 0.0])
    x, _ = qini_curve(tied, TREATED, OUTCOME)
    np.testing.assert_allclose(x, [0, 0.5, 1.0])  # one point per tie group
    swapped = [1, 0, 3, 2]
    assert qini_coefficient(tied, TREATED, OUTCOME) == pytest.approx(
        qini_coefficient(tied[swapped], TREATED[swapped], OUTCOME[swapped])
    )


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="one value per member"):
        qini_curve(SCORE, TREATED[:3], OUTCOME)
    with pytest.raises(ValueError, match="NaN"):
        auuc(np.array([np.nan, 1.0, 2.0, 3.0]), TREATED, OUTCOME)


def test_calibration_error_by_hand() -> None:
    # bin 0: mean p .05 vs rate 0; bin 9: mean p .95 vs rate 1/2; half the rows each
    p = np.array([0.05, 0.05, 0.95, 0.95])
    assert calibration_error(p, np.array([0, 0, 1, 0])) == pytest.approx(0.5 * 0.05 + 0.5 * 0.45)
    assert calibration_error(np.array([0.0, 1.0]), np.array([0, 1])) == 0.0
    assert np.isnan(calibration_error(np.zeros(0), np.zeros(0)))
