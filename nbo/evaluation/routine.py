"""Routine purchases among decided offers: did the member buy the offer's products most weeks?

An offer on products a member buys week after week mostly pays for a purchase that would have
happened anyway. For each decision, :func:`routine_weeks` counts in how many of the last
``weeks`` 7-day weeks before the decision the member bought any of the offer's products (the
club's ``offer_products``, the products candidates count ``bought_baskets`` on). Week k
(1..``weeks``) is ``[at − 7k days, at − 7(k−1) days)``, ``at`` the decision time; receipts are
read through :class:`~nbo.features.history.History`, so nothing at or after ``at`` counts.

:func:`routine_share` is the share of decisions with at least ``min_weeks`` such weeks;
:func:`routine_summary` adds a bootstrap interval over members and the distribution of weeks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import polars as pl

from nbo.errors import EvaluationError
from nbo.evaluation.metrics import ratio_interval
from nbo.features.history import History

__all__ = ["RoutineSummary", "routine_buckets", "routine_share", "routine_summary", "routine_weeks"]

WEEK = timedelta(days=7)
_WEEK_US = WEEK // timedelta(microseconds=1)


def _check_weeks(weeks: int, min_weeks: int | None = None) -> None:
    if weeks < 1:
        raise EvaluationError(f"weeks must be at least 1, got {weeks}")
    if min_weeks is not None and not 1 <= min_weeks <= weeks:
        raise EvaluationError(f"min_weeks must be between 1 and weeks ({weeks}), got {min_weeks}")


def _check(decisions: pl.DataFrame, history: History, weeks: int) -> None:
    _check_weeks(weeks)
    missing = {"member_id", "offer_id"} - set(decisions.columns)
    if missing:
        raise EvaluationError(f"decisions lack column(s) {', '.join(sorted(missing))}")
    if "decided_at" in decisions.columns and decisions.height:
        other = decisions.filter(pl.col("decided_at") != history.as_of)
        if other.height:
            raise EvaluationError(
                f"{other.height} decision(s) were made at {other['decided_at'][0]}, not at the "
                f"history's cut {history.as_of}: count their weeks with History.at(club, "
                "decided_at)"
            )


def routine_weeks(decisions: pl.DataFrame, history: History, *, weeks: int = 8) -> pl.DataFrame:
    """``decisions`` with ``weeks_bought``: weeks of the last ``weeks`` with the offer's products.

    The decisions were made at ``history.as_of`` (their ``decided_at``, where they carry one);
    see the module docstring for the weeks. Row order is kept.
    """
    _check(decisions, history, weeks)
    start = history.as_of - weeks * WEEK
    pairs = decisions.select("member_id", "offer_id").unique()
    products = history.club.offer_products.join(
        pairs.lazy().select("offer_id").unique(), on="offer_id", how="semi"
    ).select("offer_id", "product_id")
    bought = (
        history.transactions.filter(pl.col("ts") >= start)
        .select("member_id", "product_id", "ts")
        .join(pairs.lazy().select("member_id").unique(), on="member_id", how="semi")
        .join(products, on="product_id")
        .join(pairs.lazy(), on=["member_id", "offer_id"], how="semi")
        .group_by("member_id", "offer_id")
        .agg(
            # counted from the window's start: a receipt at exactly at − 7 days is in week 1
            weeks_bought=((pl.col("ts") - pl.lit(start)).dt.total_microseconds() // _WEEK_US)
            .n_unique()
            .cast(pl.Int64)
        )
    )
    return (
        decisions.lazy()
        .join(bought, on=["member_id", "offer_id"], how="left", maintain_order="left")
        .with_columns(pl.col("weeks_bought").fill_null(0))
        .collect()
    )


def routine_share(
    decisions: pl.DataFrame, history: History, *, weeks: int = 8, min_weeks: int = 4
) -> float:
    """Share of ``decisions`` whose member bought the offer's products in ≥ ``min_weeks`` weeks.

    NaN when there are no decisions.
    """
    _check_weeks(weeks, min_weeks)
    values = routine_weeks(decisions, history, weeks=weeks)["weeks_bought"].to_numpy()
    return float(np.mean(values >= min_weeks)) if len(values) else float("nan")


def routine_buckets(*, weeks: int = 8, min_weeks: int = 4) -> list[tuple[int, int]]:
    """Week ranges (first, last) of the distribution: 0, 1..min−1, min, min+1..weeks (non-empty)."""
    _check_weeks(weeks, min_weeks)
    spans = [(0, 0), (1, min_weeks - 1), (min_weeks, min_weeks), (min_weeks + 1, weeks)]
    return [(first, last) for first, last in spans if 0 <= first <= last <= weeks]


@dataclass(frozen=True)
class RoutineSummary:
    """Routine share of a set of decisions, its 95 % interval and the distribution of weeks."""

    decisions: int
    members: int
    share: float
    share_low: float
    share_high: float
    weeks: int
    min_weeks: int
    distribution: dict[tuple[int, int], int]  # (first, last) weeks → decisions

    @staticmethod
    def label(span: tuple[int, int]) -> str:
        """``4`` or ``1–3``: a week range as the tables print it."""
        first, last = span
        return str(first) if first == last else f"{first}–{last}"

    def metrics(self, prefix: str = "", suffix: str = "") -> dict[str, float]:
        """Flat metrics for MLflow: ``{prefix}routine_share{suffix}``, its bounds and counts."""
        out = {
            "routine_share": self.share,
            "routine_share_low": self.share_low,
            "routine_share_high": self.share_high,
            "count": float(self.decisions),
            "members": float(self.members),
        }
        for (first, last), count in self.distribution.items():
            name = f"weeks_{first}" if first == last else f"weeks_{first}_{last}"
            out[name] = float(count)
        return {f"{prefix}{key}{suffix}": value for key, value in out.items()}


def routine_summary(
    counted: pl.DataFrame,
    *,
    weeks: int = 8,
    min_weeks: int = 4,
    draws: int = 2000,
    seed: int = 0,
) -> RoutineSummary:
    """Summarise :func:`routine_weeks`' output; the interval resamples members (seeded)."""
    routine = pl.col("weeks_bought") >= min_weeks
    per_member = counted.group_by("member_id").agg(
        routine=routine.sum().cast(pl.Float64), decided=pl.len().cast(pl.Float64)
    )
    low, high = ratio_interval(
        per_member["routine"].to_numpy(), per_member["decided"].to_numpy(), draws=draws, seed=seed
    )
    values = counted["weeks_bought"].to_numpy()
    return RoutineSummary(
        decisions=counted.height,
        members=per_member.height,
        share=float(np.mean(values >= min_weeks)) if counted.height else float("nan"),
        share_low=low,
        share_high=high,
        weeks=weeks,
        min_weeks=min_weeks,
        distribution={
            (first, last): int(np.sum((values >= first) & (values <= last)))
            for first, last in routine_buckets(weeks=weeks, min_weeks=min_weeks)
        },
    )
