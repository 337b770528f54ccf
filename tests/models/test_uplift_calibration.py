"""The uplift estimates' calibration: what the effect is at each level of a noisy estimate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nbo.data.io import ClubData
from nbo.features.history import History
from nbo.models.uplift import OfferUplift
from nbo.models.uplift_calibration import calibrate_effects, member_folds
from tests.models.test_uplift import favourite_pairs
from tests.models.uplift_club import AS_OF, uplift_club


def test_the_top_of_a_noisy_estimate_is_brought_down_to_the_effect_there() -> None:
    rng = np.random.default_rng(3)
    n, e = 400_000, 0.8
    effect = rng.uniform(0.0, 0.2, n)
    estimate = effect + rng.normal(0.0, 0.05, n)  # unbiased, but noisy
    treated = rng.random(n) < e
    outcome = (rng.random(n) < 0.2 + effect * treated).astype(np.float64)
    calibration = calibrate_effects(estimate, treated, outcome, e, bins=10)
    assert calibration is not None
    assert np.all(np.diff(calibration.values) >= 0)
    top = estimate >= np.quantile(estimate, 0.9)
    true_top, raw_top = effect[top].mean(), estimate[top].mean()
    calibrated_top = calibration(estimate[top]).mean()
    # selecting on the estimate's top tenth overstates the effect there by ~20 %; the
    # calibration is within its own sampling noise of the truth (40,000 pairs, ~0.015)
    assert raw_top > 1.15 * true_top
    assert calibrated_top == pytest.approx(true_top, abs=0.02)
    assert abs(calibrated_top - true_top) < abs(raw_top - true_top) / 2


def test_one_level_of_estimate_is_nothing_to_calibrate() -> None:
    flat = np.full(100, 0.1)
    assert calibrate_effects(flat, np.arange(100) % 2 == 0, np.ones(100), 0.5, 10) is None


def test_folds_keep_each_members_pairs_together() -> None:
    members = np.repeat(np.arange(500, dtype=np.int64), 4)
    second = member_folds(members, seed=0)
    assert (second.reshape(500, 4).all(axis=1) | ~second.reshape(500, 4).any(axis=1)).all()
    assert 150 < second.reshape(500, 4)[:, 0].sum() < 350


def test_the_model_calibrates_only_with_enough_controls(tmp_path: Path) -> None:
    history = History.at(ClubData(uplift_club(tmp_path / "club")), AS_OF)
    default = OfferUplift(min_samples_leaf=10).fit(history)  # 1,392 controls: too few
    assert default.measured_ and default.calibration_ is None
    assert "calibrated" not in default.reason_
    forced = OfferUplift(min_samples_leaf=10, calibration_min_controls=0).fit(history)
    assert forced.calibration_ is not None and "calibrated out of fold" in forced.reason_


def test_a_model_pickled_before_the_calibration_existed_still_predicts(tmp_path: Path) -> None:
    history = History.at(ClubData(uplift_club(tmp_path / "club")), AS_OF)
    model = OfferUplift(min_samples_leaf=10).fit(history)
    pairs = favourite_pairs()
    expected = model.predict(history, pairs)
    del model.calibration_  # as unpickled from a bundle trained before it
    assert model.predict(history, pairs).equals(expected)
