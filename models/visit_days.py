"""Day-level visit timing behind :class:`~nbo.models.timing.VisitTiming`.

A member's expected visits over the horizon are spread over the days by their weekday profile
(the club's mixed in), turned into expected visit *days* (several baskets on a day are one
visit day), then into the probability of a visit on each day and the median day of the next
visit.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl

from nbo.features.visits import WEEKDAY_COLUMNS

__all__ = ["day_rates", "median_days", "visited_days", "weekday_shares"]

_MAX_NEXT_VISIT_DAYS = 365


def weekday_shares(features: pl.DataFrame, cold: np.ndarray, prior_visits: float) -> np.ndarray:
    """Members' share of visits per weekday (Mon..Sun), with the club's as a prior.

    ``prior_visits`` pseudo-visits of the club profile are mixed into each member's; cold-start
    members get the club profile alone.
    """
    counts = features.select(pl.col(WEEKDAY_COLUMNS).cast(pl.Float64)).to_numpy()
    club = counts.sum(axis=0) + 1.0  # +1: a weekday nobody visits yet is not impossible
    counts[cold] = 0.0
    prior = prior_visits * club / club.sum()
    return np.asarray((counts + prior) / (counts.sum(axis=1, keepdims=True) + prior.sum()))


def day_rates(
    features: pl.DataFrame,
    mean_visits: np.ndarray,
    horizon_days: int,
    shares: np.ndarray,
    cold: np.ndarray,
    start: date,
    days: int,
) -> np.ndarray:
    """Expected visit days on each of ``days`` days from ``start`` (members × days).

    ``mean_visits`` are the expected baskets over ``horizon_days``; ``shares`` the weekday
    profiles of :func:`weekday_shares`.
    """
    per_day = features["baskets_per_visit_day"].fill_null(1.0).to_numpy()
    club_per_day = float(np.mean(per_day[~cold])) if (~cold).any() else 1.0
    per_day = np.where(cold, club_per_day, np.maximum(per_day, 1.0))
    weekdays = (start.weekday() + np.arange(days)) % 7
    daily = mean_visits / horizon_days / per_day
    return np.asarray(daily[:, None] * 7.0 * shares[:, weekdays])


def visited_days(members: pl.DataFrame, visits: pl.LazyFrame, start: date, days: int) -> np.ndarray:
    """1 where the member of each row of ``members`` visited on day ``start + d``, else 0."""
    end = start + timedelta(days=days)
    visited = (
        members.select("member_id")
        .with_row_index("row")
        .lazy()
        .join(visits.filter((pl.col("day") >= start) & (pl.col("day") < end)), on="member_id")
        .select("row", (pl.col("day") - pl.lit(start)).dt.total_days().alias("d"))
        .collect()
    )
    truth = np.zeros((members.height, days))
    truth[visited["row"].to_numpy(), visited["d"].to_numpy()] = 1.0
    return truth


def median_days(p_visit: np.ndarray) -> np.ndarray:
    """Days until the first day by which a visit is more likely than not.

    Past the last day of ``p_visit`` the member's average daily probability is extrapolated,
    up to a year.
    """
    never = np.cumprod(1.0 - p_visit, axis=1)  # P(no visit on days 0..d)
    reached = never <= 0.5
    first = np.argmax(reached, axis=1)
    tail = ~reached.any(axis=1)
    if tail.any():
        mean_p = np.clip(p_visit[tail].mean(axis=1), 1e-9, 1.0 - 1e-9)
        extra = np.ceil(np.log(0.5 / never[tail, -1]) / np.log(1.0 - mean_p))
        first[tail] = np.minimum(p_visit.shape[1] - 1 + extra, _MAX_NEXT_VISIT_DAYS)
    return np.asarray(first)
