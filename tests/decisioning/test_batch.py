"""Deciding chunk by chunk of members (issue 4's batch at scale): the policy holds club-wide."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbo.decisioning.batch import decide_chunks
from nbo.decisioning.engine import Decisions, decide
from nbo.decisioning.prepare import plan_static
from tests.decisioning.club import AT, Instance, instances
from tests.decisioning.test_policy_invariants import check_decisions


def chunked(instance: Instance, chunks: int, *, lp_members: int = 2_000) -> Decisions:
    """decide_chunks on ``instance``'s static rows split into ``chunks`` member ranges."""
    static = plan_static(
        instance.candidates, instance.members, instance.policy, at=AT, channel=instance.channel
    ).collect()
    members = np.unique(instance.members["member_id"].to_numpy())
    edges = [int(part[0]) for part in np.array_split(members, chunks) if part.size][1:]
    bounds = list(zip([None, *edges], [*edges, None], strict=True))
    parts = [
        static.filter(
            (pl.lit(lo is None) | (pl.col("member_id") >= (lo or 0)))
            & (pl.lit(hi is None) | (pl.col("member_id") < (hi or 0)))
        )
        for lo, hi in bounds
    ]
    return decide_chunks(
        iter(parts),
        instance.policy,
        at=AT,
        channel=instance.channel,
        contacts=instance.contacts,
        offer_stats=instance.offer_stats,
        run_id="run",
        lp_members=lp_members,
    )


def unchunked(instance: Instance) -> Decisions:
    return decide(
        instance.candidates,
        instance.members,
        instance.policy,
        at=AT,
        channel=instance.channel,
        contacts=instance.contacts,
        offer_stats=instance.offer_stats,
        run_id="run",
    )


def open_instances() -> st.SearchStrategy[Instance]:
    return instances(max_members=12).map(lambda i: replace(i, closed_campaigns=frozenset()))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(open_instances())
def test_one_chunk_decides_as_the_engine(instance: Instance) -> None:
    one = chunked(instance, 1)
    whole = unchunked(instance)
    assert one.decisions.equals(whole.decisions)
    assert one.allocation is not None and whole.allocation is not None
    assert one.allocation.bound == whole.allocation.bound


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(open_instances(), st.integers(2, 4))
def test_chunks_decide_as_one_without_budgets_or_exploration(
    instance: Instance, chunks: int
) -> None:
    # members do not interact then, so chunks change nothing
    policy = instance.policy.model_copy(
        update={
            "exploration": instance.policy.exploration.model_copy(update={"share": 0.0}),
            "campaigns": {
                c: rules.model_copy(
                    update={"max_redemptions": None, "max_cost": None, "max_audience": None}
                )
                for c, rules in instance.policy.campaigns.items()
            },
        }
    )
    instance = replace(instance, policy=policy)
    assert chunked(instance, chunks).decisions.equals(unchunked(instance).decisions)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(open_instances(), st.integers(2, 4), st.sampled_from([2, 2_000]))
def test_chunks_keep_every_rule_and_budget_club_wide(
    instance: Instance, chunks: int, lp_members: int
) -> None:
    result = chunked(instance, chunks, lp_members=lp_members)
    check_decisions(instance, result.decisions)
    allocation = result.allocation
    assert allocation is not None
    assert allocation.objective <= allocation.bound + 1e-6
    # the bound holds for the whole club: at least the LP optimum of the one-piece problem
    whole = unchunked(replace(instance, policy=instance.policy.model_copy(
        update={"exploration": instance.policy.exploration.model_copy(update={"share": 0.0})}
    )))  # fmt: skip
    assert whole.allocation is not None
    assert allocation.bound >= whole.allocation.objective - 1e-6
