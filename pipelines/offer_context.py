"""The active offers of a decision run and what every chunk of members needs about them.

:func:`active_offers` lists the offers valid on a day; :class:`OfferContext` computes, once per
run, what depends on the whole club: the offers' products and subcategories, the most-bought
offers, their economics (typical basket spend on the products and the club's cost per
redemption) and their features, and the targeted campaigns' audiences.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from nbo.data.audience import offered_audience
from nbo.data.io import ClubData
from nbo.decisioning.policy import Policy
from nbo.errors import NboError
from nbo.features.history import History
from nbo.features.offers import offer_table

__all__ = ["YEAR", "OfferContext", "active_offers"]

YEAR = timedelta(days=364)


def active_offers(club: ClubData, at: datetime, campaign: str | None = None) -> pl.DataFrame:
    """Offers valid on ``at``'s day: offer_id, campaign_id, start/end, targeted, category,
    product, discount_value (null where the club's offers do not say)."""
    day = at.date()
    campaigns = club.campaigns.filter((pl.col("start_date") <= day) & (pl.col("end_date") >= day))
    if campaign is not None:
        known = club.campaigns.select("campaign_id").collect()["campaign_id"].to_list()
        if campaign not in known:
            raise NboError(f"--campaign {campaign!r} is not in the club's campaigns")
        campaigns = campaigns.filter(pl.col("campaign_id") == campaign)
    labels = (
        club.offer_products.join(club.products, on="product_id", how="left")
        .group_by("offer_id")
        .agg(
            category=pl.col("category").drop_nulls().mode().sort().first(),
            product=pl.col("subcategory").drop_nulls().mode().sort().first(),
        )
    )
    offers = club.offers
    if "discount_value" not in offers.collect_schema().names():
        offers = offers.with_columns(discount_value=pl.lit(None, pl.Float64))
    return (
        offers.join(
            campaigns.select("campaign_id", "start_date", "end_date", "targeted"), on="campaign_id"
        )
        .join(labels, on="offer_id", how="left")
        .select("offer_id", "campaign_id", "start_date", "end_date", "targeted", "category",
                "product", pl.col("discount_value").cast(pl.Float64))
        .sort("offer_id")
        .collect()
    )  # fmt: skip


def _offer_products(club: ClubData, offers: pl.DataFrame) -> pl.DataFrame:
    return club.offer_products.join(offers.lazy().select("offer_id"), on="offer_id").collect()


def _offer_lines(history: History, products: pl.DataFrame) -> pl.LazyFrame:
    """The last year's receipt lines of the offers' ``products``, one row per (line, offer)."""
    lines = history.transactions.filter(
        (pl.col("ts") >= history.as_of - YEAR)
        & pl.col("product_id").is_in(products["product_id"].unique().implode())
    )
    return lines.join(products.lazy(), on="product_id")


def _economics(
    history: History, offers: pl.DataFrame, products: pl.DataFrame, policy: Policy
) -> pl.DataFrame:
    """Per offer: typical basket spend on its products and the club's cost per redemption.

    The discount per redemption is the offer's face value (``offers.discount_value``) where
    known, else the mean coupon discount on its products in the last year (the club's mean
    where they have none, ``economics.default_discount`` without coupon data); the club pays
    ``club_funded_share`` of it.
    """
    economics = policy.economics
    lines = _offer_lines(history, products)
    schema = history.club.transactions.collect_schema()
    has_coupons = "coupon_disc" in schema
    spend = (
        lines.group_by("offer_id", "basket_id")
        .agg(pl.col("sales_value").sum())
        .group_by("offer_id")
        .agg(club_spend=pl.col("sales_value").median())
    )
    frame = offers.lazy().select("offer_id").join(spend, on="offer_id", how="left")
    share = economics.club_funded_share
    if has_coupons:
        coupon = history.transactions.filter(
            (pl.col("ts") >= history.as_of - YEAR) & (pl.col("coupon_disc") != 0)
        )
        totals = coupon.select(
            disc=pl.col("coupon_disc").abs().mean(),
            share=pl.col("coupon_match_disc").abs().sum() / pl.col("coupon_disc").abs().sum()
            if "coupon_match_disc" in schema
            else pl.lit(None, pl.Float64),
        ).collect()
        club_disc = totals["disc"][0]
        if share is None:
            share = totals["share"][0]
        per_offer = (
            lines.filter(pl.col("coupon_disc") != 0)
            .group_by("offer_id")
            .agg(discount=pl.col("coupon_disc").abs().mean())
        )
        frame = frame.join(per_offer, on="offer_id", how="left").with_columns(
            pl.col("discount").fill_null(club_disc if club_disc is not None else float("nan"))
        )
    else:
        frame = frame.with_columns(discount=pl.lit(None, pl.Float64))
    if "discount_value" in offers.columns:  # the coupon's face value, where the club knows it
        face = offers.lazy().select("offer_id", face=pl.col("discount_value").cast(pl.Float64))
        frame = frame.join(face, on="offer_id", how="left").with_columns(
            discount=pl.coalesce(pl.col("face").abs(), pl.col("discount"))
        )
    share = 1.0 if share is None else float(share)
    return (
        frame.with_columns(
            pl.col("discount").fill_nan(None).fill_null(economics.default_discount),
            club_spend=pl.col("club_spend").fill_null(pl.col("club_spend").median()).fill_null(0.0),
        )
        .with_columns(cost=pl.col("discount") * share)
        .select("offer_id", "club_spend", "cost")
        .collect()
    )


@dataclass(frozen=True)
class OfferContext:
    """What every chunk of members needs about the active offers, computed once per run."""

    offers: pl.DataFrame  # active_offers(...)
    products: pl.DataFrame  # offer_id, product_id
    subcategories: pl.DataFrame  # offer_id, _s: the offers' subcategories, coded
    subcategory_products: pl.DataFrame  # product_id, _s: every product in those subcategories
    popular: pl.DataFrame  # offer_id of the most-bought offers
    economics: pl.DataFrame  # offer_id, club_spend, cost
    features: pl.DataFrame  # offer_table(...) of the offers
    audience: pl.DataFrame  # campaign_id, member_id of the offers' targeted campaigns
    members: pl.DataFrame  # member_id of history.members, sorted

    @staticmethod
    def build(
        history: History, offers: pl.DataFrame, policy: Policy, *, popular_offers: int = 5
    ) -> OfferContext:
        club = history.club
        products = _offer_products(club, offers)
        named = (
            products.lazy()
            .join(club.products.select("product_id", "subcategory"), on="product_id")
            .select("offer_id", "subcategory")
            .drop_nulls()
            .unique()
            .collect()
        )
        codes = named.select("subcategory").unique().sort("subcategory").with_row_index("_s")
        subcategories = named.join(codes, on="subcategory").select("offer_id", "_s")
        subcategory_products = (
            club.products.select("product_id", "subcategory")
            .join(codes.lazy(), on="subcategory")
            .select("product_id", "_s")
            .collect()
        )
        popular = (
            _offer_lines(history, products)
            .group_by("offer_id")
            .agg(buyers=pl.col("member_id").n_unique())
            .sort(["buyers", "offer_id"], descending=[True, False])
            .head(popular_offers)
            .select("offer_id")
            .collect()
        )
        targeted = offers.filter(pl.col("targeted")).select("campaign_id").unique()
        audience = (
            offered_audience(club.campaign_audience)
            .join(targeted.lazy(), on="campaign_id", how="semi")
            .collect()
        )
        return OfferContext(
            offers=offers,
            products=products,
            subcategories=subcategories,
            subcategory_products=subcategory_products,
            popular=popular,
            economics=_economics(history, offers, products, policy),
            features=offer_table(history, offers.lazy().select("offer_id")).collect(),
            audience=audience,
            members=history.members.select("member_id").sort("member_id").collect(),
        )
