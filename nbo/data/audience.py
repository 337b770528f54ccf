"""Who a campaign's audience offered: treated members, not the controls held out at random.

``campaign_audience.treated`` is optional (absent or null = treated). A control (``false``) is
eligible but got no offer: it is randomized exposure for the uplift model, never a negative
example of the response model, never a pair nbo decides for.

The service's own experiment is randomized exposure too (``nbo.history.exposure``: the holdout's
would-be offers as controls, the champion's delivered ones as treated). :func:`randomized_audience`
puts both sources in one shape; each source is its own randomization, so a campaign counts as
randomized within a source only, never by mixing one source's treated with the other's controls.
"""

from __future__ import annotations

import polars as pl

__all__ = ["EXPOSURE_KEYS", "audience_with_treated", "offered_audience", "randomized_audience"]

EXPOSURE_KEYS = ("member_id", "offer_id", "campaign_id")
"""What one randomized exposure row is about: a member, an offer, the offer's campaign."""


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


def _both_arms(rows: pl.LazyFrame) -> pl.LazyFrame:
    """The rows of campaigns that have treated and control rows."""
    return rows.filter(
        pl.col("treated").any().over("campaign_id") & (~pl.col("treated")).any().over("campaign_id")
    )


def randomized_audience(
    audience: pl.LazyFrame, offers: pl.LazyFrame, exposure: pl.LazyFrame | None = None
) -> pl.LazyFrame:
    """member_id, offer_id, campaign_id, treated, from_history of randomized campaigns.

    The club's: ``audience`` (campaign_audience) members of campaigns with treated and control
    members, times the campaign's ``offers``. The service's: ``exposure`` rows (member_id,
    offer_id, campaign_id, treated; ``nbo.history.exposure``) of campaigns with both arms in the
    history, less the pairs the club's rows already have. ``from_history`` says which.
    """
    club = (
        _both_arms(audience_with_treated(audience))
        .join(offers.select("offer_id", "campaign_id"), on="campaign_id")
        .select(*EXPOSURE_KEYS, "treated", from_history=pl.lit(False))
    )
    if exposure is None:
        return club
    service = (
        _both_arms(exposure.select(*EXPOSURE_KEYS, "treated"))
        .join(club, on=EXPOSURE_KEYS, how="anti")
        .with_columns(from_history=pl.lit(True))
    )
    return pl.concat([club, service], how="vertical_relaxed")
