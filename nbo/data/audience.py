"""Who a campaign's audience offered: treated members, not the controls held out at random.

``campaign_audience.treated`` is optional (absent or null = treated). A control (``false``) is
eligible but got no offer: it is randomized exposure for the uplift model, never a negative
example of the response model, never a pair nbo decides for.
"""

from __future__ import annotations

import polars as pl

__all__ = ["audience_with_treated", "offered_audience"]


def audience_with_treated(audience: pl.LazyFrame) -> pl.LazyFrame:
    """campaign_id, member_id, treated of ``audience``; no ``treated`` column reads as all true."""
    if "treated" in audience.collect_schema().names():
        treated = pl.col("treated").fill_null(True)
    else:
        treated = pl.lit(True)
    return audience.select("campaign_id", "member_id", treated.alias("treated"))


def offered_audience(audience: pl.LazyFrame) -> pl.LazyFrame:
    """campaign_id, member_id of the audience's treated members (controls left out)."""
    return audience_with_treated(audience).filter(pl.col("treated")).drop("treated")
