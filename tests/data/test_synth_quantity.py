"""The counterfactual truth values a purchase at what the generator's receipt lines hold."""

from __future__ import annotations

import numpy as np

from nbo.data._synth_quantity import draw_quantity, expected_line_price


def test_expected_line_price_is_the_mean_of_the_drawn_lines() -> None:
    rng = np.random.default_rng(7)
    n = 400_000
    price = np.array([2.0, 9.5])
    by_weight = np.array([False, True])
    pack_kg = np.array([0.0, 0.8])
    product = rng.integers(0, 2, n)
    quantity = draw_quantity(rng, np.ones(n, np.int64), by_weight[product], pack_kg[product])
    spend = quantity * price[product]
    expected = expected_line_price(price, by_weight, pack_kg)
    for p in (0, 1):
        lines = spend[product == p]
        standard_error = lines.std() / np.sqrt(lines.size)
        assert abs(lines.mean() - expected[p]) < 4 * standard_error
    # a line holds more than one pick's unit price on average: extra units, heavier packs
    assert expected[0] > price[0] and expected[1] > price[1] * pack_kg[1]


def test_lines_of_several_picks_hold_at_least_those_picks() -> None:
    rng = np.random.default_rng(1)
    units = np.array([1, 3, 2, 1], np.int64)
    quantity = draw_quantity(
        rng, units, np.array([False, False, True, True]), np.array([0.0, 0.0, 0.5, 0.01])
    )
    assert quantity[0] >= 1 and quantity[1] >= 3
    assert quantity[3] >= 0.05  # a weight never falls below the floor
