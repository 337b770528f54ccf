"""Point-in-time views of a club: everything that was known strictly before ``as_of``.

Every feature, model and prediction in nbo reads club data through :class:`History`, the one
place where the cut is made, so nothing trained or scored "as of" a date can see the data after
it. Receipts and redemptions are cut at ``ts < as_of``; campaigns (with their audiences) are
history once they have started; a member exists once joined (or, where the join date is unknown,
once they have a receipt). The product catalogue is taken as static.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import numpy as np
import polars as pl

from nbo.data.io import ClubData

__all__ = ["History", "as_datetime", "training_cuts"]


def as_datetime(value: date | datetime | str) -> datetime:
    """A date or ISO string as the datetime at which the cut is made (midnight for a date)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return value
    return datetime.combine(value, time())


@dataclass(frozen=True)
class History:
    """The club as it was known strictly before ``as_of``."""

    club: ClubData
    as_of: datetime

    @classmethod
    def at(cls, club: ClubData, as_of: date | datetime | str) -> History:
        return cls(club, as_datetime(as_of))

    @property
    def as_of_date(self) -> date:
        return self.as_of.date()

    @property
    def transactions(self) -> pl.LazyFrame:
        return self.club.transactions.filter(pl.col("ts") < self.as_of)

    @property
    def redemptions(self) -> pl.LazyFrame:
        return self.club.redemptions.filter(pl.col("ts") < self.as_of)

    @property
    def campaigns(self) -> pl.LazyFrame:
        """Campaigns that had started before ``as_of`` (some may still be running)."""
        return self.club.campaigns.filter(pl.col("start_date") < self.as_of_date)

    @property
    def campaign_audience(self) -> pl.LazyFrame:
        return self.club.campaign_audience.join(
            self.campaigns.select("campaign_id"), on="campaign_id", how="semi"
        )

    @property
    def offers(self) -> pl.LazyFrame:
        return self.club.offers.join(
            self.campaigns.select("campaign_id"), on="campaign_id", how="semi"
        )

    @property
    def offer_products(self) -> pl.LazyFrame:
        return self.club.offer_products.join(
            self.offers.select("offer_id"), on="offer_id", how="semi"
        )

    @property
    def products(self) -> pl.LazyFrame:
        return self.club.products

    @property
    def members(self) -> pl.LazyFrame:
        """Members who had joined (or, join date unknown, had shopped) before ``as_of``."""
        shoppers = (
            self.transactions.select("member_id").unique().with_columns(_shopped=pl.lit(True))
        )
        joined = pl.col("joined_at") < self.as_of
        unknown_join_but_shopped = pl.col("joined_at").is_null() & pl.col("_shopped").is_not_null()
        return (
            self.club.members.join(shoppers, on="member_id", how="left")
            .filter(joined | unknown_join_but_shopped)
            .drop("_shopped")
        )


def training_cuts(
    history: History, *, every_days: int, count: int, max_members: int, rng: np.random.Generator
) -> Iterator[tuple[History, np.ndarray]]:
    """Earlier cuts of ``history`` to learn from, with the (sampled, sorted) members to use.

    Cut k is ``as_of - k * every_days``; a label window of ``every_days`` after it still ends
    by ``as_of``. Members are those with receipts before the cut, sampled down to
    ``max_members`` deterministically for the generator's seed.
    """
    for k in range(1, count + 1):
        past = History(history.club, history.as_of - timedelta(days=k * every_days))
        members = past.transactions.select("member_id").unique().collect()["member_id"]
        ids = np.sort(members.to_numpy())  # sorted first: the sample must not depend on hashing
        if len(ids) == 0:
            continue
        if len(ids) > max_members:
            ids = np.sort(rng.choice(ids, max_members, replace=False))
        yield past, ids
