"""Figures logged with each training run: recall@k, offer gains/lift, calibration, the
reliability of the visit probabilities, importance."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from matplotlib.figure import Figure

from nbo.evaluation.backtest import Evaluation
from nbo.evaluation.metrics import ranking_metrics
from nbo.tracking.bundle import Bundle

__all__ = ["training_figures"]


def _recall_curve(evaluation: Evaluation) -> Figure:
    fig, ax = plt.subplots(figsize=(6, 4))
    ks = list(range(1, 11))
    for name, recs in evaluation.recommendations.items():
        values = [ranking_metrics(recs, evaluation.truth, k)[f"recall@{k}"] for k in ks]
        ax.plot(ks, values, marker="o", label=name)
    ax.set(xlabel="k", ylabel="recall@k", title="Products: recall@k on the holdout")
    ax.legend()
    fig.tight_layout()
    return fig


def _gains(offers: pl.DataFrame) -> Figure:
    ordered = offers.sort("score", descending=True)["label"].to_numpy()
    share = np.arange(1, len(ordered) + 1) / len(ordered)
    gains = np.cumsum(ordered) / max(ordered.sum(), 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(share, gains, label="model")
    left.plot([0, 1], [0, 1], linestyle="--", label="random")
    left.set(
        xlabel="share of pairs contacted",
        ylabel="share of redemptions",
        title="Offers: cumulative gains",
    )
    left.legend()
    lift = np.divide(gains, share)
    right.plot(share, lift)
    right.axhline(1.0, linestyle="--")
    right.set(xlabel="share of pairs contacted", ylabel="lift", title="Offers: lift", xscale="log")
    fig.tight_layout()
    return fig


def _calibration(offers: pl.DataFrame, bins: int = 10) -> Figure:
    binned = (
        offers.with_columns(bin=(pl.col("score").rank("ordinal") * bins / (pl.len() + 1)).floor())
        .group_by("bin")
        .agg(pl.col("score").mean().alias("predicted"), pl.col("label").mean().alias("observed"))
        .sort("bin")
        .with_columns(method=pl.lit("model"))
    )
    return _reliability(
        binned, "mean predicted p_redeem", "observed redemption rate", "Offers: calibration"
    )


def _reliability(curves: pl.DataFrame, xlabel: str, ylabel: str, title: str) -> Figure:
    """Observed against predicted per bin (columns method, predicted, observed), one line per
    method, beside the diagonal."""
    fig, ax = plt.subplots(figsize=(5, 5))
    top = max(float(np.nanmax(curves.select("predicted", "observed").to_numpy())), 1e-3)
    ax.plot([0, top], [0, top], linestyle="--", label="perfect")
    for (method,), curve in curves.group_by("method", maintain_order=True):
        ax.plot(curve["predicted"], curve["observed"], marker="o", label=f"{method} (deciles)")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend()
    fig.tight_layout()
    return fig


def _importance(names: list[str], values: np.ndarray, title: str) -> Figure:
    order = np.argsort(values)
    fig, ax = plt.subplots(figsize=(6, max(3, 0.22 * len(names))))
    ax.barh(np.array(names)[order], values[order])
    ax.set(xlabel="share of split gain", title=title)
    fig.tight_layout()
    return fig


def training_figures(bundle: Bundle, evaluation: Evaluation) -> dict[str, Any]:
    """The figures for one training run, by file stem."""
    figures: dict[str, Any] = {}
    if evaluation.recommendations:
        figures["recall_at_k"] = _recall_curve(evaluation)
    if evaluation.offers.height and evaluation.offers["label"].sum() > 0:
        figures["offer_gains_lift"] = _gains(evaluation.offers)
        figures["offer_calibration"] = _calibration(evaluation.offers)
    curves = evaluation.visit_reliability
    if curves is not None and curves.height and curves["member_days"].sum() > 0:
        figures["visit_reliability"] = _reliability(
            curves,
            "mean predicted p_visit (member-day)",
            "observed share of member-days with a visit",
            "Visits: reliability of p_visit",
        )
    importance = getattr(bundle.affinity, "importance_", None)
    if importance:
        figures["product_ranker_importance"] = _importance(
            list(importance), np.array(list(importance.values())), "Product ranker: importance"
        )
    return figures
