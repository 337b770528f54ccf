"""Point-in-time visit features: counts, recency, gaps, weekday and hour profiles."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from nbo.data.io import ClubData
from nbo.features.history import History
from nbo.features.visits import (
    BASE_RATE_COLUMNS,
    FEATURE_COLUMNS,
    history_visits,
    member_visits,
    preferred_hours,
    visit_features,
    visits_between,
    with_base_rate,
)
from tests.conftest import conform_frame

AS_OF = date(2024, 3, 20)


def receipts(rows: list[tuple[int, int, datetime]]) -> pl.DataFrame:
    """Receipt lines (member, basket, ts), one product each."""
    frame = pl.DataFrame(rows, schema=["member_id", "basket_id", "ts"], orient="row")
    return conform_frame(
        "transactions",
        frame.with_columns(
            product_id=pl.lit(10), store_id=pl.lit(7), quantity=1.0, sales_value=1.0
        ),
    )


def visits_frame(rows: list[tuple[int, date, int, int]]) -> pl.LazyFrame:
    """A hand-made member_visits table: (member, day, hour, baskets)."""
    return pl.LazyFrame(
        rows,
        schema={"member_id": pl.Int64, "day": pl.Date, "hour": pl.Int8, "baskets": pl.UInt32},
        orient="row",
    )


def members_frame(joined: dict[int, datetime | None]) -> pl.LazyFrame:
    return pl.LazyFrame(
        {"member_id": list(joined), "joined_at": list(joined.values())},
        schema={"member_id": pl.Int64, "joined_at": pl.Datetime("us")},
    )


def test_member_visits_counts_distinct_baskets_per_day_and_hour() -> None:
    lines = receipts(
        [
            (1, 100, datetime(2024, 3, 1, 10, 5)),
            (1, 100, datetime(2024, 3, 1, 10, 5)),  # a second line of the same basket
            (1, 101, datetime(2024, 3, 1, 10, 50)),
            (1, 102, datetime(2024, 3, 1, 18, 0)),
            (2, 200, datetime(2024, 3, 2, 9, 0)),
        ]
    )
    by_hour = member_visits(lines.lazy()).collect().sort("member_id", "day", "hour")
    assert by_hour.rows() == [
        (1, date(2024, 3, 1), 10, 2),
        (1, date(2024, 3, 1), 18, 1),
        (2, date(2024, 3, 2), 9, 1),
    ]
    by_day = member_visits(lines.lazy(), hours=False).collect().sort("member_id")
    assert by_day.rows() == [(1, date(2024, 3, 1), 3), (2, date(2024, 3, 2), 1)]


def test_visits_between_is_half_open() -> None:
    visits = visits_frame(
        [(1, date(2024, 3, 19), 9, 1), (1, date(2024, 3, 20), 9, 2), (1, date(2024, 4, 17), 9, 5)]
    )
    assert visits_between(visits, AS_OF, 28).collect().rows() == [(1, 2)]


def test_visit_features_by_hand() -> None:
    visits = visits_frame(
        [
            (1, AS_OF - timedelta(days=1), 10, 2),  # Tuesdays, AS_OF being a Wednesday
            (1, AS_OF - timedelta(days=8), 10, 1),
            (1, AS_OF - timedelta(days=22), 10, 1),
            (1, AS_OF - timedelta(days=100), 10, 1),  # a Monday
            (1, AS_OF, 10, 9),  # on as_of itself: not seen
            (2, AS_OF - timedelta(days=400), 12, 1),  # older than the profile year
        ]
    )
    members = members_frame({1: None, 2: datetime(2022, 1, 1), 3: datetime(2024, 3, 1)})
    features = visit_features(visits, members, AS_OF).collect().sort("member_id")
    assert features.columns == ["member_id", *FEATURE_COLUMNS]
    one, two, three = features.rows(named=True)
    assert [one[f"visits_{w}d"] for w in (7, 14, 28, 91)] == [2, 3, 4, 4]
    assert (one["visits_182d"], one["visits_total"], one["visit_days_total"]) == (5, 5, 4)
    assert (one["visits_7_14d"], one["visits_14_28d"], one["visits_91_182d"]) == (1, 1, 1)
    assert one["visit_days_28d"] == 3 and one["days_since_last_visit"] == 1
    assert one["days_since_first_visit"] == 100 and one["tenure_days"] == 100  # no join date
    assert one["gap_median"] == 14.0 and one["gap_last"] == 7.0  # gaps 78, 14, 7
    assert one["gap_mean"] == pytest.approx(33.0)
    assert one["overdue"] == pytest.approx(1 / 14)
    assert one["baskets_per_visit_day"] == pytest.approx(5 / 4)
    assert (one["visits_wd0"], one["visits_wd1"], one["visits_wd2"]) == (1, 4, 0)  # Mon, Tue
    assert (two["visits_total"], two["visits_364d"]) == (1, 0)
    assert sum(two[f"visits_wd{d}"] for d in range(7)) == 0  # the profile year only
    assert two["gap_median"] is None and two["tenure_days"] == (AS_OF - date(2022, 1, 1)).days
    assert three["visits_total"] == 0 and three["days_since_last_visit"] is None
    assert three["tenure_days"] == 19


def test_gap_statistics_match_a_plain_reference() -> None:
    rng = np.random.default_rng(1)
    rows = [
        (int(m), AS_OF - timedelta(days=int(d)), 9, 1)
        for m in range(1, 30)
        for d in rng.choice(np.arange(1, 500), size=int(rng.integers(1, 40)), replace=False)
    ]
    features = visit_features(visits_frame(rows), members_frame(dict.fromkeys(range(1, 30))), AS_OF)
    for member in features.collect().iter_rows(named=True):
        ages = sorted((AS_OF - day).days for m, day, _, _ in rows if m == member["member_id"])
        recent = np.asarray([a for a in ages if a <= 364], dtype=float)  # the profile year
        gaps = np.diff(recent)  # recent is sorted by age: the last visit first
        if gaps.size == 0:
            assert member["gap_median"] is None and member["gap_last"] is None
            continue
        assert member["gap_median"] == pytest.approx(float(np.median(gaps)))
        assert member["gap_mean"] == pytest.approx(float(np.mean(gaps)))
        assert member["gap_last"] == gaps[0]
        assert member["days_since_last_visit"] == ages[0]


def test_preferred_hour_is_the_most_frequent_recent_hour() -> None:
    visits = visits_frame(
        [
            (1, AS_OF - timedelta(days=3), 18, 2),
            (1, AS_OF - timedelta(days=5), 9, 2),  # tie with 18: the earlier hour wins
            (1, AS_OF - timedelta(days=500), 7, 50),  # too old to count
            (2, AS_OF - timedelta(days=5), 20, 1),
            (2, AS_OF, 8, 5),  # not before as_of
        ]
    )
    hours = preferred_hours(visits, AS_OF).collect().sort("member_id")
    assert hours.rows() == [(1, 9), (2, 20)]


def test_base_rate_shrinks_toward_the_club() -> None:
    visits = visits_frame([(1, AS_OF - timedelta(days=d), 9, 1) for d in range(1, 92, 7)])
    members = members_frame({1: datetime(2023, 1, 1), 2: datetime(2023, 1, 1)})
    frame = with_base_rate(visit_features(visits, members, AS_OF), 28).collect().sort("member_id")
    assert set(BASE_RATE_COLUMNS) <= set(frame.columns)
    club_rate = 13 / (91 + 91)
    regular, never = frame["base"].to_list()
    assert regular == pytest.approx(28 * (13 + 14 * club_rate) / (91 + 14))
    assert never == pytest.approx(28 * 14 * club_rate / (91 + 14))
    assert frame["visits_missed"][1] is None


@pytest.fixture
def shopping_club(make_club: Callable[..., Path]) -> Callable[..., ClubData]:
    start = datetime(2024, 1, 1, 9)
    base = [
        (m, 100 * m + k, start + timedelta(days=3 * k + m, hours=m))
        for m in (1, 2, 3)
        for k in range(30)
    ]

    def make(extra: tuple[tuple[int, int, datetime], ...] = ()) -> ClubData:
        return ClubData(make_club(transactions=receipts(base + list(extra))))

    return make


def test_features_see_nothing_from_as_of_on(shopping_club: Callable[..., ClubData]) -> None:
    """One collected visits table cut at each cutoff equals History.at(club, cutoff)."""
    club = shopping_club()
    later = shopping_club(((1, 999, datetime(2024, 3, 20, 8)), (4, 998, datetime(2024, 3, 25))))
    as_of = date(2024, 2, 15)
    expected = visit_features(
        history_visits(History.at(club, as_of)), History.at(club, as_of).members, as_of
    ).collect()
    for data in (club, later):
        whole = history_visits(History.at(data, date(2024, 6, 1))).collect().lazy()
        got = visit_features(whole, History.at(data, as_of).members, as_of).collect()
        assert_frame_equal(got.sort("member_id"), expected.sort("member_id"), check_exact=True)
