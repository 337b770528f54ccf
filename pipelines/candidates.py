"""Scored candidates for the decision engine: which offers each member could get, and their odds.

Everything is read as of ``at`` through :class:`~nbo.features.history.History` (offer
definitions — campaigns, windows, audiences, products — are inputs and come from the full club
tables, like a campaign planned for next week).

* **Active offers**: campaigns whose window contains ``at``'s day (optionally one campaign).
* **Pairs**: an offer is a candidate for a member who may receive it (its campaign's audience,
  or everyone for an untargeted campaign) *and* has bought in one of the offer's subcategories
  in the last year, plus the club's ``popular_offers`` most-bought offers for everyone (cold
  start, onboarding and discovery). Scoring every eligible pair of a large club would cost
  hundreds of millions of model rows for offers the member has no relation to.
* **Scores**: ``p_redeem`` from the bundle's offer-response model.
* **Economics** (per pair): ``value`` = margin × the member's typical spend per basket on the
  offer's products (the club's typical spend where the member never bought them); ``cost`` =
  typical coupon discount on those products × the club-funded share (``coupon_match_disc`` /
  ``coupon_disc`` where the receipts carry them, else the policy's defaults).
* **Members**: baskets, yearly value (margin × last 52 weeks' spend) and the visit-timing
  forecast (lapsing, next visit, usual hour).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

from nbo.data.io import ClubData
from nbo.decisioning.policy import Policy
from nbo.errors import NboError
from nbo.features.history import History
from nbo.models.response import OfferResponse, campaign_members
from nbo.models.timing import VisitTiming

__all__ = ["active_offers", "build_candidates", "build_members"]

YEAR = timedelta(days=364)


def active_offers(club: ClubData, at: datetime, campaign: str | None = None) -> pl.DataFrame:
    """Offers valid on ``at``'s day: offer_id, campaign_id, start/end, targeted, category."""
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
    return (
        club.offers.join(
            campaigns.select("campaign_id", "start_date", "end_date", "targeted"), on="campaign_id"
        )
        .join(labels, on="offer_id", how="left")
        .select("offer_id", "campaign_id", "start_date", "end_date", "targeted", "category",
                "product")
        .sort("offer_id")
        .collect()
    )  # fmt: skip


def _offer_lines(history: History, offers: pl.DataFrame) -> pl.LazyFrame:
    """The last year's receipt lines of the active offers' products, one row per (line, offer)."""
    products = history.club.offer_products.join(offers.lazy().select("offer_id"), on="offer_id")
    lines = history.transactions.filter(pl.col("ts") >= history.as_of - YEAR)
    return lines.join(products, on="product_id")


def _economics(history: History, offers: pl.DataFrame, policy: Policy) -> pl.DataFrame:
    """Per offer: typical basket spend on its products and the club's cost per redemption."""
    economics = policy.economics
    lines = _offer_lines(history, offers)
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


def _member_offer_stats(history: History, offers: pl.DataFrame) -> pl.LazyFrame:
    """Per (member, offer): baskets with its products, last purchase, usual gap, spend/basket."""
    baskets = (
        _offer_lines(history, offers)
        .group_by("member_id", "offer_id", "basket_id")
        .agg(pl.col("ts").min(), spend=pl.col("sales_value").sum())
    )
    days = 86_400.0
    return baskets.group_by("member_id", "offer_id").agg(
        bought_baskets=pl.len().cast(pl.Int64),
        days_since_bought=(pl.lit(history.as_of) - pl.col("ts").max()).dt.total_seconds() / days,
        usual_gap_days=pl.when(pl.len() > 1)
        .then((pl.col("ts").max() - pl.col("ts").min()).dt.total_seconds() / days / (pl.len() - 1))
        .otherwise(None),
        member_spend=pl.col("spend").median(),
    )


def _pairs(history: History, offers: pl.DataFrame, popular_offers: int) -> pl.LazyFrame:
    """Eligible (member, offer) pairs related to the member's shopping, plus popular offers."""
    club = history.club
    campaigns = club.campaigns.join(
        offers.lazy().select("campaign_id").unique(), on="campaign_id", how="semi"
    )
    reach = campaign_members(campaigns, club.campaign_audience, history.members).join(
        offers.lazy().select("offer_id", "campaign_id"), on="campaign_id"
    )
    subcategories = (
        club.offer_products.join(offers.lazy().select("offer_id"), on="offer_id")
        .join(club.products.select("product_id", "subcategory"), on="product_id")
        .select("offer_id", "subcategory")
        .drop_nulls()
        .unique()
    )
    bought = (
        history.transactions.filter(pl.col("ts") >= history.as_of - YEAR)
        .join(club.products.select("product_id", "subcategory"), on="product_id")
        .join(subcategories.select("subcategory").unique(), on="subcategory", how="semi")
        .select("member_id", "subcategory")
        .unique()
    )
    related = bought.join(subcategories, on="subcategory").select("member_id", "offer_id").unique()
    popular = (
        _offer_lines(history, offers)
        .group_by("offer_id")
        .agg(buyers=pl.col("member_id").n_unique())
        .sort(["buyers", "offer_id"], descending=[True, False])
        .head(popular_offers)
        .select("offer_id")
    )
    wanted = pl.concat(
        [related, reach.join(popular, on="offer_id").select("member_id", "offer_id")]
    )
    return reach.join(wanted.unique(), on=["member_id", "offer_id"], how="semi")


def build_members(history: History, timing: VisitTiming, policy: Policy) -> pl.DataFrame:
    """member_id, baskets, yearly_value, lapsing, cold_start, next_visit_date, preferred_hour."""
    activity = (
        history.transactions.filter(pl.col("ts") >= history.as_of - YEAR)
        .group_by("member_id")
        .agg(
            baskets=pl.col("basket_id").n_unique().cast(pl.Int64), spend=pl.col("sales_value").sum()
        )
    )
    forecast = timing.predict(history, horizon_days=28).select(
        "member_id", "lapsing", "cold_start", "next_visit_date", "preferred_hour"
    )
    return (
        history.members.select("member_id")
        .join(activity, on="member_id", how="left")
        .with_columns(
            pl.col("baskets").fill_null(0),
            yearly_value=pl.col("spend").fill_null(0.0) * policy.economics.margin,
        )
        .drop("spend")
        .collect()
        .join(forecast, on="member_id", how="left")
    )


def build_candidates(
    history: History,
    response: OfferResponse,
    offers: pl.DataFrame,
    policy: Policy,
    *,
    popular_offers: int = 5,
) -> pl.DataFrame:
    """Scored (member, offer) candidates in the engine's CANDIDATE_COLUMNS."""
    pairs = _pairs(history, offers, popular_offers).collect()
    scored = response.predict_proba(history, pairs.select("member_id", "offer_id"))
    redeemed = history.redemptions.select("member_id", "offer_id").unique().collect()
    margin = policy.economics.margin
    return (
        scored.join(offers, on="offer_id", how="left")
        .join(_economics(history, offers, policy), on="offer_id", how="left")
        .join(_member_offer_stats(history, offers).collect(), on=["member_id", "offer_id"],
              how="left")
        .join(redeemed.with_columns(redeemed_before=pl.lit(True)), on=["member_id", "offer_id"],
              how="left")
        .with_columns(
            pl.col("bought_baskets").fill_null(0),
            pl.col("redeemed_before").fill_null(False),
            in_audience=pl.lit(True),
            is_new=pl.col("bought_baskets").is_null(),
            value=margin * pl.coalesce("member_spend", "club_spend"),
        )
    )  # fmt: skip
