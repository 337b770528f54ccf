"""Experiment arms: champion, challenger or holdout, sticky per member by a salted hash."""

from __future__ import annotations

from nbo.decisioning.explore import unit_hash

__all__ = ["arm_of"]


def arm_of(member_id: int, *, salt: str, holdout_share: float, challenger_share: float) -> str:
    """``holdout`` for the first ``holdout_share`` of the hash range, then ``challenger``."""
    u = unit_hash(f"{salt}:{member_id}")
    if u < holdout_share:
        return "holdout"
    if u < holdout_share + challenger_share:
        return "challenger"
    return "champion"
