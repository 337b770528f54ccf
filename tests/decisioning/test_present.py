"""Send time and reason: what the campaign tool is told with each decision."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import pytest

from nbo.decisioning.engine import decide
from nbo.decisioning.policy import Policy
from nbo.decisioning.present import reason, reason_core, send_at
from tests.decisioning.club import AT, TODAY, candidate, candidates_frame, member, members_frame

DAY = timedelta(days=1)


def reason_of(**row: Any) -> str:
    base: dict[str, Any] = {
        "bought_baskets": 0,
        "days_since_bought": None,
        "usual_gap_days": None,
        "category": None,
        "product": None,
        "explored": False,
        "track": "default",
        "p_buy": None,
        "uplift": None,
        "uplift_measured": None,
    }
    schema = {
        "bought_baskets": pl.Int64, "days_since_bought": pl.Float64,
        "usual_gap_days": pl.Float64, "category": pl.String, "product": pl.String,
        "explored": pl.Boolean, "track": pl.String, "p_buy": pl.Float64,
        "uplift": pl.Float64, "uplift_measured": pl.Boolean,
    }  # fmt: skip
    frame = pl.DataFrame([{**base, **row}], schema=schema).with_columns(reason_core())
    track = "explore" if frame["explored"][0] else str(frame["track"][0])
    return reason([track], frame["reason_core"].to_list())[0]


def test_reason_for_a_repeat_buyer_gives_the_rhythm() -> None:
    text = reason_of(bought_baskets=7, days_since_bought=19.2, usual_gap_days=13.8)
    assert text == "bought 7 times, last 19 days ago; usually every 14 days"
    assert reason_of(bought_baskets=1, days_since_bought=5.0) == "bought 1 time, last 5 days ago"


def test_reason_says_what_the_offer_changes_and_flags_an_assumption() -> None:
    measured = reason_of(category="YOGURT", p_buy=0.031, uplift=0.114, uplift_measured=True)
    assert measured == "new for you in YOGURT; 3 % would buy it anyway, +11 % with the offer"
    assumed = reason_of(
        bought_baskets=7, days_since_bought=19.2, usual_gap_days=13.8,
        p_buy=0.81, uplift=0.04, uplift_measured=False,
    )  # fmt: skip
    assert assumed.endswith("; 81 % would buy it anyway, +4 % with the offer (assumed)")
    # an offer that puts members off says so, without a plus sign
    harmful = reason_of(p_buy=0.5, uplift=-0.06, uplift_measured=True)
    assert harmful == "new for you; 50 % would buy it anyway, -6 % with the offer"


def test_reason_for_a_purchase_today_or_yesterday() -> None:
    assert reason_of(bought_baskets=2, days_since_bought=0.0).startswith(
        "bought 2 times, last today"
    )
    assert reason_of(bought_baskets=2, days_since_bought=1.0) == "bought 2 times, last yesterday"


def test_reason_for_a_new_product() -> None:
    assert reason_of(category="CHEESE", product="Brie") == "new for you in CHEESE: Brie"
    assert reason_of(category="CHEESE") == "new for you in CHEESE"
    assert reason_of() == "new for you"
    # a purchase count without a date is no rhythm to quote
    assert reason_of(bought_baskets=3, category="MILK") == "new for you in MILK"


@pytest.mark.parametrize(
    ("extra", "prefix"),
    [
        ({"track": "onboarding"}, "welcome offer: "),
        ({"track": "winback"}, "we miss you: "),
        ({"track": "winback", "explored": True}, "something different: "),
    ],
)
def test_reason_prefix(extra: dict[str, Any], prefix: str) -> None:
    assert reason_of(category="FRUIT", **extra) == prefix + "new for you in FRUIT"


def send_time(
    *,
    visit: date | None,
    hour: int | None,
    start: date = TODAY - 3 * DAY,
    end: date = TODAY + 10 * DAY,
    at: datetime = AT,
    lead: int = 2,
) -> datetime:
    day = "datetime64[D]"
    moment = send_at(
        at, lead, start=np.array([start], dtype=day), end=np.array([end], dtype=day),
        next_visit=np.array([visit if visit is not None else "NaT"], dtype=day),
        hour=np.array([hour if hour is not None else -1], dtype=np.int64),
    )[0].item()  # fmt: skip
    assert isinstance(moment, datetime)
    return moment


def at_hour(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour)


def test_send_at_is_the_predicted_visit_at_the_usual_hour_less_the_lead() -> None:
    assert send_time(visit=TODAY + 4 * DAY, hour=18) == at_hour(TODAY + 4 * DAY, 16)
    assert send_time(visit=TODAY + 4 * DAY, hour=18, lead=0) == at_hour(TODAY + 4 * DAY, 18)
    assert send_time(visit=TODAY + 4 * DAY, hour=1) == at_hour(TODAY + 4 * DAY, 0)  # not the eve


def test_send_at_is_clamped_into_the_offer_window() -> None:
    # the visit falls after the offer ends: the last day of the offer
    assert send_time(visit=TODAY + 30 * DAY, hour=18) == at_hour(TODAY + 10 * DAY, 16)
    # the visit falls before the offer starts: its first day
    start = TODAY + 2 * DAY
    assert send_time(visit=TODAY + DAY, hour=18, start=start) == at_hour(start, 16)


def test_send_at_is_never_before_the_decision() -> None:
    # a visit predicted in the past, or today before the usual hour has passed: now
    assert send_time(visit=TODAY - 2 * DAY, hour=8) == AT
    assert send_time(visit=TODAY, hour=9) == AT  # 07:00 is before AT (09:30)
    assert send_time(visit=TODAY, hour=14) == at_hour(TODAY, 12)
    # no prediction at all: now
    assert send_time(visit=None, hour=None) == AT
    assert send_time(visit=None, hour=20) == at_hour(TODAY, 18)


def test_decisions_carry_send_time_and_reason() -> None:
    candidates = candidates_frame(
        [
            candidate(1, "milk", category="MILK", bought_baskets=7, days_since_bought=19.0,
                      usual_gap_days=14.0, is_new=False, end_date=TODAY + 3 * DAY,
                      p_buy=0.62, uplift=0.05, uplift_measured=True),
            candidate(2, "brie", category="CHEESE", product="Brie", p_buy=0.02),
        ]
    )  # fmt: skip
    members = members_frame(
        [
            member(1, next_visit_date=TODAY + 5 * DAY, preferred_hour=17),
            member(2, baskets=1, next_visit_date=TODAY + DAY, preferred_hour=11),
        ]
    )
    policy = Policy.model_validate({"exploration": {"share": 0.0}, "send_lead_hours": 3})
    decisions = decide(candidates, members, policy, at=AT, channel="app").decisions
    rows = {d["member_id"]: d for d in decisions.iter_rows(named=True)}
    assert rows[1]["reason"] == (
        "bought 7 times, last 19 days ago; usually every 14 days; "
        "62 % would buy it anyway, +5 % with the offer"
    )
    assert rows[1]["send_at"] == at_hour(TODAY + 3 * DAY, 14)  # the offer ends before the visit
    assert rows[2]["reason"] == (
        "welcome offer: new for you in CHEESE: Brie; 2 % would buy it anyway, "
        "+20 % with the offer (assumed)"
    )
    assert rows[2]["send_at"] == at_hour(TODAY + DAY, 8)
