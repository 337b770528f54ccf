"""Column names of the offer-response features, and the small expressions they share."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from nbo.features.history import History

__all__ = [
    "DEFINED",
    "FEATURES",
    "GROUP_SPEND",
    "KEYS",
    "MEMBER_DERIVED",
    "MEMBER_FEATURES",
    "OFFER_FEATURES",
    "PAIR_DERIVED",
    "PAIR_FEATURES",
    "ratio",
    "receipts_to_read",
    "recency",
    "weeks_before",
]

MEMBER_FEATURES = (
    "m_baskets_8w",
    "m_baskets_26w",
    "m_spend_8w",
    "m_spend_26w",
    "m_recency",
    "m_coupon_lines",
    "m_coupon_lines_8w",
    "m_coupon_share",
    "m_campaigns",
    "m_audience_share",
    "m_offers_received",
    "m_redemptions",
    "m_redemptions_8w",
    "m_redeem_rate",
    "m_campaign_redeem_rate",
)
PAIR_FEATURES = (
    "mo_baskets",
    "mo_baskets_8w",
    "mo_spend",
    "mo_products",
    "mo_recency",
    "mo_basket_share",
    "mo_coupon_lines",
    "mo_cat_baskets",
    "mo_cat_spend_share",
    "mo_sub_baskets",
    "mo_sub_spend_share",
    "mo_maker_baskets",
    "mo_maker_spend_share",
    "mo_code_redeemed",
    "mo_related_redeemed",
    "mo_product_coverage",
    "mo_spend_share",
    "mo_type_redemptions",
    "mo_type_redeem_rate",
)
OFFER_FEATURES = (
    "o_campaign_days",
    "o_campaign_offers",
    "o_products",
    "o_discount_value",
    "o_reach_8w",
    "o_coupon_lines_8w",
    "o_code_redemptions",
)
FEATURES = MEMBER_FEATURES + PAIR_FEATURES + OFFER_FEATURES

KEYS = ["member_id", "offer_id"]

# features computed from other columns, not counted directly (the rest are counts, zero if none)
MEMBER_DERIVED = frozenset(
    {"m_recency", "m_coupon_share", "m_audience_share", "m_redeem_rate", "m_campaign_redeem_rate"}
)
# offer features read from the offer's definition rather than from history
DEFINED = frozenset({"o_campaign_days", "o_campaign_offers", "o_products", "o_discount_value"})
PAIR_DERIVED = frozenset(
    {
        "mo_recency",
        "mo_basket_share",
        "mo_cat_spend_share",
        "mo_sub_spend_share",
        "mo_maker_spend_share",
        "mo_product_coverage",
        "mo_spend_share",
        "mo_type_redemptions",
        "mo_type_redeem_rate",
    }
)
# spends in the offer's product groups, kept only to derive their shares
GROUP_SPEND = ("mo_cat_spend", "mo_sub_spend", "mo_maker_spend")


def weeks_before(history: History, weeks: int) -> pl.Expr:
    """Receipt lines within ``weeks`` weeks before ``as_of``."""
    return pl.col("ts") >= history.as_of - timedelta(weeks=weeks)


def recency(history: History, last: str) -> pl.Expr:
    """``1 / (1 + weeks since last)``: 1 just before ``as_of``, 0 for never."""
    weeks = (pl.lit(history.as_of) - pl.col(last)).dt.total_seconds() / (7 * 86_400)
    return (1.0 / (1.0 + weeks)).fill_null(0.0)


def ratio(numerator: str, denominator: str) -> pl.Expr:
    """``numerator / denominator``, 0 where the denominator is 0 or missing."""
    den = pl.col(denominator).cast(pl.Float64)
    return pl.when(den > 0).then(pl.col(numerator) / den).otherwise(0.0)


def receipts_to_read(history: History, receipts: pl.LazyFrame | None) -> pl.LazyFrame:
    """The receipt lines to read: ``history.transactions`` or a subset of it read before."""
    return history.transactions if receipts is None else receipts
