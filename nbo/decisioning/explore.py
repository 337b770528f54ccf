"""Exploration: Thompson sampling on offer-level redemption rates, with exact propensities.

Each active offer has a Beta posterior on its redemption rate: a prior centred on the model's
mean ``p_redeem`` for the offer (worth ``prior_strength`` exposures) updated with the exposures
and redemptions in the interaction history. Thompson sampling shows an offer with the
probability that its draw is the highest — its *matching odds*, estimated once per run by Monte
Carlo. A member drawn for exploration (a ``share`` of members) gets their last slot filled by
an offer sampled from their own eligible set with probability proportional to those odds.
Because the sampling is explicit, every decision carries the exact probability that the policy
put that offer in that member's list, which is what off-policy evaluation needs. A member's
draws come from :class:`MemberDraws`, keyed by the member and the run (day and channel), so a
batch run and a request for the same member and day draw the same.
"""

from __future__ import annotations

import itertools
import zlib
from dataclasses import dataclass
from hashlib import blake2b
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "Draws",
    "Exploration",
    "HashDraws",
    "MemberDraws",
    "explore",
    "matching_odds",
    "unit_hash",
]


class Draws(Protocol):
    """The random draws exploration takes, per member (members coded 0..n-1)."""

    def random(self, size: int) -> NDArray[np.float64]:
        """One uniform coin per member, for ``size`` members."""
        ...

    def gumbel(self, members: NDArray[np.int64]) -> NDArray[np.float64]:
        """Gumbel noise for rows of the given members (grouped by member, in order)."""
        ...


def matching_odds(
    mean_p: NDArray[np.float64],
    exposures: NDArray[np.float64],
    redemptions: NDArray[np.float64],
    *,
    prior_strength: float,
    draws: int,
    rng: np.random.Generator,
) -> NDArray[np.float64]:
    """P(offer o has the highest posterior draw) for each offer (sums to 1)."""
    n = mean_p.size
    if n == 0:
        return np.zeros(0)
    mean = np.clip(mean_p, 1e-6, 1 - 1e-6)
    alpha = prior_strength * mean + redemptions
    beta = prior_strength * (1 - mean) + np.maximum(exposures - redemptions, 0)
    wins = np.zeros(n)
    for start in range(0, draws, 2_000):
        size = min(2_000, draws - start)
        sample = rng.beta(alpha, beta, size=(size, n))
        wins += np.bincount(sample.argmax(axis=1), minlength=n)
    # every offer keeps a sliver of chance so its propensity is never exactly zero
    odds = (wins + 0.5) / (wins.sum() + 0.5 * n)
    return np.asarray(odds / odds.sum(), dtype=np.float64)


@dataclass(frozen=True)
class Exploration:
    chosen: NDArray[np.bool_]
    propensity: NDArray[np.float64]
    explored: NDArray[np.bool_]


def explore(
    member: NDArray[np.int64],
    odds: NDArray[np.float64],
    chosen: NDArray[np.bool_],
    last: NDArray[np.bool_],
    allowed: NDArray[np.bool_],
    *,
    share: float,
    n_members: int,
    rng: Draws,
) -> Exploration:
    """Swap the last slot of a ``share`` of members for a Thompson-sampled offer.

    ``member`` and ``odds`` are per row (``odds`` = the row's offer's matching odds);
    ``chosen`` the greedy lists; ``last`` marks each member's last greedy row (where the swap
    goes), ``allowed`` the rows that may fill it (eligible, fitting the rest of the list).
    Propensities: rows kept from the greedy list other than the last get 1; the last slot's
    row ``o`` gets ``(1 - share) * [o is the greedy pick] + share * odds_o / Σ allowed odds``.
    """
    propensity = np.where(chosen, 1.0, 0.0)
    explored = np.zeros(chosen.size, dtype=bool)
    pool = allowed | last
    if share <= 0 or not pool.any():
        return Exploration(chosen.copy(), propensity, explored)
    weight = np.where(pool, odds, 0.0)
    total = np.bincount(member, weights=weight, minlength=n_members)
    q = np.divide(weight, total[member], out=np.zeros_like(weight), where=total[member] > 0)
    has_pool = total > 0
    propensity = np.where(last, (1 - share) + share * q, propensity)
    coin = (rng.random(n_members) < share) & has_pool
    rows = np.flatnonzero(pool & coin[member])
    out = chosen.copy()
    if rows.size:
        # Gumbel-max: argmax of log weight + Gumbel noise samples ∝ weight within each member
        key = np.log(np.maximum(weight[rows], 1e-300)) + rng.gumbel(member[rows])
        order = rows[np.lexsort((-key, member[rows]))]
        owners = member[order]
        first = np.r_[True, owners[1:] != owners[:-1]]
        picks = order[first]
        swapped_out = np.flatnonzero(last & coin[member])
        out[swapped_out] = False
        out[picks] = True
        explored[picks] = True
        picked_last = picks[last[picks]]  # the sample happened to agree with the greedy pick
        explored[picked_last] = False
        greedy_pick = last[picks]
        propensity[picks] = share * q[picks] + (1 - share) * greedy_pick
        propensity[swapped_out[~out[swapped_out]]] = 0.0
    return Exploration(out, propensity, explored)


def unit_hash(key: str) -> float:
    """A uniform number in [0, 1) fixed by ``key``."""
    return int.from_bytes(blake2b(key.encode(), digest_size=8).digest(), "big") / 2.0**64


class MemberDraws:
    """Exploration draws keyed per member: member ``i`` draws from ``keys[i]``.

    The coin is a hash of the key; the Gumbel noise that picks an exploration offer (needed
    only by the members the coin sends exploring) comes from a NumPy generator seeded by
    ``seed`` and the key. Deterministic per key, independent across members and days, and the
    same whether the member is decided alone or with the whole club.
    """

    def __init__(self, keys: list[str], seed: int) -> None:
        self.keys = keys
        self.seed = seed

    def random(self, size: int) -> NDArray[np.float64]:
        if size != len(self.keys):
            raise ValueError(f"{size} members, {len(self.keys)} keys")
        return np.array([unit_hash(key) for key in self.keys], dtype=np.float64)

    def gumbel(self, members: NDArray[np.int64]) -> NDArray[np.float64]:
        out = np.empty(members.size, dtype=np.float64)
        if members.size == 0:
            return out
        starts = np.r_[0, np.flatnonzero(members[1:] != members[:-1]) + 1, members.size]
        for lo, hi in itertools.pairwise(starts):
            key = self.keys[int(members[lo])]
            generator = np.random.default_rng([self.seed, zlib.crc32(key.encode())])
            out[lo:hi] = generator.gumbel(size=int(hi - lo))
        return out


def HashDraws(key: str, seed: int) -> MemberDraws:
    """One member's :class:`MemberDraws`."""
    return MemberDraws([key], seed)
