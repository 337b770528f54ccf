"""Training examples of :class:`~nbo.models.timing.VisitTiming`: earlier cutoffs, stacked.

At each cutoff ``c`` the examples are the (sampled) members of ``History.at(club, c)`` with
their point-in-time visit features at ``c`` and, as the label, their visits in ``[c, c +
horizon_days)``. Cutoffs a week apart give overlapping label windows: many more (if
correlated) examples than back-to-back windows, which the median model gains from. The
members at each cutoff come from one table of those known at ``as_of`` (:func:`members_at`),
not from a scan of the receipts per cutoff.
"""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from nbo.features.history import History, as_datetime
from nbo.features.visits import visit_features, visits_between, with_base_rate

__all__ = ["members_at", "window_cutoffs", "window_examples"]


def window_cutoffs(
    as_of: date, first_day: date | None, *, horizon_days: int, step_days: int, n_windows: int
) -> list[date]:
    """Cutoffs ``as_of - horizon_days - k * step_days``, latest first, after ``first_day``.

    Every label window ends by ``as_of``. Cutoffs soon after the club's first receipt
    (``first_day``), with little history, still help: on Complete Journey, dropping those
    within a horizon of it made the forecasts worse.
    """
    if first_day is None:
        return []
    latest = as_of - timedelta(days=horizon_days)
    cutoffs = (latest - timedelta(days=step_days * k) for k in range(n_windows))
    return [c for c in cutoffs if c > first_day]


def members_at(known: pl.DataFrame, cutoff: date) -> pl.LazyFrame:
    """The rows of ``known`` that ``History.at(club, cutoff).members`` holds.

    ``known``: members known at a later date (``member_id``, ``joined_at``) with ``first_day``,
    the day of their first receipt (null if none). The rule is History's: joined before the
    cutoff or, join date unknown, shopped before it.
    """
    joined = pl.col("joined_at") < as_datetime(cutoff)
    shopped = pl.col("joined_at").is_null() & (pl.col("first_day") < cutoff)
    return known.lazy().filter(joined | shopped.fill_null(False))


def window_examples(
    history: History,
    visits: pl.LazyFrame,
    sample: pl.DataFrame,
    cutoffs: list[date],
    horizon_days: int,
) -> pl.DataFrame:
    """Examples at every cutoff, latest cutoff first: features, ``visits`` and ``cutoff``.

    ``visits`` is :func:`~nbo.features.visits.member_visits` of the sampled members before
    ``history.as_of`` (collected once: the features at each cutoff only look at days before
    it); ``sample`` the sampled ``member_id``.
    """
    if not cutoffs:
        return pl.DataFrame()
    first_days = visits.group_by("member_id").agg(pl.col("day").min().alias("first_day"))
    known = (
        history.members.select("member_id", "joined_at")
        .join(sample.lazy(), on="member_id", how="semi")
        .join(first_days, on="member_id", how="left")
        .collect()
    )
    frames = [
        with_base_rate(visit_features(visits, members_at(known, cutoff), cutoff), horizon_days)
        .join(visits_between(visits, cutoff, horizon_days), on="member_id", how="left")
        .with_columns(pl.col("visits").fill_null(0), pl.lit(cutoff).alias("cutoff"))
        for cutoff in cutoffs
    ]
    return pl.concat(frames).collect().sort("cutoff", "member_id", descending=[True, False])
