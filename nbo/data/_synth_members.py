"""Members of a synthetic club: who they are, when they join, lapse and shop.

Everything is vectorised over a chunk of members: arrays indexed by the member's position in the
chunk (``member``) or by visit, never a Python loop per member or per receipt line.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import NDArray

from nbo.data._synth_catalogue import DAY_S, Catalogue
from nbo.data.contract import TABLES

__all__ = [
    "HISTORY_DAYS",
    "Members",
    "Visits",
    "draw_members",
    "draw_visits",
    "expand",
    "micros",
    "search",
]

# Behaviour, tuned so a year of a million members lands near a hundred million receipt lines.
VISITS_PER_WEEK = 0.62  # mean over members, gamma distributed (a few weekly shoppers, many rare)
IMPULSE_LINES = 1.9  # mean non-staple lines per visit for a two-person household
FAVOURITE_CATEGORIES = 3
JOIN_PER_WEEK = 0.003  # share of the club joining per week of the period
LAPSE_PER_WEEK = 0.003
DEMOGRAPHICS_KNOWN = 0.7
HISTORY_DAYS = 6 * 365  # members who joined before the period joined up to six years before
WEEKDAY_SHARE = np.array([0.12, 0.12, 0.13, 0.14, 0.16, 0.20, 0.13])  # Monday..Sunday
AGE = ("19-24", "25-34", "35-44", "45-54", "55-64", "65+"), (0.07, 0.18, 0.21, 0.22, 0.18, 0.14)
INCOME = (
    ("Under 15K", "15-24K", "25-34K", "35-49K", "50-74K", "75-99K", "100-149K", "150K+"),
    (0.08, 0.10, 0.12, 0.18, 0.22, 0.13, 0.11, 0.06),
)
HOME = (
    ("Homeowner", "Renter", "Probable Owner", "Probable Renter", "Unknown"),
    (0.55, 0.15, 0.1, 0.05, 0.15),
)
SIZE = ("1", "2", "3", "4", "5+"), (0.28, 0.34, 0.16, 0.13, 0.09)
COMPOSITION = ("1 Adult No Kids", "2 Adults No Kids", "1 Adult Kids", "2 Adults Kids")
KIDS = ("None", "1", "2", "3+")


def micros(catalogue: Catalogue, seconds: NDArray[np.int64]) -> pl.Series:
    """Seconds from the period start as a contract timestamp (naive, microseconds)."""
    epoch_s = catalogue.start_day * DAY_S
    return pl.Series((seconds + epoch_s) * 1_000_000, dtype=pl.Int64).cast(pl.Datetime("us"))


def expand(counts: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """For groups of ``counts`` items: each item's group and its position within the group."""
    group = np.repeat(np.arange(counts.size, dtype=np.int64), counts)
    starts = np.cumsum(counts) - counts
    return group, np.arange(group.size, dtype=np.int64) - starts[group]


def search(cdf: NDArray[np.float64], values: NDArray[np.float64]) -> NDArray[np.int64]:
    """Inverse-CDF sampling: the index each uniform draw in ``values`` falls on."""
    found = np.searchsorted(cdf, values, side="right")
    return np.minimum(found, cdf.size - 1).astype(np.int64)


@dataclass(frozen=True)
class Members:
    """A chunk of members and the habits that drive their shopping."""

    member_id: NDArray[np.int64]
    join_s: NDArray[np.int64]  # seconds from the period start; negative: joined before it
    first_day: NDArray[np.int64]  # first day the member can shop in the period
    end_day: NDArray[np.int64]  # day after the last (the day the member lapses, or the end)
    visit_rate: NDArray[np.float64]  # visits per week while active
    impulse_lines: NDArray[np.float64]  # mean non-staple lines per visit
    household_size: NDArray[np.int64]
    favourite_weekday: NDArray[np.int64]
    weekday_loyalty: NDArray[np.float64]  # share of visits on the favourite weekday
    irregularity: NDArray[np.float64]  # 0: visits evenly spaced, 1: anywhere in their slot
    hour: NDArray[np.float64]  # usual time of day to shop, in hours
    home_store: NDArray[np.int64]
    favourite_categories: NDArray[np.int64]  # (member, FAVOURITE_CATEGORIES)
    favourite_share: NDArray[np.float64]  # share of impulse lines from favourite categories
    pace: NDArray[np.float64]  # multiplies every staple cycle (big households run out sooner)
    coupon_prone: NDArray[np.float64]  # multiplies the redemption probability

    @property
    def active_days(self) -> NDArray[np.int64]:
        return self.end_day - self.first_day


def _demographics(
    rng: np.random.Generator, n: int
) -> tuple[dict[str, pl.Series], NDArray[np.int64]]:
    """Banded demographics (null where the club does not know them) and household sizes."""
    known = rng.random(n) < DEMOGRAPHICS_KNOWN
    size = rng.choice(len(SIZE[0]), n, p=SIZE[1]) + 1
    adults = np.where(size == 1, 1, np.where(rng.random(n) < 0.85, 2, 1))
    kids = np.minimum(size - adults, 3)
    married = np.where(adults == 2, rng.random(n) < 0.8, rng.random(n) < 0.05)
    codes = {
        "age_band": rng.choice(len(AGE[0]), n, p=AGE[1]),
        "income_band": rng.choice(len(INCOME[0]), n, p=INCOME[1]),
        "home_ownership": rng.choice(len(HOME[0]), n, p=HOME[1]),
        "marital_status": np.where(rng.random(n) < 0.1, 2, np.where(married, 0, 1)),
        "household_size": size - 1,
        "household_comp": (adults - 1) + 2 * (kids > 0),
        "kids_count": kids,
    }
    labels = {
        "age_band": AGE[0],
        "income_band": INCOME[0],
        "home_ownership": HOME[0],
        "marital_status": ("Married", "Unmarried", "Unknown"),
        "household_size": SIZE[0],
        "household_comp": COMPOSITION,
        "kids_count": KIDS,
    }
    columns = {
        name: pl.Series(labels[name], dtype=pl.String).gather(
            pl.Series(code, dtype=pl.Int64).set(pl.Series(~known), None)
        )
        for name, code in codes.items()
    }
    return columns, size.astype(np.int64)


def draw_members(
    rng: np.random.Generator, catalogue: Catalogue, first_member_id: int, n: int
) -> tuple[pl.DataFrame, Members]:
    """The members table of a chunk and each member's shopping habits."""
    days = catalogue.period_days
    new = rng.random(n) < min(0.3, JOIN_PER_WEEK * catalogue.weeks)
    # new members join before the last day, so each has at least one day to shop
    join_s = np.where(
        new,
        (rng.random(n) * (days - 1) * DAY_S).astype(np.int64),
        -(rng.random(n) * HISTORY_DAYS * DAY_S).astype(np.int64) - DAY_S,
    )
    first_day = np.where(new, join_s // DAY_S + 1, 0)
    lapses = rng.random(n) < min(0.3, LAPSE_PER_WEEK * catalogue.weeks)
    lapse_day = first_day + 1 + (rng.random(n) * (days - first_day - 1)).astype(np.int64)
    demographics, size = _demographics(rng, n)
    members = Members(
        member_id=np.arange(first_member_id, first_member_id + n, dtype=np.int64),
        join_s=join_s,
        first_day=first_day,
        end_day=np.where(lapses, lapse_day, days),
        visit_rate=np.clip(rng.gamma(1.3, VISITS_PER_WEEK / 1.3, n), 0.05, 5.0),
        impulse_lines=IMPULSE_LINES * (0.7 + 0.15 * size) * rng.lognormal(-0.08, 0.4, n),
        household_size=size,
        favourite_weekday=rng.choice(7, n, p=WEEKDAY_SHARE),
        weekday_loyalty=rng.uniform(0.1, 0.7, n),
        irregularity=rng.uniform(0.3, 1.0, n),
        hour=rng.choice([9.5, 12.5, 17.5, 19.5], n, p=[0.25, 0.2, 0.35, 0.2])
        + rng.normal(0.0, 0.75, n),
        home_store=search(catalogue.store_cdf, rng.random(n)),
        favourite_categories=search(catalogue.favourite_cdf, rng.random((n, FAVOURITE_CATEGORIES))),
        favourite_share=rng.uniform(0.2, 0.7, n),
        pace=rng.lognormal(0.0, 0.15, n) * (1.15 - 0.05 * size),
        coupon_prone=rng.gamma(2.0, 0.5, n),
    )
    frame = pl.DataFrame(
        {"member_id": members.member_id, "joined_at": micros(catalogue, join_s), **demographics},
        schema=TABLES["members"].schema,
    )
    return frame, members


@dataclass(frozen=True)
class Visits:
    """A chunk's shopping trips, sorted by member then time (one basket each)."""

    member: NDArray[np.int64]  # position of the member in the chunk
    ts_s: NDArray[np.int64]  # seconds from the period start
    first: NDArray[np.int64]  # visits of member m are first[m]..first[m + 1]
    store: NDArray[np.int64]
    basket_id: NDArray[np.int64]
    period_s: int

    @property
    def key(self) -> NDArray[np.int64]:
        """member * period_s + ts_s: ascending, so visits can be found with searchsorted."""
        return self.member * self.period_s + self.ts_s

    def at_or_after(self, member: NDArray[np.int64], ts_s: NDArray[np.int64]) -> NDArray[np.int64]:
        """Index of the first visit of ``member`` at or after ``ts_s`` (``first[member + 1]``
        when there is none)."""
        return np.searchsorted(self.key, member * self.period_s + ts_s).astype(np.int64)


def seasonal_time(catalogue: Catalogue) -> NDArray[np.float64] | None:
    """Cumulative visit intensity at the start of each day of the period and its end (None
    without seasonality): ``1 + seasonality * cos(2 pi (day of year - 355) / 365.25)``."""
    if catalogue.seasonality <= 0:
        return None
    days = catalogue.start_day + np.arange(catalogue.period_days)
    day_of_year = days % 365.25  # days since 1970-01-01: close enough to the day of the year
    intensity = 1.0 + catalogue.seasonality * np.cos(2 * np.pi * (day_of_year - 355) / 365.25)
    return np.concatenate([[0.0], np.cumsum(intensity)])


def draw_visits(rng: np.random.Generator, catalogue: Catalogue, members: Members) -> Visits:
    """Shopping trips: a Poisson number per member, on favourite weekdays and hours."""
    max_visits = catalogue.period_days  # at most one a day on average; bounds basket ids
    expected = members.visit_rate * members.active_days / 7
    season = seasonal_time(catalogue)
    if season is not None:  # the season's mean intensity over each member's active days
        span = season[members.end_day] - season[members.first_day]
        expected = expected * span / np.maximum(members.active_days, 1)
    counts = np.clip(rng.poisson(expected), 1, max_visits).astype(np.int64)
    member, number = expand(counts)
    first_day, active = members.first_day[member], members.active_days[member]
    # one visit in each of ``count`` equal slots of the active days, more or less mid-slot
    # for members of regular habits: weekly shoppers come back every week
    spread = members.irregularity[member] * (rng.random(member.size) - 0.5)
    slot = active / counts[member]
    if season is None:
        day = first_day + ((number + 0.5 + spread) * slot).astype(np.int64)
    else:  # the same slots in seasonal time: more visits where the intensity is higher
        start, end = season[first_day], season[members.end_day[member]]
        at = start + (number + 0.5 + spread) / counts[member] * (end - start)
        day = np.searchsorted(season, at, side="right").astype(np.int64) - 1
    day = np.minimum(day, members.end_day[member] - 1)
    # move the day back to the member's favourite weekday, or to the club's usual weekdays
    target = np.where(
        rng.random(member.size) < members.weekday_loyalty[member],
        members.favourite_weekday[member],
        rng.choice(7, member.size, p=WEEKDAY_SHARE),
    )
    moved = day - (catalogue.start_weekday + day - target) % 7
    moved = np.where(moved < first_day, moved + 7, moved)
    day = np.where(moved < members.end_day[member], moved, day)
    hour = np.clip(members.hour[member] + rng.normal(0.0, 1.5, member.size), 7.0, 21.99)
    ts_s = day * DAY_S + (hour * 3600).astype(np.int64)
    period_s = catalogue.period_days * DAY_S
    order = np.argsort(member * period_s + ts_s, kind="stable")
    ts_s = ts_s[order]
    elsewhere = rng.random(member.size) < 0.1
    store = np.where(
        elsewhere, search(catalogue.store_cdf, rng.random(member.size)), members.home_store[member]
    )
    first = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    basket_base = 10 ** len(str(max_visits))
    return Visits(
        member=member,
        ts_s=ts_s,
        first=first,
        store=store.astype(np.int64),
        basket_id=members.member_id[member] * basket_base + number + 1,
        period_s=period_s,
    )
