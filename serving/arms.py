"""Experiment arms: champion, challenger or holdout, sticky per member by a salted hash."""

from __future__ import annotations

from hashlib import blake2b

__all__ = ["arm_of", "unit_hash"]


def unit_hash(salt: str, member_id: int) -> float:
    """A uniform number in [0, 1) fixed by ``salt`` and ``member_id``."""
    digest = blake2b(f"{salt}:{member_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def arm_of(member_id: int, *, salt: str, holdout_share: float, challenger_share: float) -> str:
    """``holdout`` for the first ``holdout_share`` of the hash range, then ``challenger``."""
    u = unit_hash(salt, member_id)
    if u < holdout_share:
        return "holdout"
    if u < holdout_share + challenger_share:
        return "challenger"
    return "champion"
