"""Eligibility, contact rules, tracks and the priority formula of ``prepare``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import polars as pl
import pytest

from nbo.decisioning.engine import decide
from nbo.decisioning.policy import Policy
from nbo.decisioning.prepare import prepare
from nbo.errors import PolicyError
from tests.decisioning.club import (
    AT,
    Contacts,
    candidate,
    candidates_frame,
    member,
    members_frame,
)

DAY = timedelta(days=1)


def policy_of(**raw: Any) -> Policy:
    return Policy.model_validate({"exploration": {"share": 0.0}, **raw})


def prepared(
    rows: list[dict[str, Any]],
    members: list[dict[str, Any]],
    policy: Policy,
    contacts: Contacts | None = None,
    channel: str = "email",
) -> pl.DataFrame:
    frame = prepare(
        candidates_frame(rows), members_frame(members), contacts, policy, at=AT, channel=channel
    )
    return frame.sort("member_id", "offer_id")


def offers_of(frame: pl.DataFrame) -> list[tuple[int, str]]:
    return [(int(m), str(o)) for m, o in frame.select("member_id", "offer_id").iter_rows()]


def test_priority_is_the_documented_formula() -> None:
    # priority = weight × track multiplier × gain − expected cost + boost, gain by objective
    levers = {
        "campaigns": {"C1": {"weight": 2.0, "boost": 0.5}},
        "offers": {"a": {"weight": 1.5, "boost": 0.25}},
        "tracks": {"onboarding_max_baskets": 4, "onboarding_multiplier": 1.5},
    }
    policy = policy_of(**levers, economics={"contact_cost": {"email": 0.1}})
    rows = [candidate(1, "a", p_redeem=0.2, p_buy=0.5, uplift=0.08, value=10.0, cost=2.0)]
    default = prepared(rows, [member(1, baskets=30)], policy).row(0, named=True)
    expected_cost = 0.2 * 2.0 + 0.1
    assert default["expected_cost"] == pytest.approx(expected_cost)
    assert default["expected_value"] == pytest.approx(0.2 * 10.0 - expected_cost)
    assert default["incremental_value"] == pytest.approx(0.08 * 10.0 - expected_cost)
    assert default["priority"] == pytest.approx(2.0 * 1.5 * 0.08 * 10.0 - expected_cost + 0.75)
    onboarding = prepared(rows, [member(1, baskets=1)], policy).row(0, named=True)
    assert onboarding["track"] == "onboarding"
    assert onboarding["priority"] == pytest.approx(3.0 * 1.5 * 0.8 - expected_cost + 0.75)
    assert onboarding["incremental_value"] == default["incremental_value"]  # levers rank only
    for objective, priority in (
        ("revenue", 3.0 * 0.2 * 10.0 - expected_cost + 0.75),
        ("redemptions", 3.0 * 0.2 + 0.75),  # cost is left to the budgets
    ):
        chosen = policy_of(
            **levers, economics={"contact_cost": {"email": 0.1}, "objective": objective}
        )
        row = prepared(rows, [member(1, baskets=30)], chosen).row(0, named=True)
        assert row["priority"] == pytest.approx(priority), objective
        assert row["incremental_value"] == default["incremental_value"]


def test_a_sure_thing_is_not_chosen_over_a_persuadable_at_equal_p_redeem() -> None:
    # same p_redeem, value and coupon: one member buys the product every week anyway
    rows = [
        candidate(1, "weekly_beef", campaign_id="C1", p_redeem=0.4, p_buy=0.9, value=5.0,
                  cost=1.0, bought_baskets=17, days_since_bought=6.0, is_new=False),
        candidate(1, "new_yogurt", campaign_id="C2", p_redeem=0.4, p_buy=0.05, value=5.0,
                  cost=1.0),
    ]  # fmt: skip
    members = members_frame([member(1, baskets=30)])
    decisions = decide(candidates_frame(rows), members, policy_of(slots=1), at=AT,
                       channel="email").decisions  # fmt: skip
    assert decisions["offer_id"].to_list() == ["new_yogurt"]
    # the assumed uplift pays for the sure thing's redemption but gains little: not worth it
    both = decide(candidates_frame(rows), members, policy_of(slots=2), at=AT,
                  channel="email").decisions  # fmt: skip
    assert both["offer_id"].to_list() == ["new_yogurt"]
    # a sure thing usually redeems more: ranked by revenue (the old arbitration) it wins
    rows[0]["p_redeem"] = 0.5
    rows[0]["uplift"] = 0.5 * (1 - 0.9)
    revenue = policy_of(slots=1, economics={"objective": "revenue"})
    old = decide(candidates_frame(rows), members, revenue, at=AT, channel="email").decisions
    assert old["offer_id"].to_list() == ["weekly_beef"]
    new = decide(candidates_frame(rows), members, policy_of(slots=1), at=AT,
                 channel="email").decisions  # fmt: skip
    assert new["offer_id"].to_list() == ["new_yogurt"]


def ranked(policy: Policy) -> list[str]:
    """Member 1's offers in rank order: "big" is worth more than "small" on the numbers."""
    rows = [
        candidate(1, "big", campaign_id="C1", p_redeem=0.3, value=10.0, cost=0.0),
        candidate(1, "small", campaign_id="C2", p_redeem=0.2, value=10.0, cost=0.0),
    ]
    decisions = decide(candidates_frame(rows), members_frame([member(1)]), policy, at=AT,
                       channel="email").decisions  # fmt: skip
    return list(decisions.sort("rank")["offer_id"])


def test_weight_and_boost_levers_change_the_order() -> None:
    slots = {"slots": 2}
    assert ranked(policy_of(**slots)) == ["big", "small"]
    assert ranked(policy_of(**slots, campaigns={"C2": {"weight": 2.0}})) == ["small", "big"]
    assert ranked(policy_of(**slots, offers={"small": {"weight": 1.6}})) == ["small", "big"]
    assert ranked(policy_of(**slots, offers={"small": {"weight": 1.4}})) == ["big", "small"]
    assert ranked(policy_of(**slots, campaigns={"C2": {"boost": 1.5}})) == ["small", "big"]
    assert ranked(policy_of(**slots, campaigns={"C1": {"boost": -1.5}})) == ["small", "big"]
    # a zero weight and no boost leaves nothing worth sending
    assert ranked(policy_of(**slots, campaigns={"C1": {"weight": 0.0}})) == ["small"]


def test_tracks_onboarding_for_few_baskets_winback_for_lapsing() -> None:
    policy = policy_of(tracks={"onboarding_max_baskets": 4})
    members = [
        member(1, baskets=3),
        member(2, baskets=4, lapsing=True),
        member(3, baskets=3, lapsing=True),  # onboarding comes first
        member(4, baskets=40),
    ]
    rows = [candidate(m, "a") for m in (1, 2, 3, 4, 5)]  # 5 is not in the members frame
    tracks = dict(prepared(rows, members, policy).select("member_id", "track").iter_rows())
    assert tracks == {1: "onboarding", 2: "winback", 3: "onboarding", 4: "default",
                      5: "onboarding"}  # fmt: skip


def test_tracks_restrict_campaigns() -> None:
    policy = policy_of(
        tracks={"onboarding_max_baskets": 4, "onboarding_campaigns": ["WELCOME"],
                "winback_campaigns": ["COMEBACK"]}
    )  # fmt: skip
    members = [member(1, baskets=1), member(2, lapsing=True), member(3)]
    rows = [
        candidate(m, offer, campaign_id=campaign)
        for m in (1, 2, 3)
        for offer, campaign in (("w", "WELCOME"), ("c", "COMEBACK"), ("x", "OTHER"))
    ]
    assert offers_of(prepared(rows, members, policy)) == [
        (1, "w"), (2, "c"), (3, "c"), (3, "w"), (3, "x")
    ]  # fmt: skip


def test_contact_rules_read_the_history_before_at() -> None:
    policy = policy_of(
        slots=5,
        contact={"period_days": 7, "max_offers": {"email": 3, "app": 4}, "cooldown_days": 14,
                 "suppress_after_ignored": 2},
    )  # fmt: skip
    rows = [candidate(1, o) for o in ("a", "b", "c", "d", "e")]

    def sent(offer: str, channel: str, ago: timedelta) -> dict[str, Any]:
        return {"member_id": 1, "offer_id": offer, "channel": channel, "decided_at": AT - ago}

    contacts = Contacts.of(
        [
            sent("a", "app", 14 * DAY),
            sent("b", "app", 13 * DAY),
            sent("c", "email", -DAY),  # after ``at``
            sent("x", "email", 6 * DAY),
            sent("y", "email", 8 * DAY),
            sent("z", "app", 2 * DAY),
        ],
        [
            {"member_id": 1, "offer_id": "d", "exposures": 3, "ignored": 1, "redeemed": False},
            {"member_id": 1, "offer_id": "e", "exposures": 3, "ignored": 2, "redeemed": False},
        ],
    )
    frame = prepared(rows, [member(1)], policy, contacts)
    # a: the cooldown is just over; b: shown 13 days ago (on another channel: still counts);
    # c: a send after ``at`` is not seen; d: ignored once; e: ignored twice in a row
    assert offers_of(frame) == [(1, "a"), (1, "c"), (1, "d")]
    # one email in the 7-day period (x; y is older) leaves 2 of the 3
    assert frame["capacity"].unique().to_list() == [2]
    # on the app channel only the app send in the period counts (z): 3 of 4 left
    app = prepared(rows, [member(1)], policy, contacts, channel="app")
    assert app["capacity"].unique().to_list() == [3]
    # a channel without a cap: the slots
    pos = prepared(rows, [member(1)], policy, contacts, channel="pos")
    assert pos["capacity"].unique().to_list() == [5]


def test_a_member_at_the_frequency_cap_gets_nothing() -> None:
    policy = policy_of(contact={"period_days": 7, "max_offers": {"email": 1}})
    contacts = Contacts.of(
        [{"member_id": 1, "offer_id": "x", "channel": "email", "decided_at": AT - DAY}]
    )
    rows = [candidate(1, "a"), candidate(2, "a")]
    assert offers_of(prepared(rows, [member(1), member(2)], policy, contacts)) == [(2, "a")]


def test_redeemed_offers_and_recent_purchases_are_skipped() -> None:
    policy = policy_of(contact={"skip_recent_purchase_days": 10})
    rows = [
        candidate(1, "a", redeemed_before=True),
        candidate(1, "b"),  # redeemed according to the interaction history
        candidate(1, "c", bought_baskets=3, days_since_bought=9.0, is_new=False),
        candidate(1, "d", bought_baskets=3, days_since_bought=10.0, is_new=False),
        candidate(1, "e", in_audience=False),
        candidate(1, "f", start_date=AT.date() + DAY),
        candidate(1, "g", end_date=AT.date()),  # the last day still counts
        candidate(1, "h", p_redeem=0.0),
    ]
    contacts = Contacts.of(
        [], [{"member_id": 1, "offer_id": "b", "exposures": 1, "ignored": 0, "redeemed": True}]
    )
    assert offers_of(prepared(rows, [member(1)], policy, contacts)) == [(1, "d"), (1, "g")]


def test_exclusions_and_campaign_channels() -> None:
    policy = policy_of(
        excluded_members=[2],
        excluded_offers=["b"],
        campaigns={"APP_ONLY": {"channels": ["app"]}},
    )
    rows = [
        candidate(1, "a"),
        candidate(1, "b"),
        candidate(2, "a"),
        candidate(1, "c", campaign_id="APP_ONLY"),
    ]
    members = [member(1), member(2)]
    assert offers_of(prepared(rows, members, policy)) == [(1, "a")]
    assert offers_of(prepared(rows, members, policy, channel="app")) == [(1, "a"), (1, "c")]


def test_member_cost_cap_is_a_share_of_yearly_value_with_a_floor() -> None:
    policy = policy_of(economics={"member_cost_share": 0.05, "member_cost_floor": 1.0})
    members = [member(1, yearly_value=400.0), member(2, yearly_value=None)]
    frame = prepared([candidate(1, "a"), candidate(2, "a")], members, policy)
    assert frame["cost_cap"].to_list() == [pytest.approx(20.0), 1.0]


def test_unknown_channel_and_missing_columns_are_errors() -> None:
    with pytest.raises(PolicyError, match="unknown channel 'sms'"):
        prepared([candidate(1, "a")], [member(1)], policy_of(), channel="sms")
    with pytest.raises(ValueError, match="p_redeem"):
        prepare(
            candidates_frame([candidate(1, "a")]).drop("p_redeem"),
            members_frame([member(1)]),
            None,
            policy_of(),
            at=AT,
            channel="email",
        )
