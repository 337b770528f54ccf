"""No decision ever breaks the policy: random clubs, histories and policies through ``decide``.

Every rule is recomputed here from the raw inputs in plain Python — not with the engine's
helpers — so a rule the engine forgets or applies to the wrong rows shows up as a violation.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

import polars as pl
from hypothesis import HealthCheck, given, settings

from nbo.decisioning.engine import DECISION_COLUMNS, decide
from tests.decisioning.club import AT, Instance, instances

TOL = 1e-9
PREFIXES = {
    "explore": "something different: ",
    "onboarding": "welcome offer: ",
    "winback": "we miss you: ",
    "default": "",
}


def _sends(instance: Instance) -> list[dict[str, Any]]:
    if instance.contacts is None:
        return []
    return [s for s in instance.contacts.sent.iter_rows(named=True) if s["decided_at"] < AT]


def check_decisions(instance: Instance, decisions: pl.DataFrame) -> None:
    """Assert every policy rule on ``decisions``, recomputed from ``instance``'s raw inputs."""
    policy, channel = instance.policy, instance.channel
    contact, diversity, tracks = policy.contact, policy.diversity, policy.tracks
    pairs = {(c["member_id"], c["offer_id"]): c for c in instance.candidates.iter_rows(named=True)}
    members = {m["member_id"]: m for m in instance.members.iter_rows(named=True)}
    sends = _sends(instance)
    events = (
        {}
        if instance.contacts is None
        else {
            (e["member_id"], e["offer_id"]): e
            for e in instance.contacts.offer_events.iter_rows(named=True)
        }
    )
    period_start = AT - timedelta(days=contact.period_days)
    sent_in_period = Counter(
        s["member_id"] for s in sends if s["channel"] == channel and s["decided_at"] >= period_start
    )
    contact_cost = policy.economics.contact_cost.get(channel, 0.0)

    assert decisions.columns == list(DECISION_COLUMNS)
    assert decisions["decision_id"].n_unique() == decisions.height
    rows = list(decisions.iter_rows(named=True))
    by_member: dict[int, list[dict[str, Any]]] = defaultdict(list)
    usage: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for d in rows:
        key = (d["member_id"], d["offer_id"])
        assert key in pairs, f"{key} was never a candidate"
        c = pairs[key]
        m = members.get(d["member_id"], {})
        by_member[d["member_id"]].append(d)
        # eligibility
        assert c["campaign_id"] == d["campaign_id"]
        assert c["start_date"] <= AT.date() <= c["end_date"], key
        assert c["in_audience"], key
        allowed = (
            policy.campaigns[c["campaign_id"]].channels
            if c["campaign_id"] in policy.campaigns
            else None
        )
        assert allowed is None or channel in allowed, key
        assert d["member_id"] not in policy.excluded_members
        assert d["offer_id"] not in policy.excluded_offers
        assert d["campaign_id"] not in instance.closed_campaigns
        assert not c["redeemed_before"], key
        event = events.get(key)
        assert event is None or not event["redeemed"], key
        if contact.suppress_after_ignored is not None and event is not None:
            assert event["ignored"] < contact.suppress_after_ignored, key
        for s in sends:
            if (s["member_id"], s["offer_id"]) == key:
                assert AT - s["decided_at"] >= timedelta(days=contact.cooldown_days), (key, s)
        if contact.skip_recent_purchase_days > 0 and c["days_since_bought"] is not None:
            assert c["days_since_bought"] >= contact.skip_recent_purchase_days, key
        assert c["p_redeem"] > 0
        # tracks
        baskets = m.get("baskets") or 0
        onboarding = baskets < tracks.onboarding_max_baskets
        winback = not onboarding and bool(m.get("lapsing"))
        if onboarding and tracks.onboarding_campaigns:
            assert c["campaign_id"] in tracks.onboarding_campaigns, key
        if winback and tracks.winback_campaigns:
            assert c["campaign_id"] in tracks.winback_campaigns, key
        expected_track = "onboarding" if onboarding else "winback" if winback else "default"
        assert d["track"] == ("explore" if d["explored"] else expected_track), key
        prefix = PREFIXES["explore" if d["explored"] else expected_track]
        rhythm = (c["bought_baskets"] or 0) > 0 and c["days_since_bought"] is not None
        assert d["reason"].startswith(prefix + ("bought " if rhythm else "new for you")), key
        # economics, as documented in prepare.py
        expected_cost = c["p_redeem"] * c["cost"] + contact_cost
        rules = policy.campaign(c["campaign_id"])
        weight = rules.weight * policy.offer(c["offer_id"]).weight
        boost = rules.boost + policy.offer(c["offer_id"]).boost
        multiplier = (
            tracks.onboarding_multiplier if onboarding
            else tracks.winback_multiplier if winback else 1.0
        )  # fmt: skip
        assert d["p_redeem"] == c["p_redeem"]
        assert abs(d["expected_cost"] - expected_cost) < 1e-9
        assert abs(d["expected_value"] - (c["p_redeem"] * c["value"] - expected_cost)) < 1e-9
        incremental = c["uplift"] * c["value"] - expected_cost
        assert abs(d["incremental_value"] - incremental) < 1e-9
        objective = policy.economics.objective
        gain = {
            "incremental_margin": c["uplift"] * c["value"],
            "revenue": c["p_redeem"] * c["value"],
            "redemptions": c["p_redeem"],
        }[objective]
        cost_term = 0.0 if objective == "redemptions" else expected_cost
        priority = weight * multiplier * gain - cost_term + boost
        assert abs(d["priority"] - priority) < 1e-9
        # presentation
        assert 0 < d["propensity"] <= 1, key
        if policy.exploration.share == 0:
            assert d["propensity"] == 1.0 and not d["explored"], key
        assert d["channel"] == channel and d["decided_at"] == AT
        start = datetime.combine(c["start_date"], datetime.min.time())
        end = datetime.combine(c["end_date"] + timedelta(days=1), datetime.min.time())
        assert d["send_at"] >= AT, key
        assert start <= d["send_at"] < end, key
        for k, amount in enumerate((c["p_redeem"], expected_cost, 1.0)):
            usage[c["campaign_id"]][k] += amount

    assert decisions.select("member_id", "rank").rows() == sorted(
        decisions.select("member_id", "rank").rows()
    )
    economics = policy.economics
    for member_id, mine in by_member.items():
        assert sorted(d["rank"] for d in mine) == list(range(1, len(mine) + 1))
        if economics.member_cost_share is not None:
            yearly_value = members.get(member_id, {}).get("yearly_value") or 0.0
            cost_cap = max(yearly_value * economics.member_cost_share, economics.member_cost_floor)
            spent = sum(d["expected_cost"] for d in mine)
            assert spent <= cost_cap + TOL, (member_id, spent, cost_cap)
        assert len(mine) <= policy.slots
        cap = contact.max_offers.get(channel)
        if cap is not None:
            assert len(mine) <= cap - sent_in_period[member_id], member_id
        categories = Counter(pairs[(member_id, d["offer_id"])]["category"] for d in mine)
        assert max(categories.values()) <= diversity.max_per_category, member_id
        if diversity.max_per_campaign is not None:
            campaigns = Counter(d["campaign_id"] for d in mine)
            assert max(campaigns.values()) <= diversity.max_per_campaign, member_id
    for campaign, (redemptions, cost, audience) in usage.items():
        rules = policy.campaign(campaign)
        if rules.max_redemptions is not None:
            assert redemptions <= rules.max_redemptions + TOL, campaign
        if rules.max_cost is not None:
            assert cost <= rules.max_cost + TOL, campaign
        if rules.max_audience is not None:
            assert audience <= rules.max_audience, campaign


def run(instance: Instance, run_id: str = "run") -> pl.DataFrame:
    return decide(
        instance.candidates,
        instance.members,
        instance.policy,
        at=AT,
        channel=instance.channel,
        contacts=instance.contacts,
        offer_stats=instance.offer_stats,
        run_id=run_id,
        closed_campaigns=instance.closed_campaigns,
    ).decisions


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_no_decision_breaks_the_policy(instance: Instance) -> None:
    check_decisions(instance, run(instance))
