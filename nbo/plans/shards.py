"""Member shards: which part of a day's plan holds a member.

A shard is ``splitmix64(member_id) mod shards``: a fixed integer hash (not Python's ``hash``,
which changes between processes), the same in the writer (NumPy, every member at once) and in
every reader (one member, plain Python), so any process finds any member's rows.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

__all__ = ["MEMBERS_PER_SHARD", "SHARD_HASH", "member_shard", "shard_count", "shard_of"]

SHARD_HASH = "splitmix64(member_id) mod shards"
MEMBERS_PER_SHARD = 250_000
"""Members per shard when the club's size chooses the count (one shard up to this many)."""

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB


def shard_count(members: int, per_shard: int = MEMBERS_PER_SHARD) -> int:
    """How many shards a club of ``members`` gets: ``ceil(members / per_shard)``, at least 1."""
    return max(1, math.ceil(members / per_shard))


def shard_of(member_ids: NDArray[np.int64], shards: int) -> NDArray[np.int64]:
    """Each member's shard (``member_ids`` may hold any int64, negative ones too)."""
    z = np.asarray(member_ids, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):  # unsigned arithmetic wraps modulo 2**64, as intended
        z = z + np.uint64(_GOLDEN)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(_MIX1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(_MIX2)
        z = z ^ (z >> np.uint64(31))
    return (z % np.uint64(shards)).astype(np.int64)


def member_shard(member_id: int, shards: int) -> int:
    """One member's shard: :func:`shard_of` for a single id, without NumPy."""
    z = (member_id + _GOLDEN) & _MASK
    z = ((z ^ (z >> 30)) * _MIX1) & _MASK
    z = ((z ^ (z >> 27)) * _MIX2) & _MASK
    z ^= z >> 31
    return z % shards
