"""Experiment arms: champion, challenger or holdout, sticky per member by a salted hash.

A holdout member is decided for like everyone else, by the same kernel on the champion's plan,
but nothing is sent: its would-be offers are recorded ``delivered = false`` (randomized exposure
for the uplift model, ``nbo.history.exposure``) and its answer lists no offers.
"""

from __future__ import annotations

from nbo.decisioning.explore import unit_hash

__all__ = ["HOLDOUT", "arm_of", "delivers"]

HOLDOUT = "holdout"
"""The arm whose members are sent nothing: the service's persistent control group."""


def arm_of(member_id: int, *, salt: str, holdout_share: float, challenger_share: float) -> str:
    """``holdout`` for the first ``holdout_share`` of the hash range, then ``challenger``."""
    u = unit_hash(f"{salt}:{member_id}")
    if u < holdout_share:
        return HOLDOUT
    if u < holdout_share + challenger_share:
        return "challenger"
    return "champion"


def delivers(arm: str) -> bool:
    """Whether the offers decided for a member of ``arm`` are sent (all arms but the holdout)."""
    return arm != HOLDOUT
