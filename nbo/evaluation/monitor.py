"""Model health: calibration of the served scores and their drift from training (PSI).

Pure functions on arrays and frames; the CLI (``nbo monitor``) reads the history and the
training references and hands them over.

*Reference.* At training time each score's distribution on the training holdout's offer pairs
is cut into deciles (:func:`reference_of`): the interior edges and the share of pairs between
them. It is small (a few dozen numbers per score) and travels with the bundle and the day plans.

*PSI.* The population stability index of values against a reference,
``Σ_b (a_b − e_b) · ln(a_b / e_b)`` over the reference's bins, with shares floored at
:data:`PSI_FLOOR` so an empty bin stays finite. Identical distributions give 0; the usual
reading is < 0.1 stable, 0.1–0.2 moderate, > 0.2 a real shift.

*Calibration.* Served decisions in deciles of their predicted ``p_redeem``: mean prediction
against the observed redemption rate (Wilson 95 % interval), and the overall ratio of the mean
prediction to the observed rate (2 = the model promises twice the redemptions it gets).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import ArrayLike, NDArray

from nbo.evaluation.experiment import wilson

__all__ = [
    "PSI_FLOOR",
    "SCORES",
    "Calibration",
    "ModelHealth",
    "Reference",
    "Thresholds",
    "calibration",
    "model_health",
    "psi",
    "reference_of",
]

PSI_FLOOR = 1e-4
"""Smallest share a bin counts with in :func:`psi` (an empty bin would make it infinite)."""


@dataclass(frozen=True)
class Reference:
    """A distribution cut into bins: ``edges`` are the interior bin edges (bin ``b`` holds
    ``edges[b-1] < x <= edges[b]``, open at both ends), ``shares`` each bin's share."""

    edges: tuple[float, ...]
    shares: tuple[float, ...]
    count: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (what bundles and plan manifests hold)."""
        return {"edges": list(self.edges), "shares": list(self.shares), "count": self.count}

    @staticmethod
    def from_dict(found: dict[str, Any]) -> Reference:
        edges = tuple(float(e) for e in found["edges"])
        shares = tuple(float(s) for s in found["shares"])
        if len(shares) != len(edges) + 1:
            raise ValueError(f"a reference with {len(edges)} edges needs {len(edges) + 1} shares")
        return Reference(edges, shares, int(found.get("count", 0)))

    def bin_of(self, values: NDArray[np.float64]) -> NDArray[np.int64]:
        """Each value's bin (0 … len(edges))."""
        return np.searchsorted(np.asarray(self.edges), values, side="left").astype(np.int64)


def _finite(values: ArrayLike) -> NDArray[np.float64]:
    found = np.asarray(values, dtype=np.float64).ravel()
    return found[np.isfinite(found)]


def reference_of(values: ArrayLike, bins: int = 10) -> Reference | None:
    """The quantile bins of ``values`` (deciles by default; tied quantiles merge, so a score
    with many equal values gets fewer bins). None without a finite value."""
    found = _finite(values)
    if found.size == 0:
        return None
    quantiles = np.quantile(found, np.arange(1, bins) / bins)
    edges = np.unique(quantiles)
    reference = Reference(tuple(float(e) for e in edges), (), int(found.size))
    counts = np.bincount(reference.bin_of(found), minlength=edges.size + 1)
    shares = tuple(float(c) for c in counts / found.size)
    return Reference(reference.edges, shares, reference.count)


def psi(reference: Reference, values: ArrayLike) -> float:
    """Population stability index of ``values`` against ``reference`` (NaN without values)."""
    found = _finite(values)
    if found.size == 0:
        return float("nan")
    counts = np.bincount(reference.bin_of(found), minlength=len(reference.shares))
    actual = np.maximum(counts / found.size, PSI_FLOOR)
    expected = np.maximum(np.asarray(reference.shares), PSI_FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


@dataclass(frozen=True)
class Calibration:
    """Predicted against observed redemption rate, overall and by decile of the prediction."""

    decisions: int
    predicted: float
    observed: float
    observed_low: float
    observed_high: float
    deciles: pl.DataFrame
    """decile, decisions, predicted, observed, observed_low, observed_high, ratio."""

    @property
    def ratio(self) -> float:
        """Mean prediction over the observed rate (inf when nothing was redeemed)."""
        if self.observed > 0:
            return self.predicted / self.observed
        return math.inf if self.predicted > 0 else float("nan")

    @property
    def off_by(self) -> float:
        """How many times off the predictions are, either way (1 = calibrated)."""
        ratio = self.ratio
        if math.isnan(ratio) or ratio == 0:
            return math.inf if ratio == 0 else ratio
        return max(ratio, 1.0 / ratio)


def calibration(predicted: ArrayLike, redeemed: ArrayLike, bins: int = 10) -> Calibration:
    """Calibration of predictions ``predicted`` against 0/1 outcomes ``redeemed``; deciles are
    equal-count bins of the prediction (ties stay together)."""
    p = np.asarray(predicted, dtype=np.float64).ravel()
    y = np.asarray(redeemed, dtype=np.float64).ravel()
    if p.shape != y.shape:
        raise ValueError("predicted and redeemed need one value per decision each")
    frame = pl.DataFrame({"p": p, "y": y})
    rank = pl.col("p").rank("min").cast(pl.Int64) - 1
    deciles = (
        frame.with_columns(decile=rank * bins // max(frame.height, 1) + 1)
        .group_by("decile")
        .agg(
            decisions=pl.len().cast(pl.Int64),
            predicted=pl.col("p").mean(),
            redeemed=pl.col("y").sum().cast(pl.Int64),
        )
        .sort("decile")
    )
    rows = []
    for row in deciles.iter_rows(named=True):
        low, high = wilson(row["redeemed"], row["decisions"])
        observed = row["redeemed"] / row["decisions"]
        ratio = row["predicted"] / observed if observed > 0 else math.inf
        rows.append(row | {"observed": observed, "observed_low": low, "observed_high": high,
                           "ratio": ratio})  # fmt: skip
    table = pl.DataFrame(
        rows,
        schema={"decile": pl.Int64, "decisions": pl.Int64, "predicted": pl.Float64,
                "redeemed": pl.Int64, "observed": pl.Float64, "observed_low": pl.Float64,
                "observed_high": pl.Float64, "ratio": pl.Float64},
    )  # fmt: skip
    n, k = p.size, int(y.sum())
    low, high = wilson(k, n)
    return Calibration(
        decisions=n,
        predicted=float(p.mean()) if n else float("nan"),
        observed=k / n if n else float("nan"),
        observed_low=low,
        observed_high=high,
        deciles=table,
    )


SCORES = ("p_redeem", "p_buy")
"""The served scores compared with training: the offer response and the purchase propensity."""


@dataclass(frozen=True)
class Thresholds:
    """When :func:`model_health` raises an alert (``NBO_MONITOR_*`` settings)."""

    max_calibration_ratio: float = 2.0
    max_psi: float = 0.2
    min_decisions: int = 500


@dataclass(frozen=True)
class ModelHealth:
    """One live model version's calibration, drift and the alerts they raise."""

    model_version: str
    decisions: int
    calibration: Calibration
    """Of the settled decisions."""
    psi: dict[str, float]
    """Score name -> PSI of its served values against the training reference (NaN: none)."""
    alerts: list[str]
    planned_psi: dict[str, float] = field(default_factory=dict)
    """Score name -> PSI of the latest day plan's candidate scores (``nbo plan``), if any."""

    def metrics(self) -> dict[str, float]:
        """Flat numbers for MLflow (NaN and inf left out by the caller)."""
        c = self.calibration
        found = {"decisions": float(self.decisions), "settled_decisions": float(c.decisions),
                 "predicted_rate": c.predicted,
                 "observed_rate": c.observed, "observed_rate_low": c.observed_low,
                 "observed_rate_high": c.observed_high, "calibration_ratio": c.ratio,
                 "alerts": float(len(self.alerts))}  # fmt: skip
        planned = {f"planned_psi_{name}": value for name, value in self.planned_psi.items()}
        return found | {f"psi_{name}": value for name, value in self.psi.items()} | planned


def model_health(
    outcomes: pl.DataFrame,
    references: dict[str, dict[str, Reference]],
    thresholds: Thresholds,
    planned: dict[str, dict[str, float]] | None = None,
) -> list[ModelHealth]:
    """Per ``model_version`` of ``outcomes`` (one row per served decision: model_version,
    redeemed 0/1 and the :data:`SCORES`; optionally ``settled``): calibration, PSI against
    ``references`` (version -> score -> training reference) and the alerts; ``planned``
    (version -> score -> PSI of its latest plan's candidates) alerts on the same threshold.

    Calibration counts only the ``settled`` decisions (whose outcome is known: a decision made
    yesterday has had no time to be redeemed), PSI every decision. Calibration alerts need at
    least ``thresholds.min_decisions`` settled decisions (fewer are too noisy to judge).
    """
    out = []
    for (version,), group in outcomes.sort("model_version").group_by(
        "model_version", maintain_order=True
    ):
        known = group.filter(pl.col("settled")) if "settled" in group.columns else group
        found = calibration(known["p_redeem"].to_numpy(), known["redeemed"].to_numpy())
        reference = references.get(str(version), {})
        drift = {
            name: psi(reference[name], group[name].to_numpy()) if name in reference else math.nan
            for name in SCORES
            if name in group.columns
        }
        alerts = []
        if found.decisions >= thresholds.min_decisions and not (
            found.off_by <= thresholds.max_calibration_ratio
        ):
            alerts.append(
                f"calibration: predicts {found.predicted:.4f}, observed {found.observed:.4f} "
                f"(off by {found.off_by:.2f}x > {thresholds.max_calibration_ratio:g}x)"
            )
        for name, value in drift.items():
            if value > thresholds.max_psi:
                alerts.append(f"drift: PSI of {name} {value:.3f} > {thresholds.max_psi:g}")
        in_plan = (planned or {}).get(str(version), {})
        for name, value in in_plan.items():
            if value > thresholds.max_psi:
                alerts.append(
                    f"drift: PSI of the plan's {name} {value:.3f} > {thresholds.max_psi:g}"
                )
        out.append(ModelHealth(str(version), group.height, found, drift, alerts, in_plan))
    return out
