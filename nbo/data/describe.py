"""A short description of a club dataset: size, period, shopping frequency, campaigns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl

from nbo.data.io import ClubData

__all__ = ["ClubSummary", "describe"]


@dataclass(frozen=True)
class ClubSummary:
    """Headline figures of a club dataset."""

    members: int
    active_members: int  # members with at least one receipt
    products: int
    products_bought: int
    lines: int
    baskets: int
    first_ts: datetime | None
    last_ts: datetime | None
    baskets_per_member: float
    median_baskets_per_member: float
    lines_per_basket: float
    sales_value: float
    campaigns: int
    offers: int
    audience: int  # (campaign, member) pairs contacted
    redemptions: int
    redemption_rate: float  # share of (campaign, member) pairs with at least one redemption

    @property
    def weeks(self) -> float:
        if self.first_ts is None or self.last_ts is None:
            return 0.0
        return (self.last_ts - self.first_ts).total_seconds() / (7 * 86400)

    def rows(self) -> list[tuple[str, str]]:
        """(label, formatted value) pairs in display order."""
        period = (
            f"{self.first_ts:%Y-%m-%d} .. {self.last_ts:%Y-%m-%d} ({self.weeks:.1f} weeks)"
            if self.first_ts and self.last_ts
            else "-"
        )
        return [
            ("members", f"{self.members:,}"),
            ("members with receipts", f"{self.active_members:,}"),
            ("products (bought)", f"{self.products:,} ({self.products_bought:,})"),
            ("receipt lines", f"{self.lines:,}"),
            ("baskets", f"{self.baskets:,}"),
            ("period", period),
            (
                "baskets per member (mean / median)",
                f"{self.baskets_per_member:.1f} / {self.median_baskets_per_member:.0f}",
            ),
            ("lines per basket", f"{self.lines_per_basket:.1f}"),
            ("sales value", f"{self.sales_value:,.2f}"),
            ("campaigns", f"{self.campaigns:,}"),
            ("offers", f"{self.offers:,}"),
            ("campaign audience (campaign, member)", f"{self.audience:,}"),
            ("redemptions", f"{self.redemptions:,}"),
            ("redemption rate (audience pairs that redeemed)", f"{self.redemption_rate:.2%}"),
        ]


def describe(club: ClubData) -> ClubSummary:
    """Compute the summary with a handful of streaming aggregations."""
    lines = club.transactions
    per_member = (
        lines.group_by("member_id")
        .agg(pl.col("basket_id").n_unique().alias("baskets"))
        .select(
            pl.len().alias("active"),
            pl.col("baskets").mean().alias("mean"),
            pl.col("baskets").median().alias("median"),
            pl.col("baskets").sum().alias("total"),
        )
    )
    line_stats = lines.select(
        pl.len().alias("lines"),
        pl.col("ts").min().alias("first"),
        pl.col("ts").max().alias("last"),
        pl.col("sales_value").sum().alias("sales"),
        pl.col("product_id").n_unique().alias("bought"),
    )
    pm, ls = pl.collect_all([per_member, line_stats], engine="streaming")
    active, mean_b, median_b, baskets = pm.row(0)
    n_lines, first, last, sales, bought = ls.row(0)

    audience = club.campaign_audience
    redeemed_pairs = (
        club.redemptions.join(club.offers.select("offer_id", "campaign_id"), on="offer_id")
        .select("campaign_id", "member_id")
        .unique()
        .join(audience, on=["campaign_id", "member_id"], how="semi")
    )
    counts = pl.collect_all(
        [
            club.members.select(pl.len()),
            club.products.select(pl.len()),
            club.campaigns.select(pl.len()),
            club.offers.select(pl.len()),
            audience.select(pl.len()),
            club.redemptions.select(pl.len()),
            redeemed_pairs.select(pl.len()),
        ]
    )
    n_members, n_products, n_campaigns, n_offers, n_audience, n_redemptions, n_redeemed = (
        c.item() for c in counts
    )
    baskets = int(baskets or 0)
    return ClubSummary(
        members=n_members,
        active_members=int(active or 0),
        products=n_products,
        products_bought=int(bought or 0),
        lines=int(n_lines),
        baskets=baskets,
        first_ts=first,
        last_ts=last,
        baskets_per_member=float(mean_b or 0.0),
        median_baskets_per_member=float(median_b or 0.0),
        lines_per_basket=n_lines / baskets if baskets else 0.0,
        sales_value=float(sales or 0.0),
        campaigns=n_campaigns,
        offers=n_offers,
        audience=n_audience,
        redemptions=n_redemptions,
        redemption_rate=n_redeemed / n_audience if n_audience else 0.0,
    )
