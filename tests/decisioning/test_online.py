"""The online path: one member's decision from a Plan equals the engine's on that member alone."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
from hypothesis import HealthCheck, given, settings

from nbo.decisioning.engine import DECISION_COLUMNS, OfferStats, decide_prepared, exploration_odds
from nbo.decisioning.explore import HashDraws
from nbo.decisioning.online import Contacts, as_frame, decide_member
from nbo.decisioning.plan import Plan
from nbo.decisioning.policy import Policy
from nbo.decisioning.prepare import plan_static
from tests.decisioning.club import AT, Instance, candidate, candidates_frame, instances, member
from tests.decisioning.club import members_frame as members_of


def _without_budgets(policy: Policy) -> Policy:
    campaigns = {
        cid: rules.model_copy(
            update={"max_redemptions": None, "max_cost": None, "max_audience": None}
        )
        for cid, rules in policy.campaigns.items()
    }
    return policy.model_copy(update={"campaigns": campaigns})


def _contacts(instance: Instance, member_id: int) -> Contacts:
    if instance.contacts is None:
        return Contacts.none()
    sent = instance.contacts.sent.filter(pl.col("member_id") == member_id)
    events = instance.contacts.offer_events.filter(pl.col("member_id") == member_id)
    return Contacts(
        sent=list(sent.select("offer_id", "channel", "decided_at").iter_rows()),
        offer_events={
            o: (int(ignored), bool(redeemed))
            for o, ignored, redeemed in events.select("offer_id", "ignored", "redeemed").iter_rows()
        },
    )


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_each_member_from_the_plan_decides_as_the_whole_club_batch(instance: Instance) -> None:
    # without budgets members are independent: a request for one member gets exactly what the
    # batch run of the whole club gave it (same kernel, same draws, same decision ids)
    policy = _without_budgets(instance.policy)
    static = plan_static(
        instance.candidates, instance.members, policy, at=AT, channel=instance.channel
    ).collect()
    odds = exploration_odds(static, OfferStats.empty(), policy)  # once per plan, as a service
    plan = Plan.build(static, day=AT.date(), channel=instance.channel, odds=odds)
    prefix = f"{AT:%Y%m%d}-{instance.channel}"
    batch = decide_prepared(
        static, policy, at=AT, channel=instance.channel, contacts=instance.contacts,
        run_id=prefix, closed_campaigns=instance.closed_campaigns, odds=odds,
    ).decisions  # fmt: skip
    for member_id in static["member_id"].unique().sort():
        online = decide_member(
            plan, member_id, policy, at=AT, contacts=_contacts(instance, member_id),
            model_version="unknown", decision_prefix=prefix,
            closed_campaigns=instance.closed_campaigns,
        )  # fmt: skip
        frame = as_frame(online, batch.schema)
        assert frame.columns == list(DECISION_COLUMNS)
        engine = batch.filter(pl.col("member_id") == member_id)
        assert frame.equals(engine), f"{instance!r}\nonline=\n{frame}\nbatch=\n{engine}"


def test_a_member_the_plan_does_not_know_gets_nothing_from_it() -> None:
    static = plan_static(
        candidates_frame([candidate(1, "a")]), members_of([member(1)]), Policy(), at=AT,
        channel="email",
    ).collect()  # fmt: skip
    plan = Plan.build(static, day=AT.date(), channel="email")
    assert plan.rows_of(1) == slice(0, 1)
    assert plan.rows_of(2).stop == 0
    decided = decide_member(
        plan, 2, Policy(), at=AT, contacts=Contacts.none(),
        model_version="v", decision_prefix="x",
    )  # fmt: skip
    assert decided == []


def test_the_frequency_cap_counts_what_was_sent_in_the_period() -> None:
    rows = [candidate(1, o, category=f"c{o}") for o in "abcde"]
    policy = Policy()
    static = plan_static(
        candidates_frame(rows), members_of([member(1)]), policy, at=AT, channel="email"
    ).collect()
    plan = Plan.build(static, day=AT.date(), channel="email")
    cap = policy.contact.max_offers["email"]
    sent = [("z", "email", AT - timedelta(days=1))] * (cap - 1)
    decided = decide_member(
        plan, 1, policy, at=AT, contacts=Contacts(sent, {}),
        model_version="v", decision_prefix="x",
    )  # fmt: skip
    assert len(decided) == 1


def test_a_service_explores_about_its_share_of_members() -> None:
    rows = [candidate(1, f"o{i}", category=f"c{i}", p_redeem=0.1 + i / 100) for i in range(8)]
    policy = Policy.model_validate(
        {"exploration": {"share": 0.2}, "diversity": {"new_product_share": 0}}
    )
    static = plan_static(candidates_frame(rows), members_of([member(1)]), policy, at=AT,
                         channel="email").collect()  # fmt: skip
    odds = exploration_odds(static, OfferStats.empty(), policy)
    plan = Plan.build(static, day=AT.date(), channel="email", odds=odds)
    swapped = 0
    for day in range(2_000):  # the same member on 2,000 days: independent coins
        decided = decide_member(
            plan, 1, policy, at=AT, contacts=Contacts.none(), rng=HashDraws(f"d{day}-1", 0),
            model_version="v", decision_prefix="x",
        )  # fmt: skip
        last = decided[-1]
        assert 0 < last.propensity <= 1
        swapped += last.explored
    assert 0.12 < swapped / 2_000 < 0.2  # a 0.2 coin, less the draws that agree with greedy
