"""Arms: sticky per member, shares as configured, independent of the order members arrive in."""

from __future__ import annotations

from collections import Counter

from nbo.decisioning.explore import unit_hash
from nbo.serving.arms import arm_of


def test_arms_are_sticky_and_split_as_configured() -> None:
    members = range(100_000)
    arms = Counter(
        arm_of(m, salt="club", holdout_share=0.05, challenger_share=0.2) for m in members
    )
    assert abs(arms["holdout"] / 100_000 - 0.05) < 0.005
    assert abs(arms["challenger"] / 100_000 - 0.2) < 0.01
    again = [arm_of(m, salt="club", holdout_share=0.05, challenger_share=0.2) for m in range(50)]
    assert again == [arm_of(m, salt="club", holdout_share=0.05, challenger_share=0.2)
                     for m in range(50)]  # fmt: skip


def test_the_salt_reshuffles_and_the_holdout_does_not_move_with_the_challenger_share() -> None:
    assert [unit_hash(f"a:{m}") for m in range(20)] != [unit_hash(f"b:{m}") for m in range(20)]
    held = {m for m in range(20_000) if arm_of(m, salt="s", holdout_share=0.1,
                                               challenger_share=0.0) == "holdout"}  # fmt: skip
    held_too = {m for m in range(20_000) if arm_of(m, salt="s", holdout_share=0.1,
                                                   challenger_share=0.5) == "holdout"}  # fmt: skip
    assert held == held_too
