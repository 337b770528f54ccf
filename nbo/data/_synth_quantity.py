"""How much of a product one receipt line holds: the draw and its expectation, side by side.

A line of ``units`` picks of a product sold by the unit holds ``units`` plus an extra unit in
8 % of lines and another in 2 %; of a product sold by weight, ``units`` times its pack weight
times a log-normal spread. :func:`draw_quantity` writes the receipts;
:func:`expected_line_price` is what one pick costs on average, which the counterfactual truth
values a purchase at. Held equal by ``tests/data/test_synth_quantity.py``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["draw_quantity", "expected_line_price"]

EXTRA_UNIT = (0.08, 0.02)  # a line gets one more unit below the first share, two below the second
WEIGHT_SPREAD = 0.3  # sigma of the log-normal weight around the pack weight
MIN_WEIGHT_KG = 0.05
WEIGHT_DECIMALS = 3


def draw_quantity(
    rng: np.random.Generator,
    units: NDArray[np.int64],
    by_weight: NDArray[np.bool_],
    pack_kg: NDArray[np.float64],
) -> NDArray[np.float64]:
    """The quantity of each line of ``units`` picks (``by_weight`` and ``pack_kg`` per line)."""
    u = rng.random(units.size)
    quantity = (units + (u < EXTRA_UNIT[0]) + (u < EXTRA_UNIT[1])).astype(np.float64)
    weighed = np.flatnonzero(by_weight)
    weight = pack_kg[weighed] * rng.lognormal(0.0, WEIGHT_SPREAD, weighed.size)
    quantity[weighed] = np.maximum(
        np.round(weight * units[weighed], WEIGHT_DECIMALS), MIN_WEIGHT_KG
    )
    return quantity


def expected_line_price(
    price: NDArray[np.float64], by_weight: NDArray[np.bool_], pack_kg: NDArray[np.float64]
) -> NDArray[np.float64]:
    """The expected shelf price of a line of one pick of each product (``price`` per unit or
    per kg): the mean of :func:`draw_quantity`'s quantity times the price (the rounding of a
    weight and its floor are left out: they move it by far less than a cent)."""
    extra = EXTRA_UNIT[0] + EXTRA_UNIT[1]
    weight = pack_kg * np.exp(WEIGHT_SPREAD**2 / 2)
    return price * np.where(by_weight, weight, 1.0 + extra)
