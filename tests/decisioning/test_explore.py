"""Thompson sampling: matching odds, and propensities that match how often a row is shown."""

from __future__ import annotations

import numpy as np
import pytest

from nbo.decisioning.explore import HashDraws, MemberDraws, explore, matching_odds


def draws(n_members: int, seed: int) -> MemberDraws:
    return MemberDraws([f"m{i}" for i in range(n_members)], seed)


def odds_for(
    mean_p: list[float], exposures: list[float], redemptions: list[float], seed: int = 0
) -> np.ndarray:
    return matching_odds(
        np.array(mean_p),
        np.array(exposures),
        np.array(redemptions),
        prior_strength=20.0,
        draws=4_000,
        rng=np.random.default_rng(seed),
    )


def test_matching_odds_sum_to_one_and_favour_the_offer_that_redeems() -> None:
    # the same model mean, the same exposures: only the redemptions differ
    odds = odds_for([0.1, 0.1, 0.1], [200, 200, 200], [30, 24, 2])
    assert odds.sum() == pytest.approx(1.0)
    assert (odds > 0).all()  # even a hopeless offer keeps a sliver: propensities never 0
    assert odds[0] > 0.6
    assert odds[0] > odds[1] > odds[2]


def test_matching_odds_follow_the_model_without_history() -> None:
    odds = odds_for([0.3, 0.1], [0, 0], [0, 0])
    assert odds.sum() == pytest.approx(1.0)
    assert odds[0] > 0.8
    same = odds_for([0.2] * 4, [0] * 4, [0] * 4)
    np.testing.assert_allclose(same, 0.25, atol=0.04)


def test_matching_odds_of_no_offers() -> None:
    assert odds_for([], [], []).size == 0


# Two members. Member 0: rows 0-2, a full list of rows 0 and 1 (1 is its last slot), row 2 may
# replace it. Member 1: rows 3-4, a full list of row 3 alone, row 4 may replace it.
MEMBER = np.array([0, 0, 0, 1, 1])
CHOSEN = np.array([True, True, False, True, False])
LAST = np.array([False, True, False, True, False])
ALLOWED = np.array([False, False, True, False, True])
ODDS = np.array([0.05, 0.2, 0.3, 0.1, 0.35])
# the share of the last slot each row gets when explored: its odds within the member's pool
Q = np.array([0.0, 0.2 / 0.5, 0.3 / 0.5, 0.1 / 0.45, 0.35 / 0.45])


def test_no_exploration_keeps_the_greedy_lists_with_propensity_one() -> None:
    result = explore(MEMBER, ODDS, CHOSEN, LAST, ALLOWED, share=0.0, n_members=2, rng=draws(2, 0))
    assert (result.chosen == CHOSEN).all()
    assert (result.propensity[CHOSEN] == 1.0).all()
    assert not result.explored.any()


@pytest.mark.parametrize("share", [1.0, 0.3])
def test_propensity_is_the_probability_the_row_is_shown(share: float) -> None:
    # many copies of the two members in one call: the share of copies showing each row must be
    # the propensity recorded for it, which is (1 - share)·[greedy pick] + share·Q
    copies = 4_000
    tile = np.tile
    member = (MEMBER[None, :] + 2 * np.arange(copies)[:, None]).reshape(-1)
    result = explore(
        member,
        tile(ODDS, copies),
        tile(CHOSEN, copies),
        tile(LAST, copies),
        tile(ALLOWED, copies),
        share=share,
        n_members=2 * copies,
        rng=draws(2 * copies, 1),
    )
    expected = np.where(CHOSEN & ~LAST, 1.0, (1 - share) * LAST + share * Q)
    shown = result.chosen.reshape(copies, -1)
    propensity = result.propensity.reshape(copies, -1)
    np.testing.assert_allclose(shown.mean(axis=0), expected, atol=0.03)
    # every row shown carries its propensity; per member exactly as many rows as before
    np.testing.assert_allclose(
        np.where(shown, propensity, 0), np.where(shown, expected, 0), rtol=1e-12
    )
    assert (shown[:, :3].sum(axis=1) == 2).all() and (shown[:, 3:].sum(axis=1) == 1).all()
    assert shown[:, 0].all()  # a slot above the last is never touched
    explored = result.explored.reshape(copies, -1)
    assert (explored == (shown & ~CHOSEN)).all()


def test_a_member_with_room_gets_an_explored_row_added() -> None:
    # member 0 has an empty list (no last slot) and one allowed row
    result = explore(
        np.array([0]),
        np.array([1.0]),
        np.array([False]),
        np.array([False]),
        np.array([True]),
        share=1.0,
        n_members=1,
        rng=draws(1, 0),
    )
    assert result.chosen.tolist() == [True]
    assert result.explored.tolist() == [True]
    assert result.propensity.tolist() == [1.0]


def test_hash_draws_are_uniform_deterministic_and_differ_by_key() -> None:
    coins = np.array([HashDraws(f"20240610-email-{m}", 0).random(1)[0] for m in range(20_000)])
    assert ((coins >= 0) & (coins < 1)).all()
    assert abs(coins.mean() - 0.5) < 0.01 and abs((coins < 0.05).mean() - 0.05) < 0.005
    first = HashDraws("k1", 0)
    assert first.random(1)[0] == HashDraws("k1", 0).random(1)[0]
    rows = np.zeros(4, dtype=np.int64)
    assert np.array_equal(first.gumbel(rows), HashDraws("k1", 0).gumbel(rows))
    assert not np.array_equal(first.gumbel(rows), HashDraws("k2", 0).gumbel(rows))
    # a member's draws do not depend on who else is decided with it
    club = MemberDraws(["k0", "k1", "k2"], 0)
    assert club.random(3)[1] == first.random(1)[0]
    assert np.array_equal(club.gumbel(np.array([0, 1, 1, 1, 1, 2]))[1:5], first.gumbel(rows))
