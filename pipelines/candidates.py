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
* **Scores**: ``p_redeem`` from the bundle's offer-response model, ``p_buy`` (would the member
  buy the offer's products anyway) from its purchase-propensity model, and ``uplift`` from its
  uplift model — learned from randomized exposure where the club has it, else the documented
  assumption, flagged ``uplift_measured = false``.
* **Economics** (per pair): ``value`` = margin × the member's typical spend per basket on the
  offer's products (the club's typical spend where the member never bought them); ``cost`` =
  typical coupon discount on those products × the club-funded share (``coupon_match_disc`` /
  ``coupon_disc`` where the receipts carry them, else the policy's defaults).
* **Members**: baskets, yearly value (margin × last 52 weeks' spend) and the visit-timing
  forecast (lapsing, next visit, usual hour).

A big club is done in chunks of members (:func:`candidate_chunks`): what depends on the whole
club (the offers' economics, popularity and features) is computed once in
:class:`~nbo.pipelines.offer_context.OfferContext`, then each chunk reads its own members'
receipt lines once and derives its pairs, features, scores and purchase statistics from them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import polars as pl

from nbo.decisioning.policy import Policy
from nbo.features.history import History
from nbo.models.purchase import OfferPurchase
from nbo.models.response import OfferResponse
from nbo.models.timing import VisitTiming
from nbo.models.uplift import OfferUplift
from nbo.pipelines.offer_context import YEAR, OfferContext, active_offers

__all__ = [
    "MEMBERS_PER_CHUNK",
    "OfferContext",
    "OfferScorers",
    "active_offers",
    "build_candidates",
    "build_members",
    "candidate_chunks",
    "chunk_candidates",
    "member_chunks",
]

MEMBERS_PER_CHUNK = 100_000


class OfferScorers(Protocol):
    """The models that score a (member, offer) pair (a :class:`~nbo.tracking.bundle.Bundle`)."""

    @property
    def response(self) -> OfferResponse: ...

    @property
    def purchase(self) -> OfferPurchase: ...

    @property
    def uplift(self) -> OfferUplift: ...


_MIN_ID, _MAX_ID = -(2**63), 2**63 - 1
_LINE_COLUMNS = ("member_id", "basket_id", "product_id", "ts", "sales_value", "coupon_disc")


def member_chunks(members: pl.DataFrame, size: int = MEMBERS_PER_CHUNK) -> list[tuple[int, int]]:
    """Consecutive member_id ranges (first, last) with at most ``size`` of sorted ``members`` each.

    The ranges cover every possible id (an audience member who is not in ``members`` still
    falls in exactly one), and there is always at least one.
    """
    ids = members["member_id"]
    starts = [int(ids[k]) for k in range(size, ids.len(), size)]
    firsts = [_MIN_ID, *starts]
    lasts = [*(start - 1 for start in starts), _MAX_ID]
    return list(zip(firsts, lasts, strict=True))


def _chunk_lines(history: History, first: int, last: int) -> pl.DataFrame:
    """Every receipt line of members ``first..last`` before ``as_of`` (read once per chunk)."""
    return (
        history.transactions.filter(pl.col("member_id").is_between(first, last))
        .select(_LINE_COLUMNS)
        .collect()
    )


def _chunk_pairs(
    history: History, context: OfferContext, lines: pl.DataFrame, first: int, last: int
) -> pl.DataFrame:
    """Eligible (member, offer) pairs of members ``first..last`` (see the module docstring)."""
    offers = context.offers.select("offer_id", "campaign_id", "targeted")
    in_chunk = pl.col("member_id").is_between(first, last)
    members = context.members.filter(in_chunk)
    audience = context.audience.filter(in_chunk)
    related = (
        lines.lazy()
        .filter(pl.col("ts") >= history.as_of - YEAR)
        .select("member_id", "product_id")
        .join(context.subcategory_products.lazy(), on="product_id")
        .select("member_id", "_s")
        .unique()
        .join(context.subcategories.lazy(), on="_s")
        .select("member_id", "offer_id")
        .unique()
    )
    popular = offers.join(context.popular, on="offer_id", how="semi")
    popular_pairs = pl.concat(
        [
            popular.filter(~pl.col("targeted")).join(members, how="cross"),
            popular.filter(pl.col("targeted")).join(audience, on="campaign_id"),
        ],
        how="diagonal",
    ).select("member_id", "offer_id")
    wanted = pl.concat([related, popular_pairs.lazy()]).unique()
    # reach: a targeted campaign's audience, everyone of history.members for the others
    with_campaign = wanted.join(offers.lazy(), on="offer_id")
    untargeted = with_campaign.filter(~pl.col("targeted")).join(
        members.lazy(), on="member_id", how="semi"
    )
    targeted = with_campaign.filter(pl.col("targeted")).join(
        audience.lazy(), on=["campaign_id", "member_id"], how="semi"
    )
    return (
        pl.concat([untargeted, targeted])
        .select("member_id", "offer_id")
        .sort("member_id", "offer_id")
        .collect()
    )


def _member_offer_stats(
    history: History, context: OfferContext, lines: pl.DataFrame
) -> pl.LazyFrame:
    """Per (member, offer): baskets with its products, last purchase, usual gap, spend/basket."""
    baskets = (
        lines.lazy()
        .filter(pl.col("ts") >= history.as_of - YEAR)
        .join(context.products.lazy(), on="product_id")
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


def _score(
    history: History,
    models: OfferScorers,
    context: OfferContext,
    lines: pl.DataFrame,
    pairs: pl.DataFrame,
) -> pl.DataFrame:
    """member_id, offer_id, p_redeem, p_buy, uplift, uplift_measured of ``pairs``, in order."""
    inputs = {"receipts": lines.lazy(), "offers": context.features.lazy()}
    scored = models.response.predict_proba(history, pairs, **inputs).with_columns(
        p_buy=models.purchase.predict_proba(history, pairs, **inputs)["p_buy"]
    )
    uplift = models.uplift.predict(history, scored, **inputs)
    return scored.with_columns(uplift["uplift"], uplift["uplift_measured"])


def chunk_candidates(
    history: History,
    models: OfferScorers,
    context: OfferContext,
    policy: Policy,
    first: int,
    last: int,
) -> pl.DataFrame:
    """The scored candidates of the members ``first`` ≤ member_id ≤ ``last`` (one chunk of
    :func:`candidate_chunks`; ``context``: the offers' club-wide figures, worked out once)."""
    lines = _chunk_lines(history, first, last)
    pairs = _chunk_pairs(history, context, lines, first, last)
    scored = _score(history, models, context, lines, pairs)
    redeemed = (
        history.redemptions.filter(pl.col("member_id").is_between(first, last))
        .select("member_id", "offer_id")
        .unique()
        .collect()
    )
    stats = _member_offer_stats(history, context, lines).collect()
    del lines
    margin = policy.economics.margin
    return (
        scored.join(context.offers, on="offer_id", how="left")
        .join(context.economics, on="offer_id", how="left")
        .join(stats, on=["member_id", "offer_id"], how="left")
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


def candidate_chunks(
    history: History,
    models: OfferScorers,
    offers: pl.DataFrame,
    policy: Policy,
    *,
    popular_offers: int = 5,
    members_per_chunk: int = MEMBERS_PER_CHUNK,
) -> Iterator[pl.DataFrame]:
    """:func:`build_candidates` one chunk of members at a time (member order)."""
    context = OfferContext.build(history, offers, policy, popular_offers=popular_offers)
    for first, last in member_chunks(context.members, members_per_chunk):
        yield chunk_candidates(history, models, context, policy, first, last)


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
    models: OfferScorers,
    offers: pl.DataFrame,
    policy: Policy,
    *,
    popular_offers: int = 5,
) -> pl.DataFrame:
    """Scored (member, offer) candidates in the engine's CANDIDATE_COLUMNS, by member and offer."""
    return pl.concat(
        candidate_chunks(history, models, offers, policy, popular_offers=popular_offers)
    )
