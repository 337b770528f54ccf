"""Per-member list building: the greedy that fills each member's slots under the list rules.

Rows are candidate (member, offer) pairs held as NumPy arrays, grouped by member.
:func:`greedy_select` fills every member's list in rounds: each
round gives each member with room its best row that still fits — category and campaign caps,
the member's expected-cost cap, campaigns closed by a budget — and the first rounds only take
offers on products new to the member (the discovery slots). All members advance together, so a
round costs one pass over the rows whatever the club size; a single member is the same code on a
few dozen rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["ListRules", "Rows", "greedy_select", "group_index"]


@dataclass(frozen=True)
class Rows:
    """Candidate rows, grouped by member (member codes non-decreasing)."""

    member: NDArray[np.int64]  # member code 0..n_members-1, non-decreasing
    category: NDArray[np.int64]  # (member, category) group code
    campaign: NDArray[np.int64]  # campaign code 0..n_campaigns-1
    member_campaign: NDArray[np.int64]  # (member, campaign) group code
    is_new: NDArray[np.bool_]
    cost: NDArray[np.float64]  # expected cost counted against the member's cap
    n_members: int

    def __len__(self) -> int:
        return int(self.member.size)


@dataclass(frozen=True)
class ListRules:
    """Per-member limits: slots, discovery slots, expected-cost cap; caps per list."""

    capacity: NDArray[np.int64]  # slots per member
    new_slots: NDArray[np.int64]  # of which reserved for new-to-member offers
    cost_cap: NDArray[np.float64]  # expected cost per member
    max_per_category: int = 1
    max_per_campaign: int = 1


def group_index(*keys: NDArray[np.int64]) -> NDArray[np.int64]:
    """A dense code per distinct combination of ``keys`` (row-aligned integer arrays)."""
    stacked = np.stack(keys) if len(keys) > 1 else keys[0][None, :]
    if stacked.shape[1] == 0:
        return np.zeros(0, dtype=np.int64)
    _, inverse = np.unique(stacked, axis=1, return_inverse=True)
    return inverse.reshape(-1).astype(np.int64)


def _segment_starts(member: NDArray[np.int64]) -> NDArray[np.int64]:
    if member.size == 0:
        return np.zeros(0, dtype=np.int64)
    starts: NDArray[np.int64] = np.r_[0, np.flatnonzero(member[1:] != member[:-1]) + 1]
    return starts.astype(np.int64)


def _best_per_member(
    fits: NDArray[np.bool_],
    score: NDArray[np.float64],
    member: NDArray[np.int64],
    starts: NDArray[np.int64],
) -> NDArray[np.int64]:
    """Index of each member's best fitting row (first of ties in row order)."""
    masked = np.where(fits, score, -np.inf)
    best = np.maximum.reduceat(masked, starts)
    segment = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, member.size]))
    hit = np.flatnonzero(fits & (masked == best[segment]))
    if hit.size == 0:
        return hit
    owners = member[hit]
    first = np.r_[True, owners[1:] != owners[:-1]]
    return hit[first]


def greedy_select(
    rows: Rows,
    score: NDArray[np.float64],
    rules: ListRules,
    *,
    closed: NDArray[np.bool_] | None = None,
    chosen: NDArray[np.bool_] | None = None,
    positive_only: bool = True,
) -> NDArray[np.bool_]:
    """Fill each member's list with its best fitting rows; returns the chosen mask.

    Rows must be grouped by member (any order within a member; ties go to the earlier row).
    ``closed`` marks campaigns that may take no more rows; ``chosen`` rows are kept and counted
    (a refill after a repair).
    """
    n = len(rows)
    picked = np.zeros(n, dtype=bool) if chosen is None else chosen.copy()
    room = rules.capacity.astype(np.int64).copy()
    new_room = np.minimum(rules.new_slots, rules.capacity).astype(np.int64)
    cost_left = rules.cost_cap.astype(np.float64).copy()
    per_category = np.zeros(int(rows.category.max()) + 1 if n else 0, dtype=np.int64)
    per_campaign = np.zeros(int(rows.member_campaign.max()) + 1 if n else 0, dtype=np.int64)
    if picked.any():
        np.subtract.at(room, rows.member[picked], 1)
        np.subtract.at(new_room, rows.member[picked & rows.is_new], 1)
        np.subtract.at(cost_left, rows.member[picked], rows.cost[picked])
        np.add.at(per_category, rows.category[picked], 1)
        np.add.at(per_campaign, rows.member_campaign[picked], 1)
    usable = ~picked & np.isfinite(score)
    if positive_only:
        usable &= score > 0
    if closed is not None and closed.size:
        usable &= ~closed[rows.campaign]
    rounds = int(room.max()) if room.size else 0
    starts = _segment_starts(rows.member)
    for _ in range(max(rounds, 0)):
        fits = (
            usable
            & (room[rows.member] > 0)
            & (per_category[rows.category] < rules.max_per_category)
            & (per_campaign[rows.member_campaign] < rules.max_per_campaign)
            & (rows.cost <= cost_left[rows.member] + 1e-12)
        )
        wants_new = new_room[rows.member] > 0
        # a member with discovery room takes a new-to-member row if it has one that fits
        has_new = np.zeros(rows.n_members, dtype=bool)
        has_new[rows.member[fits & rows.is_new]] = True
        fits &= ~(wants_new & has_new[rows.member]) | rows.is_new
        take = _best_per_member(fits, score, rows.member, starts)
        if take.size == 0:
            break
        picked[take] = True
        usable[take] = False
        owners = rows.member[take]
        room[owners] -= 1
        new_room[owners[rows.is_new[take]]] -= 1
        # a member who wanted a new row but had none gives that discovery slot up
        gave_up = wants_new[take] & ~has_new[owners]
        new_room[owners[gave_up]] = 0
        cost_left[owners] -= rows.cost[take]
        per_category[rows.category[take]] += 1
        per_campaign[rows.member_campaign[take]] += 1
    return picked
