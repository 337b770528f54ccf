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

from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl

from nbo.serving.arms import arm_of, delivers
from tests.models.uplift_club import (  # the same members, campaigns and effect
    AS_OF,
    EFFECT,
    campaign_start,
    fav,
    regular,
    weekly_baskets,
    write_club,
)

__all__ = ["AS_OF", "exposure_club", "fav", "regular", "served_decisions"]

HOLDOUT_SHARE = 0.3
SALT = "exposure-club"


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
    lines: list[tuple[object, ...]] = []
    redeemed: list[tuple[object, ...]] = []
    basket = 0
    for m in ids:
        member_lines, basket = weekly_baskets(m, rng, basket)
        lines += member_lines
        for c in range(1, 6):
            sent = m % 3 != 0 and delivers(arm(m))
            ts = campaign_start(c) + timedelta(days=int(rng.integers(1, 14)), hours=12)
            if sent and not regular(m) and rng.random() < EFFECT:
                basket += 1
                lines.append((m, basket, fav(m), 1, ts, 1.0, 2.0))
                redeemed.append((m, f"C{c}-{fav(m)}", ts))
            elif sent and regular(m) and rng.random() < 0.5:  # paid for a purchase made anyway
                redeemed.append((m, f"C{c}-{fav(m)}", ts))
    audience = [(f"C{c}", m) for c in range(1, 6) for m in ids if m % 3 != 0 and delivers(arm(m))]
    frame = pl.DataFrame(audience, schema=["campaign_id", "member_id"], orient="row")
    return write_club(root, ids, lines, frame, redeemed)
