"""BG/NBD and Pareto/NBD: closed forms against direct integration, published figures, recovery.

The CDNOW parameters are the published ones (Fader, Hardie & Lee 2005 for BG/NBD; Fader &
Hardie's Pareto/NBD notes), in weeks. The closed forms are checked against the models'
definitions integrated numerically over the gamma/beta heterogeneity, and the fitting against
data simulated from each model.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest
from scipy import special

from nbo.models.btyd import BetaGeoNBD, ParetoNBD, rfm_summary

BGNBD_CDNOW = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PARETO_CDNOW = {"r": 0.55, "alpha": 10.58, "s": 0.61, "beta": 11.67}
SUMMARIES = [(0.0, 0.0, 38.86), (2.0, 30.43, 38.86), (7.0, 10.0, 35.0), (40.0, 30.0, 39.0)]


def _fitted(model: BetaGeoNBD | ParetoNBD, params: dict[str, float]) -> BetaGeoNBD | ParetoNBD:
    model.params_ = dict(params)
    return model


_NODES = 200  # Gauss quadrature nodes per dimension: converged to ~1e-12 at these parameters


def _gamma_nodes(shape: float, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of E[f(λ)] for λ ~ gamma(shape, rate) (generalised Gauss-Laguerre)."""
    u, w = special.roots_genlaguerre(_NODES, shape - 1)
    return u / rate, w / special.gamma(shape)


def _beta_nodes(a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of E[f(p)] for p ~ beta(a, b) (Gauss-Jacobi on [0, 1])."""
    y, w = special.roots_jacobi(_NODES, b - 1, a - 1)
    return (1 + y) / 2, w / (2 ** (a + b - 1) * special.beta(a, b))


def _bgnbd_integral(x: float, tx: float, t: float, f: object) -> float:
    """∫∫ f(λ, p) over the BG/NBD prior (gamma λ, beta p), by quadrature."""
    p = BGNBD_CDNOW
    (la, wl), (q, wq) = _gamma_nodes(p["r"], p["alpha"]), _beta_nodes(p["a"], p["b"])
    grid = f(la[:, None], q[None, :])  # type: ignore[operator]
    return float(wl @ grid @ wq)


def _bgnbd_individual(x: float, tx: float, t: float) -> object:
    def likelihood(la: np.ndarray, q: np.ndarray) -> np.ndarray:
        stays = (1 - q) ** x * la**x * np.exp(-la * t)
        drops = q * (1 - q) ** (x - 1) * la**x * np.exp(-la * tx) if x > 0 else 0.0
        return np.asarray(stays + drops)

    return likelihood


@pytest.mark.parametrize(("x", "tx", "t"), SUMMARIES[:3])
def test_bgnbd_likelihood_is_the_integral_of_its_definition(x: float, tx: float, t: float) -> None:
    model = _fitted(BetaGeoNBD(), BGNBD_CDNOW)
    closed = model.log_likelihood(np.array([x]), np.array([tx]), np.array([t]))[0]
    direct = _bgnbd_integral(x, tx, t, _bgnbd_individual(x, tx, t))
    assert closed == pytest.approx(np.log(direct), abs=1e-5)


@pytest.mark.parametrize(("x", "tx", "t"), SUMMARIES[:3])
def test_bgnbd_expectation_and_p_alive_are_posterior_means(x: float, tx: float, t: float) -> None:
    model = _fitted(BetaGeoNBD(), BGNBD_CDNOW)
    horizon = 39.0
    joint = _bgnbd_integral(x, tx, t, _bgnbd_individual(x, tx, t))

    def alive(la: np.ndarray, q: np.ndarray) -> np.ndarray:
        return np.asarray((1 - q) ** x * la**x * np.exp(-la * t))

    def visits(la: np.ndarray, q: np.ndarray) -> np.ndarray:
        return np.asarray(alive(la, q) * (1 - np.exp(-la * q * horizon)) / q)

    args = (np.array([x]), np.array([tx]), np.array([t]))
    p_alive = _bgnbd_integral(x, tx, t, alive) / joint
    assert model.p_alive(*args)[0] == pytest.approx(p_alive, rel=1e-4)
    expected = _bgnbd_integral(x, tx, t, visits) / joint
    assert model.expected_visits(horizon, *args)[0] == pytest.approx(expected, rel=1e-4)


def test_bgnbd_matches_the_papers_worked_example() -> None:
    # FHL 2005: a CDNOW customer with 2 repeat purchases, the last at week 30.43 of 38.86,
    # is expected to make 1.226 purchases in the next 39 weeks
    model = _fitted(BetaGeoNBD(), BGNBD_CDNOW)
    args = (np.array([2.0]), np.array([30.43]), np.array([38.86]))
    assert model.expected_visits(39.0, *args)[0] == pytest.approx(1.226, abs=5e-4)


def _pareto_integral(f: object) -> float:
    p = PARETO_CDNOW
    (la, wl), (m, wm) = _gamma_nodes(p["r"], p["alpha"]), _gamma_nodes(p["s"], p["beta"])
    grid = f(la[:, None], m[None, :])  # type: ignore[operator]
    return float(wl @ grid @ wm)


@pytest.mark.parametrize(("x", "tx", "t"), SUMMARIES[:3])
def test_pareto_closed_forms_are_the_integrals_of_the_definitions(
    x: float, tx: float, t: float
) -> None:
    model = _fitted(ParetoNBD(), PARETO_CDNOW)
    horizon = 39.0

    def likelihood(la: np.ndarray, m: np.ndarray) -> np.ndarray:
        stays = la ** (x + 1) / (la + m) * np.exp(-(la + m) * t)
        drops = la**x * m / (la + m) * np.exp(-(la + m) * tx)
        return np.asarray(stays + drops)

    def alive(la: np.ndarray, m: np.ndarray) -> np.ndarray:
        return np.asarray(la**x * np.exp(-(la + m) * t))

    def visits(la: np.ndarray, m: np.ndarray) -> np.ndarray:
        return np.asarray(alive(la, m) * la / m * (1 - np.exp(-m * horizon)))

    args = (np.array([x]), np.array([tx]), np.array([t]))
    joint = _pareto_integral(likelihood)
    assert model.log_likelihood(*args)[0] == pytest.approx(np.log(joint), abs=1e-5)
    assert model.p_alive(*args)[0] == pytest.approx(_pareto_integral(alive) / joint, rel=1e-4)
    expected = _pareto_integral(visits) / joint
    assert model.expected_visits(horizon, *args)[0] == pytest.approx(expected, rel=1e-4)


def test_heavy_members_stay_finite() -> None:
    """Hundreds of visits (a daily shopper over a year, in days) overflow no term."""
    x, tx, t = np.array([400.0, 300.0]), np.array([360.0, 200.0]), np.array([364.0, 364.0])
    for model in (
        _fitted(BetaGeoNBD(), {"r": 0.8, "alpha": 20.0, "a": 0.5, "b": 5.0}),
        _fitted(ParetoNBD(), {"r": 0.8, "alpha": 20.0, "s": 0.7, "beta": 300.0}),
        _fitted(ParetoNBD(), {"r": 0.8, "alpha": 300.0, "s": 0.7, "beta": 20.0}),
    ):
        assert np.isfinite(model.log_likelihood(x, tx, t)).all()
        expected = model.expected_visits(28.0, x, tx, t)
        alive = model.p_alive(x, tx, t)
        assert np.isfinite(expected).all() and (expected > 0).all()
        assert alive[0] > 0.9 and alive[1] < alive[0]  # 164 quiet days of a busy member


def _simulate(rng: np.random.Generator, n: int, pareto: bool) -> tuple[np.ndarray, ...]:
    """Summaries of members simulated from either model, in weeks, T between 20 and 40."""
    t = rng.uniform(20, 40, n)
    if pareto:
        p = PARETO_CDNOW
        rate = rng.gamma(p["r"], 1 / p["alpha"], n)
        death = rng.exponential(1 / rng.gamma(p["s"], 1 / p["beta"], n))
    else:
        p = BGNBD_CDNOW
        rate, drop = rng.gamma(p["r"], 1 / p["alpha"], n), rng.beta(p["a"], p["b"], n)
    x, tx = np.zeros(n), np.zeros(n)
    for i in range(n):
        now, end = 0.0, min(t[i], death[i]) if pareto else t[i]
        while True:
            now += rng.exponential(1 / rate[i])
            if now > end:
                break
            x[i], tx[i] = x[i] + 1, now
            if not pareto and rng.random() < drop[i]:
                break
    return x, tx, t


@pytest.mark.parametrize("model_type", [BetaGeoNBD, ParetoNBD])
def test_fit_recovers_the_parameters_it_simulates(model_type: type) -> None:
    pareto = model_type is ParetoNBD
    truth = PARETO_CDNOW if pareto else BGNBD_CDNOW
    x, tx, t = _simulate(np.random.default_rng(7), 4_000, pareto)
    model = model_type().fit(x, tx, t)
    at_truth = _fitted(model_type(), truth).log_likelihood(x, tx, t).sum()
    assert model.log_likelihood_ >= at_truth - 1e-6  # the optimum is no worse than the truth
    # the population's behaviour is recovered: mean rate r/alpha and mean expected visits
    assert model.params_["r"] / model.params_["alpha"] == pytest.approx(
        truth["r"] / truth["alpha"], rel=0.1
    )
    fitted = model.expected_visits(26.0, x, tx, t)
    true_expected = _fitted(model_type(), truth).expected_visits(26.0, x, tx, t)
    assert fitted.mean() == pytest.approx(true_expected.mean(), rel=0.1)
    assert np.corrcoef(fitted, true_expected)[0, 1] > 0.99


def test_fit_rejects_impossible_summaries() -> None:
    with pytest.raises(ValueError, match=r"member summary 1 .*\(2.0, 5.0, 4.0\)"):
        BetaGeoNBD().fit(np.array([1.0, 2.0]), np.array([1.0, 5.0]), np.array([3.0, 4.0]))
    with pytest.raises(ValueError, match="not fitted"):
        ParetoNBD().p_alive(np.array([1.0]), np.array([1.0]), np.array([2.0]))


def test_rfm_summary_counts_baskets_before_the_cut() -> None:
    visits = pl.LazyFrame(
        {
            "member_id": [1, 1, 1, 2, 3],
            "day": [
                *(date(2024, 1, 1), date(2024, 1, 1), date(2024, 1, 11)),
                *(date(2024, 1, 5), date(2024, 2, 1)),
            ],
            "baskets": [1, 1, 2, 1, 1],
        },
        schema_overrides={"baskets": pl.UInt32},
    )
    summary = rfm_summary(visits, date(2024, 1, 21))
    assert summary.to_dicts() == [
        {"member_id": 1, "frequency": 3.0, "recency": 10.0, "T": 20.0},
        {"member_id": 2, "frequency": 0.0, "recency": 0.0, "T": 16.0},
    ]
