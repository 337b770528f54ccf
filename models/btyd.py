"""The classic "buy till you die" visit models: BG/NBD and Pareto/NBD, four parameters each.

Both describe a member by ``(frequency, recency, T)``: repeat visits after the first, the
time from the first visit to the last, and the time from the first visit to the cut. While
alive a member visits as a Poisson process with a gamma-distributed rate (``r``, ``alpha``);
a BG/NBD member may drop out after each visit with a beta-distributed probability (``a``,
``b``), a Pareto/NBD member at any time at a gamma-distributed rate (``s``, ``beta``).
Parameters are fitted by maximum likelihood (scipy) on the members' summaries; the closed
forms are those of Fader, Hardie & Lee (2005), "Counting your customers the easy way", and
Fader & Hardie (2005), "A note on deriving the Pareto/NBD model and related expressions".
Hypergeometric terms are taken through Euler's transformation so that members with hundreds
of visits neither overflow nor lose precision.

These are the benchmark's reference models (``benchmarks/timing.py``); time is in whatever
unit the summaries are in (days here).
"""

from __future__ import annotations

from datetime import date
from typing import Self

import numpy as np
import polars as pl
from numpy.typing import NDArray
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1, logsumexp

__all__ = ["BetaGeoNBD", "ParetoNBD", "rfm_summary"]

Array = NDArray[np.float64]
_LOG_BOUND = 12.0  # parameters within exp(±12) ≈ 6e-6 .. 1.6e5


def rfm_summary(visits: pl.LazyFrame, as_of: date) -> pl.DataFrame:
    """``member_id, frequency, recency, T`` in days from the visits before ``as_of``.

    ``visits`` is :func:`~nbo.features.visits.member_visits` (baskets per member and day): a
    visit is a basket, so two baskets on one day are a repeat visit at recency unchanged.
    ``T`` counts whole days from the first visit day to ``as_of``.
    """
    day = pl.col("day")
    return (
        visits.filter(day < as_of)
        .group_by("member_id")
        .agg(
            (pl.col("baskets").sum() - 1).cast(pl.Float64).alias("frequency"),
            (day.max() - day.min()).dt.total_days().cast(pl.Float64).alias("recency"),
            (pl.lit(as_of) - day.min()).dt.total_days().cast(pl.Float64).alias("T"),
        )
        .sort("member_id")
        .collect()
    )


def _log_hyp2f1_euler(a: Array, b: Array, c: Array, z: Array) -> Array:
    """``log 2F1(a, b; c; z)`` for ``c = a + 1``, ``0 <= z < 1`` and ``b > 0``.

    Euler: ``2F1(a, b; c; z) = (1 - z)^(-b) 2F1(c - a, b; c; z / (z - 1))``; with ``c - a =
    1`` the remaining series is positive and bounded, whatever the size of ``a`` and ``b``.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(-b * np.log1p(-z) + np.log(hyp2f1(c - a, b, c, z / (z - 1.0))))


class _Model:
    """Fitting shared by both models: negative log-likelihood over unique summaries."""

    _names: tuple[str, ...] = ()

    def __init__(self, penalizer: float = 0.0) -> None:
        self.penalizer = penalizer

    def _log_likelihood(self, params: Array, x: Array, tx: Array, t: Array) -> Array:
        raise NotImplementedError

    def fit(
        self,
        frequency: Array,
        recency: Array,
        T: Array,
        start: dict[str, float] | None = None,
    ) -> Self:
        """Maximum-likelihood parameters from the members' summaries.

        ``start``: parameters to start from (a fit on similar data) besides the default start;
        it skips the slower but sturdier simplex search that otherwise comes first, and the
        better of the two optima is kept.
        """
        x, tx, t = (np.asarray(v, dtype=np.float64) for v in (frequency, recency, T))
        if x.size == 0:
            raise ValueError("no members to fit: every summary array is empty")
        bad = (x < 0) | (tx < 0) | (t <= 0) | (tx > t) | ((x == 0) & (tx > 0))
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(
                f"member summary {i} is not (frequency >= 0, 0 <= recency <= T, T > 0, "
                f"recency 0 without repeat visits): ({x[i]}, {tx[i]}, {t[i]})"
            )
        rows, weights = np.unique(np.stack([x, tx, t], axis=1), axis=0, return_counts=True)
        ux, utx, ut = rows.T
        scale = float(np.mean(t))  # start the rates near one visit per observed span

        def loss(log_params: Array) -> float:
            params = np.exp(log_params)
            with np.errstate(all="ignore"):  # extreme trial parameters: scored as hopeless
                ll = self._log_likelihood(params, ux, utx, ut)
            if not np.isfinite(ll).all():
                return 1e12
            penalty = self.penalizer * float(np.sum(params**2)) if self.penalizer else 0.0
            return float(-(weights @ ll) / weights.sum() + penalty)

        starts = [np.log(self._start(scale))]
        if start is None:
            starts = [minimize(loss, starts[0], method="Nelder-Mead", options={"maxiter": 4000}).x]
        else:  # the warm start, and the default one in case the warm start is a poor basin
            starts.append(np.log([start[n] for n in self._names]))
        # bounded: a start on a thin cut must not run off to degenerate parameters
        bounds = [(-_LOG_BOUND, _LOG_BOUND)] * len(self._names)
        result = min(
            (
                minimize(
                    loss, np.clip(x0, -_LOG_BOUND, _LOG_BOUND), method="L-BFGS-B", bounds=bounds
                )
                for x0 in starts
            ),
            key=lambda r: float(r.fun),
        )
        self.params_ = dict(zip(self._names, np.exp(result.x).tolist(), strict=True))
        self.log_likelihood_ = float(-result.fun * weights.sum())
        return self

    def _start(self, scale: float) -> Array:
        raise NotImplementedError

    def _params(self) -> tuple[float, ...]:
        if not hasattr(self, "params_"):
            raise ValueError(f"{type(self).__name__} is not fitted yet; call fit first")
        return tuple(self.params_[n] for n in self._names)

    def log_likelihood(self, frequency: Array, recency: Array, T: Array) -> Array:
        """Each member's log-likelihood under the fitted parameters."""
        return self._log_likelihood(np.array(self._params()), *_arrays(frequency, recency, T))


def _arrays(*values: Array) -> tuple[Array, ...]:
    return tuple(np.asarray(v, dtype=np.float64) for v in values)


class BetaGeoNBD(_Model):
    """BG/NBD (Fader, Hardie & Lee 2005): parameters ``r, alpha, a, b`` in ``params_``."""

    _names = ("r", "alpha", "a", "b")

    def _start(self, scale: float) -> Array:
        return np.array([1.0, scale / 10.0, 1.0, 3.0])

    @staticmethod
    def _log_likelihood(params: Array, x: Array, tx: Array, t: Array) -> Array:
        r, alpha, a, b = params
        common = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + betaln(a, b + x) - betaln(a, b)
        stays = -(r + x) * np.log(alpha + t)
        with np.errstate(divide="ignore", invalid="ignore"):
            drops = np.log(a) - np.log(b + x - 1.0) - (r + x) * np.log(alpha + tx)
        drops = np.where(x > 0, drops, -np.inf)
        return np.asarray(common + np.logaddexp(stays, drops))

    def p_alive(self, frequency: Array, recency: Array, T: Array) -> Array:
        """P(the member is still alive at ``T``)."""
        r, alpha, a, b = self._params()
        x, tx, t = _arrays(frequency, recency, T)
        with np.errstate(divide="ignore", invalid="ignore"):
            odds = a / (b + x - 1.0) * np.exp((r + x) * (np.log(alpha + t) - np.log(alpha + tx)))
        return np.asarray(1.0 / (1.0 + np.where(x > 0, odds, 0.0)))

    def expected_visits(self, t: float, frequency: Array, recency: Array, T: Array) -> Array:
        """E[visits in ``(T, T + t]``] given the summary (FHL 2005, eq. 10)."""
        r, alpha, a, b = self._params()
        x, tx, big_t = _arrays(frequency, recency, T)
        z = t / (alpha + big_t + t)
        # ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z), through Euler's transform
        tail = (1.0 - z) ** (a - 1.0) * hyp2f1(a + b - 1.0 - r, a - 1.0, a + b + x - 1.0, z)
        return np.asarray((a + b + x - 1.0) / (a - 1.0) * (1.0 - tail) * self.p_alive(x, tx, big_t))

    def p_no_visit(self, t: Array, frequency: Array, recency: Array, T: Array) -> Array:
        """P(no visit in ``(T, T + t]``): dead, or alive and no visit (members × ``t``)."""
        r, alpha, _, _ = self._params()
        x, _, big_t = _arrays(frequency, recency, T)
        alive = self.p_alive(frequency, recency, T)[:, None]
        quiet = ((alpha + big_t)[:, None] / (alpha + big_t[:, None] + np.asarray(t))) ** (
            (r + x)[:, None]
        )
        return np.asarray(1.0 - alive + alive * quiet)


class ParetoNBD(_Model):
    """Pareto/NBD (Schmittlein, Morrison & Colombo 1987): ``r, alpha, s, beta`` in ``params_``."""

    _names = ("r", "alpha", "s", "beta")

    def _start(self, scale: float) -> Array:
        return np.array([1.0, scale / 10.0, 1.0, scale])

    @staticmethod
    def _log_a0(params: Array, x: Array, tx: Array, t: Array) -> Array:
        """``log A0`` of Fader & Hardie's note (the integral over the dropout time)."""
        r, alpha, s, beta = params
        rsx = r + s + x
        if alpha >= beta:
            b, lead, diff = s + 1.0, alpha, alpha - beta
        else:
            b, lead, diff = r + x, beta, beta - alpha

        def term(u: Array) -> Array:
            z = diff / (lead + u)
            log_f = _log_hyp2f1_euler(rsx, np.broadcast_to(b, rsx.shape), rsx + 1.0, z)
            return np.asarray(log_f - rsx * np.log(lead + u))

        first, last = term(tx), term(t)
        with np.errstate(divide="ignore", invalid="ignore"):
            gap = np.log(-np.expm1(np.minimum(last - first, 0.0)))
        # both terms vanish (an extreme trial of the optimiser): so does A0
        return np.asarray(np.where(np.isfinite(first), first + gap, -np.inf))

    @classmethod
    def _log_likelihood(cls, params: Array, x: Array, tx: Array, t: Array) -> Array:
        r, alpha, s, beta = params
        common = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
        stays = -(r + x) * np.log(alpha + t) - s * np.log(beta + t)
        drops = np.log(s / (r + s + x)) + cls._log_a0(params, x, tx, t)
        return np.asarray(common + logsumexp(np.stack([stays, drops]), axis=0))

    def p_alive(self, frequency: Array, recency: Array, T: Array) -> Array:
        """P(the member is still alive at ``T``)."""
        params = np.array(self._params())
        r, alpha, s, beta = params
        x, tx, t = _arrays(frequency, recency, T)
        log_odds = (
            np.log(s / (r + s + x))
            + (r + x) * np.log(alpha + t)
            + s * np.log(beta + t)
            + self._log_a0(params, x, tx, t)
        )
        return np.asarray(1.0 / (1.0 + np.exp(log_odds)))

    def expected_visits(self, t: float, frequency: Array, recency: Array, T: Array) -> Array:
        """E[visits in ``(T, T + t]``] given the summary (Fader & Hardie's note, eq. 22)."""
        r, alpha, s, beta = self._params()
        x, tx, big_t = _arrays(frequency, recency, T)
        rate = (r + x) / (alpha + big_t)
        if abs(s - 1.0) < 1e-9:
            alive_time = (beta + big_t) * np.log1p(t / (beta + big_t))
        else:
            alive_time = (
                (beta + big_t)
                / (s - 1.0)
                * (1.0 - ((beta + big_t) / (beta + big_t + t)) ** (s - 1.0))
            )
        return np.asarray(rate * alive_time * self.p_alive(x, tx, big_t))
