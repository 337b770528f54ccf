"""Offers: their definitions (campaign, type, dates, size) and club-wide ``o_*`` popularity."""

from __future__ import annotations

import polars as pl

from nbo.data.io import ClubData
from nbo.features.history import History
from nbo.features.offers.columns import DEFINED, OFFER_FEATURES, ratio, weeks_before

__all__ = ["offer_definitions", "offer_features", "offer_table"]


def offer_definitions(club: ClubData) -> pl.LazyFrame:
    """Every offer of the club with its campaign's type and dates and its size.

    Columns: offer_id, campaign_id, coupon_code, campaign_type, start_date, end_date,
    o_campaign_days, o_campaign_offers, o_products, o_discount_value.
    """
    n_products = club.offer_products.group_by("offer_id").agg(pl.len().alias("o_products"))
    n_offers = club.offers.group_by("campaign_id").agg(pl.len().alias("o_campaign_offers"))
    campaigns = club.campaigns.select("campaign_id", "campaign_type", "start_date", "end_date")
    return (
        club.offers.select("offer_id", "campaign_id", "coupon_code", "discount_value")
        .join(campaigns, on="campaign_id", how="left")
        .join(n_products, on="offer_id", how="left")
        .join(n_offers, on="campaign_id", how="left")
        .select(
            "offer_id",
            "campaign_id",
            "coupon_code",
            "campaign_type",
            "start_date",
            "end_date",
            ((pl.col("end_date") - pl.col("start_date")).dt.total_days() + 1)
            .cast(pl.Float64)
            .alias("o_campaign_days"),
            pl.col("o_campaign_offers").cast(pl.Float64),
            pl.col("o_products").fill_null(0).cast(pl.Float64),
            pl.col("discount_value").fill_null(0.0).alias("o_discount_value"),
        )
    )


def offer_features(history: History, offers: pl.LazyFrame) -> pl.LazyFrame:
    """``o_*`` point-in-time popularity of ``offers`` (offer_id) in the whole club.

    ``o_reach_8w``: receipt lines of the offer's products per basket in the last 8 weeks;
    ``o_coupon_lines_8w``: coupon lines on them per basket; ``o_code_redemptions``: earlier
    redemptions of the same coupon code (by anyone).
    """
    club = history.club
    recent = history.transactions.filter(weeks_before(history, 8))
    baskets = recent.select(pl.col("basket_id").n_unique().cast(pl.Float64).alias("n_baskets"))
    per_product = recent.group_by("product_id").agg(
        pl.len().alias("lines"), (pl.col("coupon_disc") > 0).sum().alias("coupon_lines")
    )
    offer_products = club.offer_products.join(offers, on="offer_id", how="semi")
    popularity = (
        offer_products.join(per_product, on="product_id")
        .group_by("offer_id")
        .agg(pl.col("lines").sum(), pl.col("coupon_lines").sum())
        .join(baskets, how="cross")
        .select(
            "offer_id",
            ratio("lines", "n_baskets").alias("o_reach_8w"),
            ratio("coupon_lines", "n_baskets").alias("o_coupon_lines_8w"),
        )
    )
    codes = club.offers.select("offer_id", "coupon_code")
    code_redemptions = (
        history.redemptions.join(codes, on="offer_id")
        .group_by("coupon_code")
        .agg(pl.len().cast(pl.Float64).alias("o_code_redemptions"))
    )
    return (
        offers.unique()
        .join(codes, on="offer_id", how="left")
        .join(popularity, on="offer_id", how="left")
        .join(code_redemptions, on="coupon_code", how="left")
        .select("offer_id", *[f for f in OFFER_FEATURES if f not in DEFINED])
        .fill_null(0.0)
    )


def offer_table(history: History, offers: pl.LazyFrame) -> pl.LazyFrame:
    """offer_id, campaign_type and every ``o_*`` feature of ``offers`` (offer_id) as of ``history``.

    The offers' part of :func:`response_features`, to compute once for many chunks of pairs.
    """
    definitions = offer_definitions(history.club).select(
        "offer_id", "campaign_type", *[f for f in OFFER_FEATURES if f in DEFINED]
    )
    return (
        offers.select("offer_id")
        .unique()
        .join(definitions, on="offer_id", how="left")
        .join(offer_features(history, offers.select("offer_id")), on="offer_id", how="left")
    )
