"""``m_*`` features of members and ``mo_*`` counts of (member, offer) pairs."""

from __future__ import annotations

import polars as pl

from nbo.features.history import History
from nbo.features.offers.columns import (
    KEYS,
    MEMBER_DERIVED,
    MEMBER_FEATURES,
    ratio,
    receipts_to_read,
    recency,
    weeks_before,
)
from nbo.features.offers.groups import GROUPS, group_counts, group_counts_eager

__all__ = ["by_campaign_type", "member_features", "pair_features", "redeemed_before"]


def member_features(
    history: History, members: pl.LazyFrame, receipts: pl.LazyFrame | None = None
) -> pl.LazyFrame:
    """``m_*`` features of ``members`` (member_id) as of ``history.as_of``; zeros for no history.

    ``receipts``, if given, must hold every line of ``history.transactions`` of these members.
    """
    receipts = receipts_to_read(history, receipts).join(members, on="member_id", how="semi")
    recent, half_year = weeks_before(history, 8), weeks_before(history, 26)
    coupon = pl.col("coupon_disc") > 0
    shopping = receipts.group_by("member_id").agg(
        pl.col("basket_id").filter(recent).n_unique().alias("m_baskets_8w"),
        pl.col("basket_id").filter(half_year).n_unique().alias("m_baskets_26w"),
        pl.col("sales_value").filter(recent).sum().alias("m_spend_8w"),
        pl.col("sales_value").filter(half_year).sum().alias("m_spend_26w"),
        pl.col("ts").max().alias("m_last_ts"),
        coupon.sum().alias("m_coupon_lines"),
        (coupon & recent).sum().alias("m_coupon_lines_8w"),
        pl.len().alias("m_lines"),
        pl.col("basket_id").n_unique().alias("m_baskets"),
        pl.col("sales_value").sum().alias("m_spend"),
    )
    offers_per_campaign = history.offers.group_by("campaign_id").agg(pl.len().alias("n_offers"))
    received = (
        history.campaign_audience.join(members, on="member_id", how="semi")
        .join(offers_per_campaign, on="campaign_id", how="left")
        .group_by("member_id")
        .agg(
            pl.len().alias("m_campaigns"),
            pl.col("n_offers").fill_null(0).sum().alias("m_offers_received"),
        )
    )
    redeemed = (
        history.redemptions.join(members, on="member_id", how="semi")
        .join(history.offers.select("offer_id", "campaign_id"), on="offer_id", how="left")
        .group_by("member_id")
        .agg(
            pl.len().alias("m_redemptions"),
            weeks_before(history, 8).sum().alias("m_redemptions_8w"),
            pl.col("campaign_id").n_unique().alias("m_campaigns_redeemed"),
        )
    )
    n_campaigns = history.campaigns.select(pl.len().alias("n_campaigns"))
    counts = [c for c in MEMBER_FEATURES if c not in MEMBER_DERIVED] + [
        "m_lines",
        "m_baskets",
        "m_spend",
        "m_campaigns_redeemed",
    ]
    return (
        members.unique()
        .join(shopping, on="member_id", how="left")
        .join(received, on="member_id", how="left")
        .join(redeemed, on="member_id", how="left")
        .join(n_campaigns, how="cross")
        .with_columns(pl.col(counts).cast(pl.Float64).fill_null(0.0))
        .with_columns(
            recency(history, "m_last_ts").alias("m_recency"),
            ratio("m_coupon_lines", "m_lines").alias("m_coupon_share"),
            ratio("m_campaigns", "n_campaigns").alias("m_audience_share"),
            ratio("m_redemptions", "m_offers_received").alias("m_redeem_rate"),
            ratio("m_campaigns_redeemed", "m_campaigns").alias("m_campaign_redeem_rate"),
        )
        .select("member_id", *MEMBER_FEATURES, "m_lines", "m_baskets", "m_spend")
    )


def pair_features(
    history: History, pairs: pl.LazyFrame, receipts: pl.LazyFrame | None = None
) -> pl.LazyFrame:
    """Raw ``mo_*`` counts of distinct (member_id, offer_id) ``pairs``; null where there are none.

    Includes ``mo_last_ts`` and the group spends that :func:`response_features` turns into
    recency and shares.

    Product-level counts come from the members' receipt lines joined to the offers' products
    (rows = lines × offers per product); category-level ones from the pairs joined to the
    offers' categories (rows = pairs × categories per offer), so neither grows with the square
    of the club. ``receipts`` as in :func:`member_features`; given them (a batch scorer's chunk
    of members), the group counts are computed on arrays in memory (:func:`group_counts_eager`,
    the same numbers) instead of by polars joins.
    """
    club = history.club
    in_memory = receipts is not None
    offer_products = club.offer_products.join(pairs.select("offer_id"), on="offer_id", how="semi")
    receipts = receipts_to_read(history, receipts).join(
        pairs.select("member_id"), on="member_id", how="semi"
    )
    on_products = (
        receipts.select("member_id", "basket_id", "product_id", "ts", "sales_value", "coupon_disc")
        .join(offer_products, on="product_id")
        .join(pairs, on=KEYS, how="semi")
        .group_by(KEYS)
        .agg(
            pl.col("basket_id").n_unique().alias("mo_baskets"),
            pl.col("basket_id").filter(weeks_before(history, 8)).n_unique().alias("mo_baskets_8w"),
            pl.col("sales_value").sum().alias("mo_spend"),
            pl.col("product_id").n_unique().alias("mo_products"),
            pl.col("ts").max().alias("mo_last_ts"),
            (pl.col("coupon_disc") > 0).sum().alias("mo_coupon_lines"),
        )
    )
    if in_memory:
        pairs = pairs.collect().lazy()
        lines = receipts.select("member_id", "basket_id", "product_id", "sales_value").collect()
        groups = [
            group_counts_eager(
                pairs.collect(), lines, offer_products.collect(), club.products.collect()
            ).lazy()
        ]
    else:
        groups = [
            group_counts(pairs, receipts, offer_products, club.products, keys, prefix)
            for keys, prefix in GROUPS
        ]
    features = pairs.join(on_products, on=KEYS, how="left")
    for group in groups:
        features = features.join(group, on=KEYS, how="left")
    return features.join(redeemed_before(history, pairs), on=KEYS, how="left")


def redeemed_before(history: History, pairs: pl.LazyFrame) -> pl.LazyFrame:
    """Earlier redemptions by the member of the same coupon code, or of offers sharing products."""
    club = history.club
    redeemed = history.redemptions.join(pairs.select("member_id"), on="member_id", how="semi")
    codes = club.offers.select("offer_id", "coupon_code")
    same_code = (
        redeemed.join(codes, on="offer_id")
        .drop("offer_id")
        .join(codes.join(pairs.select("offer_id"), on="offer_id", how="semi"), on="coupon_code")
        .join(pairs, on=KEYS, how="semi")
        .group_by(KEYS)
        .agg(pl.len().alias("mo_code_redeemed"))
    )
    scoped = club.offer_products.join(pairs.select("offer_id"), on="offer_id", how="semi")
    past = club.offer_products.join(redeemed.select("offer_id"), on="offer_id", how="semi")
    related = (
        scoped.join(past.rename({"offer_id": "past_offer_id"}), on="product_id")
        .select("offer_id", "past_offer_id")
        .unique()
    )
    shared_products = (
        redeemed.select("member_id", pl.col("offer_id").alias("past_offer_id"))
        .join(related, on="past_offer_id")
        .join(pairs, on=KEYS, how="semi")
        .group_by(KEYS)
        .agg(pl.len().alias("mo_related_redeemed"))
    )
    return same_code.join(shared_products, on=KEYS, how="full", coalesce=True)


def by_campaign_type(history: History, pairs: pl.LazyFrame) -> pl.LazyFrame:
    """Per (member, campaign type): redemptions and offers received in earlier campaigns."""
    members = pairs.select("member_id")
    types = history.campaigns.select("campaign_id", "campaign_type")
    offers = history.offers.select("offer_id", "campaign_id").join(types, on="campaign_id")
    redeemed = (
        history.redemptions.join(members, on="member_id", how="semi")
        .join(offers, on="offer_id")
        .group_by("member_id", "campaign_type")
        .agg(pl.len().alias("mo_type_redemptions"))
    )
    offers_per_campaign = offers.group_by("campaign_id").agg(pl.len().alias("n_offers"))
    received = (
        history.campaign_audience.join(members, on="member_id", how="semi")
        .join(types, on="campaign_id")
        .join(offers_per_campaign, on="campaign_id")
        .group_by("member_id", "campaign_type")
        .agg(pl.col("n_offers").sum().alias("mo_type_offers"))
    )
    return redeemed.join(received, on=["member_id", "campaign_type"], how="full", coalesce=True)
