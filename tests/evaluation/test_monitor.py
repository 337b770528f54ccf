"""Model health: PSI on samples with a known shift, calibration where the true rate is known."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from scipy.stats import norm

from nbo.evaluation.monitor import (
    PSI_FLOOR,
    Reference,
    Thresholds,
    calibration,
    model_health,
    psi,
    reference_of,
)

RNG = np.random.default_rng(16)


def test_reference_cuts_deciles_and_round_trips() -> None:
    values = np.arange(1000) / 1000.0
    reference = reference_of(values)
    assert reference is not None
    assert len(reference.edges) == 9
    assert reference.shares == pytest.approx([0.1] * 10)
    assert Reference.from_dict(reference.to_dict()) == reference
    assert reference_of([math.nan]) is None


def test_tied_scores_merge_their_bins() -> None:
    # 60 % of the pairs score exactly 0 (cold members): one bin holds them all
    values = np.r_[np.zeros(600), np.linspace(0.01, 0.5, 400)]
    reference = reference_of(values)
    assert reference is not None
    assert reference.edges[0] == 0.0
    assert reference.shares[0] == pytest.approx(0.6)
    assert sum(reference.shares) == pytest.approx(1.0)
    assert psi(reference, values) == pytest.approx(0.0, abs=1e-12)


def test_psi_of_identical_samples_is_zero() -> None:
    values = RNG.beta(2, 20, 50_000)
    reference = reference_of(values)
    assert reference is not None
    assert psi(reference, values) == pytest.approx(0.0, abs=1e-12)
    # a fresh sample of the same distribution: sampling noise only
    assert psi(reference, RNG.beta(2, 20, 50_000)) < 0.01


def test_psi_of_moved_bin_shares_is_the_formula() -> None:
    reference = reference_of((np.arange(10_000) + 0.5) / 10_000)
    assert reference is not None
    # half the bins at 15 %, the other half at 5 %: PSI = 5·0.05·ln 1.5 + 5·0.05·ln 2 = ln(3)/4
    centres = (np.arange(10) + 0.5) / 10
    shifted = np.repeat(centres, [150] * 5 + [50] * 5)
    assert psi(reference, shifted) == pytest.approx(math.log(3) / 4, rel=1e-9)


def test_psi_of_a_shifted_normal_matches_the_analytic_value() -> None:
    reference = reference_of(RNG.normal(0.0, 1.0, 400_000))
    assert reference is not None
    shift = 0.5
    edges = np.r_[-np.inf, norm.ppf(np.arange(1, 10) / 10), np.inf]
    actual = np.diff(norm.cdf(edges - shift))
    expected = np.sum((actual - 0.1) * np.log(actual / 0.1))
    found = psi(reference, RNG.normal(shift, 1.0, 400_000))
    assert found == pytest.approx(expected, abs=0.005)
    assert found > 0.2  # half a standard deviation is a shift the default threshold catches


def test_psi_floors_empty_bins() -> None:
    reference = Reference((0.5,), (0.5, 0.5), 2)
    found = psi(reference, [0.1, 0.2])
    expected = (1 - 0.5) * math.log(1 / 0.5) + (PSI_FLOOR - 0.5) * math.log(PSI_FLOOR / 0.5)
    assert found == pytest.approx(expected)
    assert math.isnan(psi(reference, []))


def test_calibrated_predictions_match_their_observed_rate() -> None:
    p = RNG.uniform(0.01, 0.3, 200_000)
    found = calibration(p, RNG.random(p.size) < p)
    assert found.decisions == p.size
    assert found.ratio == pytest.approx(1.0, abs=0.03)
    deciles = found.deciles
    assert deciles["decile"].to_list() == list(range(1, 11))
    assert deciles["decisions"].sum() == p.size
    # each decile's truth (its mean p) within its interval, predictions rising with deciles
    inside = (deciles["observed_low"] <= deciles["predicted"]) & (
        deciles["predicted"] <= deciles["observed_high"]
    )
    assert inside.sum() >= 9
    assert deciles["predicted"].is_sorted()


def test_an_overconfident_model_is_off_by_its_factor() -> None:
    p = RNG.uniform(0.05, 0.6, 100_000)
    found = calibration(p, RNG.random(p.size) < p / 3)  # the truth is a third of it
    assert found.ratio == pytest.approx(3.0, rel=0.05)
    assert found.off_by == pytest.approx(3.0, rel=0.05)
    assert calibration(p / 3, RNG.random(p.size) < p).off_by == pytest.approx(3.0, rel=0.05)


def _outcomes(version: str, p: np.ndarray, redeemed: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame(
        {"model_version": version, "p_redeem": p, "p_buy": p * 2, "redeemed": redeemed * 1.0}
    )


def test_model_health_alerts_on_miscalibration_and_drift_per_version() -> None:
    train = RNG.uniform(0.01, 0.3, 50_000)
    references = {
        name: {"p_redeem": reference_of(train), "p_buy": reference_of(train * 2)}
        for name in ("run:good", "run:bad")
    }
    served_good = RNG.uniform(0.01, 0.3, 5_000)
    served_bad = RNG.uniform(0.2, 0.5, 5_000)  # scores moved up, redemptions did not
    outcomes = pl.concat(
        [
            _outcomes("run:good", served_good, RNG.random(5_000) < served_good),
            _outcomes("run:bad", served_bad, RNG.random(5_000) < served_bad / 4),
            _outcomes("run:new", served_good[:100], np.zeros(100)),  # few: no calibration alert
        ]
    )
    checked = {
        h.model_version: h
        for h in model_health(outcomes, references, Thresholds())  # type: ignore[arg-type]
    }
    assert checked["run:good"].alerts == []
    assert checked["run:good"].psi["p_redeem"] < 0.05
    bad = checked["run:bad"]
    assert any(a.startswith("calibration") for a in bad.alerts)
    assert {a.split()[3] for a in bad.alerts if a.startswith("drift")} == {"p_redeem", "p_buy"}
    assert bad.psi["p_redeem"] > 0.2
    assert checked["run:new"].alerts == []
    assert math.isnan(checked["run:new"].psi["p_redeem"])  # no reference for the version
    assert checked["run:bad"].metrics()["calibration_ratio"] == pytest.approx(4.0, rel=0.1)
