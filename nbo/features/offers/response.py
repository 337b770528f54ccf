"""Every feature of (member, offer) pairs, as the offer response model reads them."""

from __future__ import annotations

import polars as pl

from nbo.data.io import ClubData
from nbo.features.history import History
from nbo.features.offers.columns import (
    FEATURES,
    GROUP_SPEND,
    KEYS,
    MEMBER_FEATURES,
    PAIR_DERIVED,
    PAIR_FEATURES,
    ratio,
    recency,
)
from nbo.features.offers.members import by_campaign_type, member_features, pair_features
from nbo.features.offers.table import offer_table

__all__ = ["features_at_starts", "response_features"]


def response_features(
    history: History,
    pairs: pl.LazyFrame,
    *,
    receipts: pl.LazyFrame | None = None,
    offers: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """Every feature of ``pairs`` (member_id, offer_id, any extra columns kept) as of ``history``.

    Rows keep the input order; offers must exist in ``history.club`` (check before calling).
    Adds ``campaign_type`` (a string, for the model to encode) beside :data:`FEATURES`.
    ``receipts`` (every line of ``history.transactions`` of the pairs' members) and ``offers``
    (:func:`offer_table` of at least the pairs' offers, same ``history``) save reading the whole
    club again when a batch is scored in chunks.
    """
    indexed = pairs.with_row_index("_row")
    distinct = indexed.select(KEYS).unique()
    if offers is None:
        offers = offer_table(history, distinct.select("offer_id"))
    pair_counts = [f for f in PAIR_FEATURES if f not in PAIR_DERIVED]
    return (
        indexed.join(
            member_features(history, distinct.select("member_id"), receipts),
            on="member_id",
            how="left",
        )
        .join(pair_features(history, distinct, receipts), on=KEYS, how="left")
        .join(offers, on="offer_id", how="left")
        .join(by_campaign_type(history, distinct), on=["member_id", "campaign_type"], how="left")
        .with_columns(
            pl.col(
                *MEMBER_FEATURES,
                "m_lines",
                "m_baskets",
                "m_spend",
                *pair_counts,
                *GROUP_SPEND,
                "mo_type_redemptions",
                "mo_type_offers",
            )
            .cast(pl.Float64)
            .fill_null(0.0)
        )
        .with_columns(
            recency(history, "mo_last_ts").alias("mo_recency"),
            ratio("mo_baskets", "m_baskets").alias("mo_basket_share"),
            ratio("mo_products", "o_products").alias("mo_product_coverage"),
            ratio("mo_spend", "m_spend").alias("mo_spend_share"),
            ratio("mo_type_redemptions", "mo_type_offers").alias("mo_type_redeem_rate"),
            *(
                ratio(f"mo_{g}_spend", "m_spend").alias(f"mo_{g}_spend_share")
                for g in ("cat", "sub", "maker")
            ),
        )
        .sort("_row")
        .drop(
            "_row", "m_lines", "m_baskets", "m_spend", "mo_last_ts", "mo_type_offers", *GROUP_SPEND
        )
        .select(pl.all().exclude(FEATURES), *FEATURES)
    )


def features_at_starts(club: ClubData, pairs: pl.DataFrame) -> pl.DataFrame:
    """The :func:`response_features` of past campaigns' ``pairs`` (member_id, offer_id,
    start_date, any extra columns kept), each row as of its campaign's start: what the pair
    models learn from. Rows come grouped by start, in order of first appearance.

    One collect per start: polars plans a union of them far worse than each alone.
    """
    return pl.concat(
        [
            response_features(History.at(club, start), group.lazy()).collect()
            for (start,), group in pairs.group_by("start_date", maintain_order=True)
        ]
    )
