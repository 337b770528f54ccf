"""The engine end to end: determinism, exploration propensities, budgets with exploration."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings

from nbo.decisioning.engine import DECISION_COLUMNS, OfferStats, decide, decide_prepared
from nbo.decisioning.policy import Policy
from nbo.decisioning.prepare import plan_static
from tests.decisioning.club import (
    AT,
    Instance,
    candidate,
    candidates_frame,
    instances,
    member,
    members_frame,
)
from tests.decisioning.test_policy_invariants import run


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_same_inputs_seed_and_run_id_give_the_same_decisions(instance: Instance) -> None:
    first = run(instance)
    assert first.equals(run(instance))
    # the order of the candidate rows does not matter either
    shuffled = instance.candidates.sample(fraction=1.0, shuffle=True, seed=1)
    assert first.equals(run(replace(instance, candidates=shuffled)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_online_path_decides_as_the_batch(instance: Instance) -> None:
    # an online service keeps plan_static's rows per member and decides per request
    instance = replace(instance, offer_stats=None)
    static = plan_static(
        instance.candidates, instance.members, instance.policy, at=AT, channel=instance.channel
    ).collect()
    online = decide_prepared(
        static,
        instance.policy,
        at=AT,
        channel=instance.channel,
        contacts=instance.contacts,
        run_id="run",
        closed_campaigns=instance.closed_campaigns,
    )
    assert online.decisions.equals(run(instance))


def test_no_candidates_no_decisions() -> None:
    result = decide(candidates_frame([]), members_frame([]), Policy(), at=AT, channel="email")
    assert result.decisions.columns == list(DECISION_COLUMNS)
    assert result.decisions.height == 0
    assert result.eligible_rows == 0


def test_closed_campaigns_take_no_decisions() -> None:
    rows = [candidate(1, "a", campaign_id="C1"), candidate(1, "b", campaign_id="C2")]
    result = decide(candidates_frame(rows), members_frame([member(1)]), Policy(), at=AT,
                    channel="email", closed_campaigns=frozenset({"C1"}))  # fmt: skip
    assert result.decisions["offer_id"].to_list() == ["b"]


N_OFFERS = 8
STAR = "O0"  # redeems 90% of the time: wins every Thompson draw


def full_lists() -> tuple[pl.DataFrame, pl.DataFrame, OfferStats]:
    """40 members with 4-6 eligible offers each in distinct categories; lists of 3 fill up."""
    rng = np.random.default_rng(5)
    rows = []
    for member_id in range(1, 41):
        for o in sorted(rng.choice(N_OFFERS, int(rng.integers(4, 7)), replace=False)):
            rows.append(
                candidate(
                    member_id,
                    f"O{o}",
                    category=f"cat{o}",
                    p_redeem=round(float(rng.uniform(0.05, 0.5)), 3),
                    value=round(float(rng.uniform(1, 10)), 2),
                    cost=0.0,
                )
            )
    stats = OfferStats(
        pl.DataFrame(
            {
                "offer_id": [f"O{o}" for o in range(N_OFFERS)],
                "exposures": [1_000] * N_OFFERS,
                "redemptions": [900] + [0] * (N_OFFERS - 1),
            }
        )
    )
    return candidates_frame(rows), members_frame([member(m) for m in range(1, 41)]), stats


def test_every_explored_last_slot_has_the_documented_propensity() -> None:
    candidates, members, stats = full_lists()
    draws = 1_000
    policy = Policy.model_validate(
        {
            "slots": 3,
            "exploration": {"share": 1.0, "draws": draws},
            "diversity": {"new_product_share": 0.0},
            "economics": {"member_cost_share": None},
            "seed": 11,
        }
    )
    decisions = decide(candidates, members, policy, at=AT, channel="email",
                       offer_stats=stats).decisions  # fmt: skip
    # matching odds: the star wins all draws, every other offer keeps the 0.5-win sliver
    odds = {f"O{o}": 0.5 / (draws + 0.5 * N_OFFERS) for o in range(N_OFFERS)}
    odds[STAR] = (draws + 0.5) / (draws + 0.5 * N_OFFERS)
    explored = 0
    for member_id, mine in decisions.group_by("member_id"):
        offers = candidates.filter(pl.col("member_id") == member_id[0])
        # no costs, levers or tracks here: priority is p_redeem × value
        worth = pl.col("p_redeem") * pl.col("value")
        by_priority = offers.sort(worth, descending=True)["offer_id"].to_list()
        assert mine.height == 3
        kept, pool = by_priority[:2], by_priority[2:]
        slot = mine.filter(~pl.col("offer_id").is_in(kept))
        assert sorted(mine["offer_id"].to_list()) == sorted([*kept, *slot["offer_id"]])
        assert mine.filter(pl.col("offer_id").is_in(kept))["propensity"].to_list() == [1.0, 1.0]
        # share = 1: (1 - share)·[greedy pick] + share·odds / Σ odds over the member's pool
        row = slot.row(0, named=True)
        assert row["propensity"] == pytest.approx(
            odds[row["offer_id"]] / sum(odds[o] for o in pool), rel=1e-9
        )
        assert row["explored"] == (row["offer_id"] != pool[0])
        explored += row["explored"]
        if STAR in pool:
            assert row["offer_id"] == STAR
    assert explored > 10


def test_without_exploration_every_propensity_is_one() -> None:
    candidates, members, stats = full_lists()
    policy = Policy.model_validate({"exploration": {"share": 0.0}})
    decisions = decide(candidates, members, policy, at=AT, channel="email",
                       offer_stats=stats).decisions  # fmt: skip
    assert decisions.height > 40
    assert (decisions["propensity"] == 1.0).all()
    assert not decisions["explored"].any()
    assert "explore" not in decisions["track"].to_list()


def explore_into(
    policy: dict[str, Any],
    rows: list[dict[str, Any]],
    stars: list[str],
    members: list[dict[str, Any]] | None = None,
) -> pl.DataFrame:
    """Decisions with every last slot explored, Thompson sampling all but sure to pick ``stars``."""
    offers = sorted({r["offer_id"] for r in rows})
    stats = OfferStats(
        pl.DataFrame(
            {
                "offer_id": offers,
                "exposures": [1_000] * len(offers),
                "redemptions": [900 if o in stars else 0 for o in offers],
            }
        )
    )
    members = members or [member(m) for m in sorted({r["member_id"] for r in rows})]
    full = Policy.model_validate({"slots": 1, "exploration": {"share": 1.0}, **policy})
    return decide(candidates_frame(rows), members_frame(members), full, at=AT, channel="email",
                  offer_stats=stats).decisions  # fmt: skip


def test_exploration_keeps_campaign_budgets() -> None:
    # X has room for one more member. Members 2 and 3 explore into X; member 1 leaves X to
    # explore into Y, which then has two explorers for its one place: 1 and 4 are undone, and
    # member 1's greedy offer in X comes back — three members in X, whose budget is two.
    rows = [
        candidate(1, "x_top", campaign_id="X", value=50.0),
        candidate(1, "y_alt", campaign_id="Y", value=1.0),
        *(candidate(m, "z_top", campaign_id="Z", value=50.0) for m in (2, 3, 4)),
        *(candidate(m, "x_alt", campaign_id="X", value=1.0) for m in (2, 3)),
        candidate(4, "y_alt", campaign_id="Y", value=1.0),
    ]
    policy = {
        "campaigns": {"X": {"max_audience": 2}, "Y": {"max_audience": 1}},
        "economics": {"member_cost_share": None},
    }
    decisions = explore_into(policy, rows, stars=["x_alt", "y_alt"])
    per_campaign = dict(decisions.group_by("campaign_id").len().iter_rows())
    assert per_campaign.get("X", 0) <= 2
    assert per_campaign.get("Y", 0) <= 1


def test_exploration_keeps_the_member_cost_cap() -> None:
    # the cap (5% of 20 = 1.0) fits "cheap" (expected cost 0.1) but not "dear" (0.5 × 4 = 2.0)
    rows = [
        candidate(1, "cheap", p_redeem=0.5, value=10.0, cost=0.2),
        candidate(1, "dear", p_redeem=0.5, value=1.0, cost=4.0),
    ]
    policy = {"economics": {"member_cost_share": 0.05, "member_cost_floor": 0.0}}
    decisions = explore_into(policy, rows, ["dear"], members=[member(1, yearly_value=20.0)])
    assert decisions.height == 1
    assert decisions["expected_cost"].sum() <= 1.0 + 1e-9
