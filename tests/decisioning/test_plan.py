"""A day's plan: every member's rows in the engine's order, found by slicing."""

from __future__ import annotations

import numpy as np
import polars as pl

from nbo.decisioning.plan import Plan
from nbo.decisioning.policy import Policy
from nbo.decisioning.prepare import plan_static
from tests.decisioning.club import AT, candidate, candidates_frame, member
from tests.decisioning.club import members_frame as members_of


def _plan() -> tuple[Plan, pl.DataFrame]:
    rows = [candidate(m, o, category=f"c{o}") for m in (3, 1) for o in "cab"]
    static = plan_static(
        candidates_frame(rows), members_of([member(1), member(3)]), Policy(), at=AT,
        channel="email",
    ).collect()  # fmt: skip
    return Plan.build(static, day=AT.date(), channel="email"), static


def test_each_members_rows_are_one_slice_in_the_engines_order() -> None:
    plan, static = _plan()
    assert plan.member_ids.tolist() == [1, 3] and plan.rows == static.height
    offers = plan.columns["offer_id"]
    for member_id in (1, 3):
        rows = plan.rows_of(member_id)
        expected = (
            static.filter(pl.col("member_id") == member_id)
            .sort(["priority", "offer_id"], descending=[True, False])["offer_id"]
            .to_list()
        )
        assert list(offers[rows]) == expected
    assert plan.rows_of(2) == slice(0, 0)


def test_offers_and_campaigns_are_coded_once() -> None:
    plan, _ = _plan()
    codes = plan.columns["offer_code"]
    offers = plan.columns["offer_id"]
    assert all(plan.offer_codes[o] == c for o, c in zip(offers, codes, strict=True))
    campaign_codes = plan.columns["campaign_code"]
    assert all(
        plan.campaign_ids[c] == name
        for c, name in zip(campaign_codes, plan.columns["campaign_id"], strict=True)
    )
    assert np.all(plan.columns["odds"] == 0.0)  # no exploration odds given
