"""A small club with randomized campaigns and a known offer effect, for p_buy and uplift.

Every member shops weekly; "regulars" (even ids) buy their favourite product (``fav``) in 80 %
of weeks, the others in 15 %. Five targeted two-week campaigns (from week 5, every third week)
offer each of products 1..8; two thirds of the members are in every audience, 30 % of them held
out at random as controls (``treated`` false). A treated non-regular buys the favourite in the
window with an extra probability of :data:`EFFECT`; regulars are not moved (effect 0).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from nbo.data.io import write_dataset
from tests.conftest import LINE_COLUMNS, conform_frame

START = datetime(2024, 1, 1)
WEEKS = 20
EFFECT = 0.3
AS_OF = START + timedelta(weeks=17)  # C5 starts here: C1..C4 are history, C5 the holdout


def fav(member: int) -> int:
    return member % 8 + 1


def regular(member: int) -> bool:
    return member % 2 == 0


def campaign_start(c: int) -> datetime:
    return START + timedelta(weeks=5 + 3 * (c - 1))


def weekly_baskets(
    m: int, rng: np.random.Generator, basket: int
) -> tuple[list[tuple[object, ...]], int]:
    """Member ``m``'s weekly baskets: a filler product, and the favourite as often as the
    member's kind says; receipt lines and the last basket number."""
    lines: list[tuple[object, ...]] = []
    for week in range(WEEKS):
        basket += 1
        ts = START + timedelta(weeks=week, days=int(rng.integers(0, 7)), hours=10)
        items = [int(rng.integers(20, 30))]
        if rng.random() < (0.8 if regular(m) else 0.15):
            items.append(fav(m))
        lines += [(m, basket, p, 1, ts, 1.0, 2.0) for p in items]
    return lines, basket


def write_club(
    root: Path,
    ids: list[int],
    lines: list[tuple[object, ...]],
    audience: pl.DataFrame,
    redeemed: list[tuple[object, ...]],
) -> Path:
    """The five campaigns of products 1..8 with ``audience`` (campaign_id, member_id[,
    treated]), the receipt ``lines`` and ``redeemed`` (member_id, offer_id, ts), at ``root``."""
    offers = pl.DataFrame(
        [(f"C{c}-{p}", f"C{c}", p) for c in range(1, 6) for p in range(1, 9)],
        schema=["offer_id", "campaign_id", "product_id"],
        orient="row",
    )
    tables = {
        "members": pl.DataFrame({"member_id": ids}),
        "products": pl.DataFrame(
            {
                "product_id": list(range(1, 30)),
                "department": ["GROCERY"] * 29,
                "category": [f"CAT{p}" for p in range(1, 30)],
            }
        ),
        "transactions": pl.DataFrame(lines, schema=LINE_COLUMNS, orient="row"),
        "campaigns": pl.DataFrame(
            {
                "campaign_id": [f"C{c}" for c in range(1, 6)],
                "campaign_type": ["A"] * 5,
                "start_date": [campaign_start(c).date() for c in range(1, 6)],
                "end_date": [(campaign_start(c) + timedelta(days=13)).date() for c in range(1, 6)],
                "targeted": [True] * 5,
            }
        ),
        "campaign_audience": audience,
        "offers": offers.select("offer_id", "campaign_id"),
        "offer_products": offers.select("offer_id", "product_id"),
        "redemptions": pl.DataFrame(
            redeemed,
            schema={"member_id": pl.Int64, "offer_id": pl.String, "ts": pl.Datetime("us")},
            orient="row",
        ),
    }
    write_dataset({n: conform_frame(n, f) for n, f in tables.items()}, root, source="test")
    return root


def uplift_club(root: Path, *, members: int = 240, seed: int = 0, randomized: bool = True) -> Path:
    rng = np.random.default_rng(seed)
    ids = list(range(1, members + 1))
    audience = [
        (f"C{c}", m, bool(rng.random() >= 0.3)) for c in range(1, 6) for m in ids if m % 3 != 0
    ]
    treated = {(c, m) for c, m, t in audience if t}
    lines: list[tuple[object, ...]] = []
    basket = 0
    for m in ids:
        member_lines, basket = weekly_baskets(m, rng, basket)
        lines += member_lines
        for c in range(1, 6):
            if not regular(m) and (f"C{c}", m) in treated and rng.random() < EFFECT:
                basket += 1
                ts = campaign_start(c) + timedelta(days=int(rng.integers(0, 14)), hours=12)
                lines.append((m, basket, fav(m), 1, ts, 1.0, 2.0))
    frame = pl.DataFrame(audience, schema=["campaign_id", "member_id", "treated"], orient="row")
    return write_club(root, ids, lines, frame if randomized else frame.drop("treated"), [])
