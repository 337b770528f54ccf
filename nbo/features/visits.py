"""Point-in-time visit features: how often, how recently and on which days a member shops.

A *visit* is one basket (receipt): two receipts on the same day are two visits. Baskets rather
than shopping days because they are what a club counts and what a coupon can be redeemed in;
the ratio of the two (``baskets_per_visit_day``) is kept as a feature and turns basket rates
into the per-day visit probabilities of the timing model.

Everything starts from :func:`member_visits`, a small table of distinct baskets per member,
calendar day and hour (one group-by pass over the receipt lines). Feature functions take that
table and a cut date and only look at days strictly before it, so the training cutoffs of the
timing model can all be computed from one collected table while each still sees exactly what
``History.at(club, cutoff)`` would. Nothing is collected here.
"""

from __future__ import annotations

import itertools
from datetime import date, timedelta

import polars as pl

from nbo.features.history import History

__all__ = [
    "BASE_RATE_COLUMNS",
    "FEATURE_COLUMNS",
    "HALF_LIVES",
    "PROFILE_DAYS",
    "WEEKDAY_COLUMNS",
    "WINDOWS",
    "history_visits",
    "member_visits",
    "preferred_hours",
    "visit_features",
    "visits_between",
    "with_base_rate",
]

WINDOWS = (7, 14, 28, 56, 91, 182, 364)
"""Look-back windows (days) of the visit counts."""

PROFILE_DAYS = 364
"""Weekday and hour profiles and the inter-visit gap statistics use the last year only."""

WEEKDAY_COLUMNS = tuple(f"visits_wd{d}" for d in range(7))
"""Baskets per weekday over the last year (``visits_wd0`` = Monday … ``visits_wd6`` = Sunday)."""

HALF_LIVES = (14, 28, 56)
"""Half-lives (days) of the exponentially weighted visit rates."""

_BANDS = tuple(itertools.pairwise(WINDOWS))  # (7, 14), (14, 28), …
_WEEKS = 13  # weekly regularity over the last 13 weeks (91 days)

FEATURE_COLUMNS = (
    *(f"visits_{w}d" for w in WINDOWS),
    *(f"visits_{a}_{b}d" for a, b in _BANDS),
    "visit_days_28d",
    "visit_days_91d",
    "visits_total",
    "visit_days_total",
    "days_since_last_visit",
    "days_since_first_visit",
    "tenure_days",
    "gap_mean",
    "gap_median",
    "gap_std",
    "gap_last",
    "overdue",
    "trend",
    "visits_per_day_91d",
    "baskets_per_visit_day",
    *WEEKDAY_COLUMNS,
    "visits_56_84d",
    "visits_28d_median3",
    "weeks_visited_13w",
    "weekly_std_13w",
    *(f"rate_halflife_{h}d" for h in HALF_LIVES),
)
"""The numeric columns :func:`visit_features` returns besides ``member_id``."""

BASE_RATE_COLUMNS = ("base", *(f"pace_{w}d" for w in WINDOWS[:-1]), "visits_missed")
"""The columns :func:`with_base_rate` adds."""

_PRIOR_DAYS = 14.0  # weight, in days, of the club rate in a member's shrunk recent rate


def member_visits(transactions: pl.LazyFrame, *, hours: bool = True) -> pl.LazyFrame:
    """Distinct baskets per member and day (and hour): ``member_id, day, [hour,] baskets``."""
    keys = [pl.col("member_id"), pl.col("ts").dt.date().alias("day")]
    if hours:
        keys.append(pl.col("ts").dt.hour().alias("hour"))
    return transactions.group_by(keys).agg(
        pl.col("basket_id").n_unique().cast(pl.UInt32).alias("baskets")
    )


def history_visits(history: History, *, hours: bool = True) -> pl.LazyFrame:
    """:func:`member_visits` of everything known before ``history.as_of``."""
    return member_visits(history.transactions, hours=hours)


def visits_between(visits: pl.LazyFrame, start: date, days: int) -> pl.LazyFrame:
    """Baskets per member with a day in ``[start, start + days)``: ``member_id, visits``.

    The label of the timing model and the truth of its benchmark; members without a visit in
    the window have no row.
    """
    end = start + timedelta(days=days)
    return (
        visits.filter((pl.col("day") >= start) & (pl.col("day") < end))
        .group_by("member_id")
        .agg(pl.col("baskets").sum().cast(pl.Int64).alias("visits"))
    )


def _days_before(as_of: date) -> pl.Expr:
    """Whole days between ``day`` and ``as_of`` (1 = the day before the cut)."""
    return (pl.lit(as_of) - pl.col("day")).dt.total_days().cast(pl.Int32)


def _member_aggregates(visits: pl.LazyFrame, as_of: date) -> pl.LazyFrame:
    # Row-wise columns first, then one group-by of plain sums/min/max/mean/median: polars runs
    # those on its fast path, where filters and sorts inside the aggregation would not.
    member, day = pl.col("member_id"), pl.col("day")
    same_member = member == member.shift(1)
    gap = pl.when(same_member).then((day - day.shift(1)).dt.total_days())
    daily = (
        visits.filter(day < as_of)
        .group_by("member_id", "day")
        .agg(pl.col("baskets").sum())
        .sort("member_id", "day")
        .with_columns(
            _days_before(as_of).alias("age"),
            (day.dt.weekday() - 1).alias("weekday"),
            gap.cast(pl.Float64).alias("gap"),
            (member != member.shift(-1)).fill_null(True).alias("is_last"),
        )
    )
    weekly = (
        daily.filter(pl.col("age") <= 7 * _WEEKS)
        .group_by("member_id", ((pl.col("age") - 1) // 7).alias("week"))
        .agg(pl.col("baskets").sum().cast(pl.Float64))
        .group_by("member_id")
        .agg(
            pl.len().alias("weeks_visited_13w"),
            (pl.col("baskets") ** 2).sum().alias("_weekly_squares"),
        )
    )
    age, baskets, weekday = pl.col("age"), pl.col("baskets"), pl.col("weekday")
    recent = age <= PROFILE_DAYS
    # a gap counts when both of its visit days are within the profile year
    recent_gap = pl.when(age + pl.col("gap") <= PROFILE_DAYS).then(pl.col("gap"))
    return (
        daily.group_by("member_id")
        .agg(
            *((baskets * (age <= w)).sum().alias(f"visits_{w}d") for w in WINDOWS),
            (baskets * ((age > 56) & (age <= 84))).sum().alias("visits_56_84d"),
            *(
                (baskets * pl.lit(0.5).pow(age / h)).sum().alias(f"_decayed_{h}d")
                for h in HALF_LIVES
            ),
            (age <= 28).sum().alias("visit_days_28d"),
            (age <= 91).sum().alias("visit_days_91d"),
            baskets.sum().alias("visits_total"),
            pl.len().alias("visit_days_total"),
            age.min().alias("days_since_last_visit"),
            age.max().alias("days_since_first_visit"),
            recent_gap.mean().alias("gap_mean"),
            recent_gap.median().alias("gap_median"),
            recent_gap.std().alias("gap_std"),
            pl.when(pl.col("is_last")).then(recent_gap).max().alias("gap_last"),
            *(
                (baskets * (recent & (weekday == d))).sum().alias(col)
                for d, col in enumerate(WEEKDAY_COLUMNS)
            ),
        )
        .join(weekly, on="member_id", how="left")
    )


def _decay_weights(half_life: int, days: pl.Expr) -> pl.Expr:
    """Sum of ``0.5 ** (a / half_life)`` over days back ``a = 1..days`` (a geometric series)."""
    r = 0.5 ** (1 / half_life)
    weights: pl.Expr = (1 - pl.lit(r).pow(days)) * (r / (1 - r))
    return weights


def visit_features(visits: pl.LazyFrame, members: pl.LazyFrame, as_of: date) -> pl.LazyFrame:
    """One row per member of ``members`` (``member_id``, ``joined_at``) with FEATURE_COLUMNS.

    ``visits_{w}d`` counts visits in the last ``w`` days, ``visits_{a}_{b}d`` those between
    ``a`` and ``b`` days back (so trees can see a change of pace without subtracting).
    Only visits on days before ``as_of`` count. Counts of members without a visit are 0; the
    recency, gap and ratio columns are null where they are undefined (never visited, one visit
    day). ``tenure_days`` is days since joining where the join date is known, else since the
    first visit.

    For the shape of the next weeks' count: ``visits_28d_median3`` is the median of the last
    three 28-day blocks, ``weeks_visited_13w`` and ``weekly_std_13w`` the weeks with a visit
    and the spread of weekly counts over the last 13 weeks, ``rate_halflife_{h}d`` visits per
    day weighted by ``0.5 ** (days back / h)`` over the days observed (tenure, 14 to 364), so
    a short history is a rate over what was seen, not a count diluted by days never seen.
    """
    counts = [
        *(f"visits_{w}d" for w in WINDOWS),
        "visit_days_28d",
        "visit_days_91d",
        "visits_total",
        "visit_days_total",
        *WEEKDAY_COLUMNS,
        "visits_56_84d",
        "weeks_visited_13w",
    ]
    joined_days = (pl.lit(as_of) - pl.col("joined_at").dt.date()).dt.total_days().cast(pl.Int32)
    tenure = pl.coalesce(joined_days, pl.col("days_since_first_visit"))
    observed_91 = pl.min_horizontal(pl.col("tenure_days"), pl.lit(91)).clip(lower_bound=14)
    observed = pl.col("tenure_days").fill_null(0).clip(14, PROFILE_DAYS)
    weekly_mean = pl.col("visits_91d") / _WEEKS
    weekly_variance = pl.col("_weekly_squares").fill_null(0.0) / _WEEKS - weekly_mean**2
    blocks = (
        pl.col("visits_28d"),
        pl.col("visits_56d") - pl.col("visits_28d"),
        pl.col("visits_56_84d"),
    )
    return (
        members.select("member_id", "joined_at")
        .join(_member_aggregates(visits, as_of), on="member_id", how="left")
        .with_columns(
            *(pl.col(c).fill_null(0).cast(pl.Int32) for c in counts),
            tenure.alias("tenure_days"),
        )
        .with_columns(
            *(
                (pl.col(f"visits_{b}d") - pl.col(f"visits_{a}d")).alias(f"visits_{a}_{b}d")
                for a, b in _BANDS
            ),
            (pl.col("days_since_last_visit") / pl.col("gap_median")).alias("overdue"),
            ((pl.col("visits_28d") + 1) / (pl.col("visits_91d") * 28 / 91 + 1)).alias("trend"),
            (pl.col("visits_91d") / observed_91).alias("visits_per_day_91d"),
            (pl.col("visits_total") / pl.col("visit_days_total")).alias("baskets_per_visit_day"),
            pl.concat_list(blocks).list.median().alias("visits_28d_median3"),
            weekly_variance.clip(lower_bound=0.0).sqrt().alias("weekly_std_13w"),
            *(
                (pl.col(f"_decayed_{h}d").fill_null(0.0) / _decay_weights(h, observed)).alias(
                    f"rate_halflife_{h}d"
                )
                for h in HALF_LIVES
            ),
        )
        .select("member_id", *FEATURE_COLUMNS)
    )


def with_base_rate(features: pl.LazyFrame, horizon_days: int) -> pl.LazyFrame:
    """Add ``base``: visits over ``horizon_days`` at the member's shrunk recent rate.

    The rate is visits in the last 91 days (or since joining, if later) with 14 days at the
    club rate mixed in, so a new or quiet member gets a sensible nonzero rate; the club rate
    is over the members in ``features``. Relative to it, ``pace_{w}d`` is the pace of the
    last ``w`` days over the base pace and ``visits_missed`` the visits the base expects since
    the last one.
    """
    observed = pl.min_horizontal(pl.col("tenure_days").fill_null(0), pl.lit(91))
    club_rate = pl.max_horizontal(
        pl.col("visits_91d").sum() / observed.sum().clip(lower_bound=1), pl.lit(1e-3)
    )
    shrunk = (pl.col("visits_91d") + _PRIOR_DAYS * club_rate) / (observed + _PRIOR_DAYS)
    base = pl.col("base")
    return features.with_columns((horizon_days * shrunk).alias("base")).with_columns(
        *(
            (pl.col(f"visits_{w}d") * (horizon_days / w) / base).alias(f"pace_{w}d")
            for w in WINDOWS[:-1]
        ),
        (pl.col("days_since_last_visit") * base / horizon_days).alias("visits_missed"),
    )


def preferred_hours(visits: pl.LazyFrame, as_of: date) -> pl.LazyFrame:
    """Each member's most frequent visit hour over the last year (ties: the earliest hour)."""
    recent = (pl.col("day") < as_of) & (_days_before(as_of) <= PROFILE_DAYS)
    return (
        visits.filter(recent)
        .group_by("member_id", "hour")
        .agg(pl.col("baskets").sum())
        .group_by("member_id")
        .agg(
            pl.col("hour")
            .sort_by(["baskets", "hour"], descending=[True, False])
            .first()
            .cast(pl.Int8)
            .alias("preferred_hour")
        )
    )
