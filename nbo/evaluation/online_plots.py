"""Figures of the live experiment and of model health, logged to MLflow by ``nbo experiment
report`` and ``nbo monitor``. Figures are built without pyplot (no global state to leak)."""

from __future__ import annotations

import numpy as np
import polars as pl
from matplotlib.figure import Figure

from nbo.evaluation.monitor import Calibration

__all__ = ["calibration_figure", "experiment_figures"]

_ARM_COLOURS = {"champion": "tab:blue", "challenger": "tab:orange", "holdout": "tab:grey"}


def _band(figure: Figure, over_time: pl.DataFrame, value: str, low: str, high: str) -> None:
    axes = figure.subplots()
    for (arm,), rows in over_time.sort("period_end").group_by("arm", maintain_order=True):
        if rows[value].null_count() == rows.height:
            continue
        colour = _ARM_COLOURS.get(str(arm))
        ends = rows["period_end"].to_list()
        axes.plot(ends, rows[value].to_list(), marker="o", color=colour, label=str(arm))
        axes.fill_between(ends, rows[low].to_list(), rows[high].to_list(), color=colour, alpha=0.2)
    axes.legend()
    figure.autofmt_xdate()


def experiment_figures(over_time: pl.DataFrame) -> dict[str, Figure]:
    """Per arm over time (the report as it stood at each period's end), with 95 % bands:
    redemption rate, its lift over the holdout, and spend per member."""
    if over_time.height == 0:
        return {}
    figures = {}
    for name, (value, low, high), title in (
        ("redemption_rate", ("redemption_rate", "rate_low", "rate_high"), "Redemption rate"),
        ("lift_over_holdout", ("rate_lift_vs_holdout", "lift_low", "lift_high"),
         "Redemption rate minus the holdout's"),
        ("spend_per_member", ("spend_per_member", "spend_low", "spend_high"),
         "Redemption spend per member"),
    ):  # fmt: skip
        figure = Figure(figsize=(7, 4), layout="constrained")
        _band(figure, over_time, value, low, high)
        figure.axes[0].set(title=f"{title} by arm (95% CI)", xlabel="report as of")
        figures[name] = figure
    return figures


def calibration_figure(found: Calibration, title: str) -> Figure:
    """Observed redemption rate (95 % interval) against the mean prediction, by decile."""
    figure = Figure(figsize=(5, 5), layout="constrained")
    axes = figure.subplots()
    table = found.deciles
    predicted, observed = table["predicted"].to_numpy(), table["observed"].to_numpy()
    low, high = table["observed_low"].to_numpy(), table["observed_high"].to_numpy()
    errors = np.clip([observed - low, high - observed], 0.0, None)  # rounding: never below 0
    axes.errorbar(predicted, observed, yerr=errors, fmt="o", capsize=3, label="deciles")
    top = float(max(predicted.max(initial=0.0), table["observed_high"].max() or 0.0, 0.01))
    axes.plot([0, top], [0, top], linestyle="--", color="grey", label="calibrated")
    axes.set(xlabel="predicted p_redeem", ylabel="observed redemption rate", title=title)
    axes.legend()
    return figure
