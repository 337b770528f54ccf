"""Routine share of decided offers (issue 14) on a hand-made club with hand-counted weeks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from nbo.data.io import ClubData
from nbo.errors import EvaluationError
from nbo.evaluation.routine import (
    routine_buckets,
    routine_share,
    routine_summary,
    routine_weeks,
)
from nbo.features.history import History
from tests.conftest import LINE_COLUMNS, conform_frame

AT = datetime(2024, 3, 25)  # a Monday; week 1 is [03-18, 03-25), week 8 [01-29, 02-05)
# C1-a covers products 10 and 11, C1-b product 12
OFFER_PRODUCTS = pl.DataFrame({"offer_id": ["C1-a", "C1-a", "C1-b"], "product_id": [10, 11, 12]})


def _line(member: int, product: int, ts: datetime) -> tuple[object, ...]:
    return (member, member * 1000 + ts.toordinal() % 1000, product, 7, ts, 1.0, 2.0)


LINES = [
    # member 1, C1-a: weeks 1, 2, 3 and 8 -> 4
    _line(1, 10, datetime(2024, 3, 18)),  # exactly at − 7 days: week 1, not week 2
    _line(1, 11, datetime(2024, 3, 17, 23, 59)),  # week 2, through the offer's other product
    _line(1, 10, datetime(2024, 3, 11, 10)),  # week 2 again: a week counts once
    _line(1, 10, datetime(2024, 3, 4, 10)),  # week 3
    _line(1, 10, datetime(2024, 1, 29)),  # week 8, its first instant
    _line(1, 10, datetime(2024, 1, 28, 23, 59)),  # before the 8 weeks
    _line(1, 10, AT),  # at the decision time: not before it
    _line(1, 11, datetime(2024, 3, 26, 9)),  # after it
    _line(1, 13, datetime(2024, 3, 20)),  # a product of no offer
    # member 2, C1-a: weeks 1-6 -> 6; C1-b: week 3 -> 1
    *(_line(2, 11, datetime(2024, 3, day, 12)) for day in (19, 12, 5)),
    *(_line(2, 11, datetime(2024, 2, day, 12)) for day in (27, 20, 13)),
    _line(2, 12, datetime(2024, 3, 5, 17, 30)),
    # member 3 bought C1-b's product, but was decided C1-a
    _line(3, 12, datetime(2024, 3, 20)),
]
DECISIONS = pl.DataFrame(
    {
        "member_id": [1, 1, 2, 2, 3],
        "offer_id": ["C1-a", "C1-b", "C1-a", "C1-b", "C1-a"],
        "decided_at": [AT] * 5,
    }
)
EXPECTED = [4, 0, 6, 1, 0]


@pytest.fixture
def history(make_club: Callable[..., Path]) -> History:
    transactions = pl.DataFrame(LINES, schema=LINE_COLUMNS, orient="row").with_columns(
        retail_disc=pl.lit(0.0), coupon_disc=pl.lit(0.0), coupon_match_disc=pl.lit(0.0)
    )
    root = make_club(
        transactions=conform_frame("transactions", transactions),
        offer_products=conform_frame("offer_products", OFFER_PRODUCTS),
    )
    return History.at(ClubData(root), AT)


def test_weeks_per_decision_are_hand_counted(history: History) -> None:
    counted = routine_weeks(DECISIONS, history)
    assert counted.select(DECISIONS.columns).equals(DECISIONS)  # rows and order kept
    assert counted["weeks_bought"].to_list() == EXPECTED


def test_week_boundary_and_window(history: History) -> None:
    # one week: only [03-18, 03-25); the receipt at 03-17 23:59 and the one at AT are out
    assert routine_weeks(DECISIONS, history, weeks=1)["weeks_bought"].to_list() == [1, 0, 1, 0, 0]
    # two weeks: 03-17 23:59 is in, and 03-11 is the same week as it
    assert routine_weeks(DECISIONS, history, weeks=2)["weeks_bought"].to_list() == [2, 0, 2, 0, 0]


def test_receipts_at_or_after_the_decision_do_not_count(
    history: History, make_club: Callable[..., Path]
) -> None:
    later = [_line(m, p, datetime(2024, 3, 25 + d)) for m in (1, 2, 3) for p in (10, 12)
             for d in range(5)]  # fmt: skip
    transactions = pl.DataFrame(LINES + later, schema=LINE_COLUMNS, orient="row").with_columns(
        retail_disc=pl.lit(0.0), coupon_disc=pl.lit(0.0), coupon_match_disc=pl.lit(0.0)
    )
    root = make_club(
        transactions=conform_frame("transactions", transactions),
        offer_products=conform_frame("offer_products", OFFER_PRODUCTS),
    )
    tampered = routine_weeks(DECISIONS, History.at(ClubData(root), AT))
    assert tampered.equals(routine_weeks(DECISIONS, history))


def test_share_counts_decisions_with_four_of_eight_weeks(history: History) -> None:
    assert routine_share(DECISIONS, history) == pytest.approx(2 / 5)
    assert routine_share(DECISIONS, history, min_weeks=5) == pytest.approx(1 / 5)
    assert routine_share(DECISIONS, history, weeks=2, min_weeks=2) == pytest.approx(2 / 5)
    assert routine_share(DECISIONS.head(0), history) != routine_share(DECISIONS.head(0), history)


def test_summary_distribution_interval_and_metrics(history: History) -> None:
    summary = routine_summary(routine_weeks(DECISIONS, history))
    assert (summary.decisions, summary.members) == (5, 3)
    assert summary.share == pytest.approx(0.4)
    assert summary.distribution == {(0, 0): 2, (1, 3): 1, (4, 4): 1, (5, 8): 1}
    assert [summary.label(span) for span in summary.distribution] == ["0", "1–3", "4", "5–8"]
    assert 0.0 <= summary.share_low <= summary.share <= summary.share_high <= 1.0
    metrics = summary.metrics("decisions.", "_revenue")
    assert metrics["decisions.routine_share_revenue"] == pytest.approx(0.4)
    assert metrics["decisions.count_revenue"] == 5.0
    assert metrics["decisions.weeks_1_3_revenue"] == 1.0
    assert metrics["decisions.weeks_4_revenue"] == 1.0
    # the same seed gives the same interval
    again = routine_summary(routine_weeks(DECISIONS, history))
    assert (again.share_low, again.share_high) == (summary.share_low, summary.share_high)


def test_buckets_skip_empty_ranges() -> None:
    assert routine_buckets() == [(0, 0), (1, 3), (4, 4), (5, 8)]
    assert routine_buckets(weeks=4, min_weeks=1) == [(0, 0), (1, 1), (2, 4)]
    assert routine_buckets(weeks=4, min_weeks=4) == [(0, 0), (1, 3), (4, 4)]


@pytest.mark.parametrize(
    ("decisions", "kwargs", "message"),
    [
        (DECISIONS.with_columns(decided_at=pl.lit(datetime(2024, 3, 26))), {}, "not at the"),
        (DECISIONS.drop("offer_id"), {}, "offer_id"),
        (DECISIONS, {"weeks": 0}, "weeks must be at least 1"),
        (DECISIONS, {"min_weeks": 9}, "min_weeks must be between 1 and weeks"),
    ],
)
def test_bad_input_names_the_problem(
    history: History, decisions: pl.DataFrame, kwargs: dict[str, int], message: str
) -> None:
    with pytest.raises(EvaluationError, match=message):
        routine_share(decisions, history, **kwargs)
