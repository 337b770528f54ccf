"""Randomized exposure from the interaction history: the service's own experiment, as pairs.

The service's arm is drawn per member from a salted hash, independent of everything about the
member (``nbo.serving.arms``), and a holdout member is decided for by the same kernel on the
same (champion's) plan as a champion member, only nothing is sent: its would-be offers are
recorded with ``delivered`` false. So for each (member, offer, campaign) the service decided:

* ``treated`` true: the champion arm's delivered decisions;
* ``treated`` false: the holdout arm's would-be decisions (controls).

The challenger's decisions are left out (its plan, not the champion's, chose them, so the
holdout is no control for them), and so are batch runs (``nbo decide``: no arm, no holdout)
and members whose decisions carry more than one arm (a new salt moved them: no single draw).
Exploration draws stay in, unweighted, in both arms: the holdout draws them by the same rule
with the same odds, so the two arms' pairs are alike in distribution (docs/uplift.md).

One row per pair, from its first decision strictly before ``before``; the uplift model takes the
campaign's window for the outcome, as for the club's own randomized campaigns.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl
from sqlalchemy import Engine, or_, select

from nbo.history.engine import to_naive_utc
from nbo.history.schema import decisions

__all__ = ["EXPOSURE_SCHEMA", "randomized_exposure"]

EXPOSURE_SCHEMA = pl.Schema(
    {
        "member_id": pl.Int64(),
        "offer_id": pl.String(),
        "campaign_id": pl.String(),
        "treated": pl.Boolean(),
        "decided_at": pl.Datetime("us"),
        "explored": pl.Boolean(),
        "propensity": pl.Float64(),
    }
)
"""Columns of :func:`randomized_exposure`: the pair, its arm, its first decision."""

_TREATED_ARM = "champion"  # the arm whose plan the holdout is decided on
_CONTROL_ARM = "holdout"
_KEYS = ("member_id", "offer_id", "campaign_id")


def randomized_exposure(engine: Engine, before: datetime | None) -> pl.DataFrame:
    """The service's randomized exposure decided strictly before ``before`` (module docstring;
    None: all of it, for a back-test that holds out what came after a training date).

    Sorted by member, offer and campaign; ``treated`` true for delivered champion decisions,
    false for a holdout member's would-be ones.
    """
    d = decisions.c
    query = select(
        d.member_id, d.offer_id, d.campaign_id, d.arm, d.delivered, d.decided_at, d.explored,
        d.propensity,
    ).where(
        d.campaign_id.is_not(None),
        or_(d.arm == _TREATED_ARM, d.arm == _CONTROL_ARM),
    )  # fmt: skip
    if before is not None:
        query = query.where(d.decided_at < to_naive_utc(before))
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    logged = pl.DataFrame(
        rows,
        schema={
            "member_id": pl.Int64(), "offer_id": pl.String(), "campaign_id": pl.String(),
            "arm": pl.String(), "delivered": pl.Boolean(), "decided_at": pl.Datetime("us"),
            "explored": pl.Boolean(), "propensity": pl.Float64(),
        },
        orient="row",
    )  # fmt: skip
    treated = (pl.col("arm") == _TREATED_ARM) & pl.col("delivered")
    control = (pl.col("arm") == _CONTROL_ARM) & ~pl.col("delivered")
    return (
        logged.filter(pl.col("arm").n_unique().over("member_id") == 1)
        .filter(treated | control)
        .sort(*_KEYS, "decided_at")
        .group_by(_KEYS, maintain_order=True)
        .first()
        .with_columns(treated=treated)
        .select(EXPOSURE_SCHEMA.names())
        .cast(EXPOSURE_SCHEMA)
    )
