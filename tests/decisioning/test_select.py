"""The per-member greedy: discovery slots, list caps, cost cap, closed campaigns."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from nbo.decisioning.select import ListRules, Rows, greedy_select, group_index


def rows_of(
    member: list[int],
    category: list[int],
    *,
    campaign: list[int] | None = None,
    is_new: list[bool] | None = None,
    cost: list[float] | None = None,
) -> Rows:
    members = np.array(member, dtype=np.int64)
    campaigns = np.array(campaign or [0] * len(member), dtype=np.int64)
    return Rows(
        member=members,
        category=group_index(members, np.array(category, dtype=np.int64)),
        campaign=campaigns,
        member_campaign=group_index(members, campaigns),
        is_new=np.array(is_new or [False] * len(member)),
        cost=np.array(cost or [0.0] * len(member), dtype=np.float64),
        n_members=int(members.max()) + 1,
    )


def rules_for(
    n_members: int,
    slots: int,
    *,
    new_slots: int = 0,
    cost_cap: float = np.inf,
    max_per_category: int = 1,
    max_per_campaign: int | None = None,
) -> ListRules:
    return ListRules(
        capacity=np.full(n_members, slots, dtype=np.int64),
        new_slots=np.full(n_members, new_slots, dtype=np.int64),
        cost_cap=np.full(n_members, cost_cap),
        max_per_category=max_per_category,
        max_per_campaign=max_per_campaign or slots,
    )


def picked(mask: NDArray[np.bool_]) -> list[int]:
    return [int(i) for i in np.flatnonzero(mask)]


def score(*values: float) -> NDArray[np.float64]:
    return np.array(values, dtype=np.float64)


def test_takes_the_best_rows_up_to_the_slots() -> None:
    rows = rows_of([0, 0, 0, 0, 1, 1], [0, 1, 2, 3, 0, 1])
    chosen = greedy_select(rows, score(1, 4, 3, 2, 5, 6), rules_for(2, slots=2))
    assert picked(chosen) == [1, 2, 4, 5]


def test_discovery_slot_takes_a_new_product_row_when_one_fits() -> None:
    # the new-to-member row scores lowest but the one discovery slot goes to it
    rows = rows_of([0, 0, 0], [0, 1, 2], is_new=[False, False, True])
    chosen = greedy_select(rows, score(9, 8, 1), rules_for(1, slots=2, new_slots=1))
    assert picked(chosen) == [0, 2]
    # without a discovery slot the two best known products win
    assert picked(greedy_select(rows, score(9, 8, 1), rules_for(1, slots=2))) == [0, 1]


def test_discovery_slot_is_given_up_when_no_new_row_fits() -> None:
    # the only new row costs more than the member's cap: the slot goes to a known product
    rows = rows_of([0, 0, 0], [0, 1, 2], is_new=[False, False, True], cost=[0.1, 0.1, 5.0])
    chosen = greedy_select(rows, score(9, 8, 7), rules_for(1, slots=2, new_slots=1, cost_cap=1.0))
    assert picked(chosen) == [0, 1]


def test_category_cap() -> None:
    # rows 0 and 1 share a category: one of them, then the next category
    rows = rows_of([0, 0, 0], [7, 7, 8])
    assert picked(greedy_select(rows, score(5, 4, 1), rules_for(1, slots=2))) == [0, 2]
    two = rules_for(1, slots=2, max_per_category=2)
    assert picked(greedy_select(rows, score(5, 4, 1), two)) == [0, 1]


def test_categories_are_per_member() -> None:
    rows = rows_of([0, 1], [7, 7])
    assert picked(greedy_select(rows, score(1, 1), rules_for(2, slots=1))) == [0, 1]


def test_campaign_cap() -> None:
    rows = rows_of([0, 0, 0], [0, 1, 2], campaign=[3, 3, 4])
    rules = rules_for(1, slots=2, max_per_campaign=1)
    assert picked(greedy_select(rows, score(5, 4, 1), rules)) == [0, 2]


def test_cost_cap_skips_a_row_that_no_longer_fits() -> None:
    # after row 0 (cost 0.6) only 0.4 is left: row 1 (0.5) is skipped for row 2 (0.3)
    rows = rows_of([0, 0, 0], [0, 1, 2], cost=[0.6, 0.5, 0.3])
    chosen = greedy_select(rows, score(5, 4, 1), rules_for(1, slots=3, cost_cap=1.0))
    assert picked(chosen) == [0, 2]


def test_closed_campaigns_and_non_positive_scores_are_never_taken() -> None:
    rows = rows_of([0, 0, 0, 0], [0, 1, 2, 3], campaign=[0, 1, 0, 0])
    chosen = greedy_select(
        rows, score(5, 4, 0, -1), rules_for(1, slots=4), closed=np.array([False, True])
    )
    assert picked(chosen) == [0]


def test_refill_keeps_and_counts_the_chosen_rows() -> None:
    rows = rows_of([0, 0, 0], [7, 7, 8])
    already = np.array([False, True, False])  # the lower of the two category-7 rows
    chosen = greedy_select(rows, score(5, 4, 1), rules_for(1, slots=2), chosen=already)
    assert picked(chosen) == [1, 2]


def test_ties_go_to_the_earlier_row() -> None:
    rows = rows_of([0, 0, 0], [0, 1, 2])
    assert picked(greedy_select(rows, score(1, 3, 3), rules_for(1, slots=1))) == [1]
