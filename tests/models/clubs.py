"""Small synthetic clubs with known shopping rhythms for model behaviour tests."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from nbo.data.io import write_dataset
from tests.conftest import LINE_COLUMNS, conform_frame, tiny_tables

START = datetime(2024, 1, 1, 10, 0)
MILK, BREAD = 1, 2


def rhythm_club(root: Path, *, members: int = 40, weeks: int = 16, seed: int = 0) -> Path:
    """Every member buys milk every 7 days; bread every 14; plus a few random products.

    Member 1 is the test subject: milk on days 0, 7, 14, ... and nothing random.
    """
    rng = np.random.default_rng(seed)
    rows = []
    basket = 0
    for member in range(1, members + 1):
        offset = 0 if member == 1 else int(rng.integers(0, 7))
        for day in range(offset, weeks * 7, 7):
            basket += 1
            ts = START + timedelta(days=day, minutes=int(rng.integers(0, 60)))
            items = [MILK] + ([BREAD] if (day // 7) % 2 == 0 else [])
            if member != 1:
                items += [int(p) for p in rng.choice(np.arange(3, 30), size=3, replace=False)]
            rows += [(member, basket, product, 1, ts, 1.0, 2.0) for product in items]
    transactions = pl.DataFrame(
        rows,
        orient="row",
        schema=LINE_COLUMNS,
    )
    products = pl.DataFrame(
        {
            "product_id": list(range(1, 30)),
            "department": ["DAIRY", "BAKERY"] + ["GROCERY"] * 27,
            "category": ["MILK", "BREAD"] + [f"CAT{p % 5}" for p in range(3, 30)],
        }
    )
    members_frame = pl.DataFrame({"member_id": list(range(1, members + 1))})
    base = tiny_tables()
    tables = {
        "members": conform_frame("members", members_frame),
        "products": conform_frame("products", products),
        "transactions": conform_frame("transactions", transactions),
        "campaigns": base["campaigns"].clear(),
        "campaign_audience": base["campaign_audience"].clear(),
        "offers": base["offers"].clear(),
        "offer_products": base["offer_products"].clear(),
        "redemptions": base["redemptions"].clear(),
    }
    write_dataset(tables, root, source="test")
    return root


def end_of(weeks: int) -> date:
    return (START + timedelta(days=weeks * 7)).date()
