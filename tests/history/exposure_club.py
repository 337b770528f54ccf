"""A club without controls of its own whose service ran a holdout: known offer effect.

Every member shops weekly; "regulars" (even ids) buy their favourite product (``fav``) in 80 %
of weeks, the others in 15 %. Five two-week campaigns (from week 5, every third week) offer
each of products 1..8. The club's ``campaign_audience`` has no ``treated`` column: by the club's
data alone nothing is randomized. The service decided, at each campaign's start, the favourite's
offer and one other for two thirds of the members; its arm (``nbo.serving.arms.arm_of``, 30 %
holdout) says whether they were sent. A non-regular sent the favourite's offer buys it in the
window with an extra probability of :data:`EFFECT` and redeems it; regulars are not moved
(half of them redeem it anyway), nor is anyone by the other offer.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from nbo.data.io import write_dataset
from nbo.serving.arms import arm_of, delivers
from tests.conftest import LINE_COLUMNS, conform_frame

START = datetime(2024, 1, 1)
WEEKS = 20
EFFECT = 0.3
AS_OF = START + timedelta(weeks=17)  # C5 starts here: C1..C4 are history
HOLDOUT_SHARE = 0.3
SALT = "exposure-club"


def fav(member: int) -> int:
    return member % 8 + 1


def regular(member: int) -> bool:
    return member % 2 == 0


def campaign_start(c: int) -> datetime:
    return START + timedelta(weeks=5 + 3 * (c - 1))


def arm(member: int) -> str:
    return arm_of(member, salt=SALT, holdout_share=HOLDOUT_SHARE, challenger_share=0.0)


def served_decisions(members: int = 240, seed: int = 0) -> pl.DataFrame:
    """The service's decisions of the five campaigns (rows of the ``decisions`` table)."""
    rng = np.random.default_rng(seed + 1)
    rows = []
    for c in range(1, 6):
        for m in range(1, members + 1):
            if m % 3 == 0:
                continue
            other = int((fav(m) + rng.integers(1, 8) - 1) % 8 + 1)
            for rank, product in enumerate((fav(m), other), start=1):
                rows.append(
                    {
                        "decision_id": f"C{c}-{m}-{product}",
                        "member_id": m,
                        "offer_id": f"C{c}-{product}",
                        "campaign_id": f"C{c}",
                        "channel": "email",
                        "decided_at": campaign_start(c) + timedelta(hours=1),
                        "rank": rank,
                        "p_redeem": 0.2,
                        "expected_value": 1.0,
                        "propensity": 1.0,
                        "explored": False,
                        "model_version": "1",
                        "arm": arm(m),
                        "delivered": delivers(arm(m)),
                    }
                )
    return pl.DataFrame(rows)


def exposure_club(root: Path, *, members: int = 240, seed: int = 0) -> Path:
    """Write the club (see the module docstring) to ``root``."""
    rng = np.random.default_rng(seed)
    ids = list(range(1, members + 1))
    lines, basket, redeemed = [], 0, []
    for m in ids:
        for week in range(WEEKS):
            basket += 1
            ts = START + timedelta(weeks=week, days=int(rng.integers(0, 7)), hours=10)
            items = [int(rng.integers(20, 30))]
            if rng.random() < (0.8 if regular(m) else 0.15):
                items.append(fav(m))
            lines += [(m, basket, p, 1, ts, 1.0, 2.0) for p in items]
        for c in range(1, 6):
            sent = m % 3 != 0 and delivers(arm(m))
            ts = campaign_start(c) + timedelta(days=int(rng.integers(1, 14)), hours=12)
            if sent and not regular(m) and rng.random() < EFFECT:
                basket += 1
                lines.append((m, basket, fav(m), 1, ts, 1.0, 2.0))
                redeemed.append((m, f"C{c}-{fav(m)}", ts))
            elif sent and regular(m) and rng.random() < 0.5:  # paid for a purchase made anyway
                redeemed.append((m, f"C{c}-{fav(m)}", ts))
    offers = pl.DataFrame(
        [(f"C{c}-{p}", f"C{c}", p) for c in range(1, 6) for p in range(1, 9)],
        schema=["offer_id", "campaign_id", "product_id"],
        orient="row",
    )
    audience = [(f"C{c}", m) for c in range(1, 6) for m in ids if m % 3 != 0 and delivers(arm(m))]
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
        "campaign_audience": pl.DataFrame(
            audience, schema=["campaign_id", "member_id"], orient="row"
        ),
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
