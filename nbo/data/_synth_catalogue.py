"""The club-wide part of a synthetic club: product catalogue, stores, campaigns and offers.

Everything here is drawn once per seed (not per member chunk) and shipped to every chunk as a
:class:`Catalogue` of NumPy arrays, so chunks only need the catalogue and their own RNG stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from nbo.data._synth_taxonomy import CAMPAIGN_TYPES, PACKS, SYLLABLES, TAXONOMY, VARIANTS
from nbo.data.contract import TABLES

__all__ = ["DAY_S", "PRODUCT_ID_BASE", "Catalogue", "build_catalogue"]

DAY_S = 86_400
PROMO_SHARE = 0.08  # share of (product, week) pairs on loyalty-price promotion
PRODUCT_ID_BASE = 100_000


@dataclass(frozen=True)
class Catalogue:
    """Club-wide arrays every member chunk draws from (product indices are 0..P-1)."""

    start_day: int  # days from 1970-01-01 to the first day of the period
    start_weekday: int  # Monday = 0
    weeks: int
    category: NDArray[np.int64]  # per product
    price: NDArray[np.float64]  # per unit, or per kg for products sold by weight
    by_weight: NDArray[np.bool_]
    pack_kg: NDArray[np.float64]  # typical weight of one pick of a product sold by weight
    cycle_days: NDArray[np.float64]  # typical repurchase cycle of a staple
    promo_salt: int  # promotions are a hash of (product, week, salt), not a products x weeks table
    promo_depth: NDArray[np.float64]
    product_cdf: NDArray[np.float64]  # Zipf-like popularity over all products
    staple_cdf: NDArray[np.float64]  # popularity over products that can be staples
    category_cdf: NDArray[np.float64]  # category index + within-category popularity
    favourite_cdf: NDArray[np.float64]  # over categories, for members' favourite categories
    store_cdf: NDArray[np.float64]
    store_matches: NDArray[np.bool_]  # store matches manufacturer coupons
    campaign_start_s: NDArray[np.int64]  # seconds from period start, window [start, end)
    campaign_end_s: NDArray[np.int64]
    campaign_share: NDArray[np.float64]
    campaign_offers: NDArray[np.int64]  # offers of campaign c: campaign_offers[c]..[c + 1]
    offer_category: NDArray[np.int64]
    offer_discount: NDArray[np.float64]
    offer_products: NDArray[np.int64]  # products of offer o: offer_ptr[o]..offer_ptr[o + 1]
    offer_ptr: NDArray[np.int64]
    campaign_ids: tuple[str, ...]
    offer_ids: tuple[str, ...]
    # amplitude of a yearly cycle in visit rates, peaking before Christmas (0: none, the default)
    seasonality: float = 0.0

    @property
    def period_days(self) -> int:
        return self.weeks * 7

    @property
    def n_products(self) -> int:
        return int(self.category.size)

    def on_promo(self, product: NDArray[np.int64], week: NDArray[np.int64]) -> NDArray[np.bool_]:
        """Whether ``product`` is on loyalty-price promotion in ``week`` (PROMO_SHARE of pairs)."""
        # splitmix64 of the (product, week) pair: uniform bits, the same in every chunk
        z = (
            product.astype(np.uint64) * np.uint64(self.weeks) + week.astype(np.uint64)
        ) ^ np.uint64(self.promo_salt)
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return np.asarray((z ^ (z >> np.uint64(31))) < np.uint64(PROMO_SHARE * 2.0**64))


@dataclass(frozen=True)
class _Assortment:
    """Per-product arrays the campaign and catalogue builders share."""

    category: NDArray[np.int64]
    brand: NDArray[np.int64]
    popularity: NDArray[np.float64]
    within: NDArray[np.float64]  # cumulative popularity within the product's category, to 1.0
    price: NDArray[np.float64]
    by_weight: NDArray[np.bool_]
    cycle_days: NDArray[np.float64]


def _cdf(weights: NDArray[Any]) -> NDArray[np.float64]:
    """Cumulative distribution over ``weights``, ending at exactly 1.0 (for searchsorted)."""
    cdf = np.cumsum(weights, dtype=np.float64)
    cdf /= cdf[-1]
    cdf[-1] = 1.0
    return cdf


def _products(rng: np.random.Generator, n: int) -> tuple[pl.DataFrame, _Assortment]:
    """The product catalogue: a category tree with brands, Zipf-like popularity within it."""
    n_cat = len(TAXONOMY)
    share = np.array([t[5] for t in TAXONOMY])
    share /= share.sum()
    first = np.arange(n_cat) if n >= n_cat else rng.choice(n_cat, n, replace=False, p=share)
    category = np.sort(np.concatenate([first, rng.choice(n_cat, n - first.size, p=share)]))
    size = np.bincount(category, minlength=n_cat)
    offset = np.concatenate([[0], np.cumsum(size)])
    # a random rank within the category, so the popular products are not simply the first ids
    order = np.lexsort((rng.random(n), category))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - offset[category[order]]
    zipf = (rank + 1.0) ** -1.1
    zipf_total = np.bincount(category, weights=zipf, minlength=n_cat)
    cum = np.cumsum(zipf)
    before = np.concatenate([[0.0], cum])[offset[category]]
    within = (cum - before) / zipf_total[category]
    within[offset[1:][size > 0] - 1] = 1.0
    n_sub = np.clip(size // 20 + 1, 1, len(VARIANTS))[category]
    subcategory = np.minimum((rng.random(n) ** 2 * n_sub).astype(np.int64), n_sub - 1)
    n_brand = np.clip(size // 6 + 1, 1, 30)
    brand_offset = np.concatenate([[0], np.cumsum(n_brand)])
    brand = brand_offset[category] + np.minimum(
        (rng.random(n) ** 1.5 * n_brand[category]).astype(np.int64), n_brand[category] - 1
    )
    own_label = brand == brand_offset[category]  # brand 0 of every category: the club's own
    syllables = rng.integers(0, len(SYLLABLES), size=(int(brand_offset[-1]), 3))
    brand_names = [
        "".join(SYLLABLES[s] for s in row[: 2 + i % 2]).upper()
        for i, row in enumerate(syllables.tolist())
    ]
    for i in brand_offset[:-1].tolist():
        brand_names[i] = "CLUB SELECTION"
    by_weight = np.array([t[3] == "kg" for t in TAXONOMY])[category]
    median = np.array([t[4] for t in TAXONOMY])[category]
    price = median * np.exp(rng.normal(0.0, 0.35, n)) * np.where(own_label, 0.8, 1.0)
    price = np.maximum(np.round(price, 1) - 0.01, 0.29)
    pack = np.where(by_weight, len(PACKS), rng.integers(0, len(PACKS), n))
    sub_names = [f"{v} {t[1]}" for t in TAXONOMY for v in VARIANTS]
    frame = pl.DataFrame(
        {
            "product_id": PRODUCT_ID_BASE + np.arange(n, dtype=np.int64),
            "department": pl.Series([t[0] for t in TAXONOMY]).gather(category),
            "category": pl.Series([t[1] for t in TAXONOMY]).gather(category),
            "subcategory": pl.Series(sub_names).gather(category * len(VARIANTS) + subcategory),
            "brand": pl.Series(brand_names, dtype=pl.String).gather(brand),
            "manufacturer_id": np.where(own_label, 1, 100 + brand).astype(np.int64),
            "package_size": pl.Series([*PACKS, "PER KG"]).gather(pack),
        },
        schema=TABLES["products"].schema,
    )
    assortment = _Assortment(
        category=category.astype(np.int64),
        brand=brand.astype(np.int64),
        popularity=share[category] * zipf / zipf_total[category],
        within=within,
        price=price,
        by_weight=by_weight,
        cycle_days=np.array([t[2] for t in TAXONOMY], dtype=np.float64)[category],
    )
    return frame, assortment


@dataclass(frozen=True)
class _Campaigns:
    tables: dict[str, pl.DataFrame]
    first_day: NDArray[np.int64]
    duration: NDArray[np.int64]
    share: NDArray[np.float64]
    offer_ptr_by_campaign: NDArray[np.int64]
    anchor: NDArray[np.int64]
    discount: NDArray[np.float64]
    offer_products: NDArray[np.int64]
    offer_ptr: NDArray[np.int64]
    campaign_ids: tuple[str, ...]
    offer_ids: tuple[str, ...]


def _campaigns(
    rng: np.random.Generator,
    start: date,
    weeks: int,
    products: pl.DataFrame,
    shop: _Assortment,
    offers: tuple[int, int] | None,
) -> _Campaigns:
    """Campaigns spread over the period, each with a few coupons over related products (or
    ``offers`` (lowest, highest) coupons each, where given)."""
    period_days = weeks * 7
    n_campaigns = max(1, round(weeks / 4))
    types = list(CAMPAIGN_TYPES)
    kind = rng.choice(len(types), n_campaigns, p=[0.4, 0.35, 0.25])
    spec = [CAMPAIGN_TYPES[types[k]] for k in kind]
    duration = np.minimum([rng.integers(lo, hi + 1) for _, _, (lo, hi) in spec], period_days)
    n_offers = np.array(
        [rng.integers(*(offers or (lo, hi)), endpoint=True) for _, (lo, hi), _ in spec],
        dtype=np.int64,
    )
    first_day = (rng.random(n_campaigns) * (period_days - duration + 1)).astype(np.int64)
    if offers is not None:  # experiments: one after another, so no offer affects another's
        slot = max(period_days // n_campaigns, 1)
        first_day = np.minimum(np.arange(n_campaigns) * slot, period_days - 1)
        duration = np.minimum(duration, np.minimum(slot, period_days - first_day))
        n_offers = np.minimum(n_offers, max(shop.category.size // 4, 1))
    by_start = np.argsort(first_day, kind="stable")  # campaign ids in order of launch
    kind, duration, n_offers, first_day = (
        a[by_start] for a in (kind, duration, n_offers, first_day)
    )
    spec = [spec[c] for c in by_start]
    campaign_ids = tuple(f"C{c + 1:03d}" for c in range(n_campaigns))
    offer_campaign = np.repeat(np.arange(n_campaigns), n_offers)
    offer_ids = tuple(
        f"{campaign_ids[c]}-{j + 1:02d}" for c in range(n_campaigns) for j in range(n_offers[c])
    )
    # a coupon covers its anchor product and up to four more popular ones of the same brand
    anchor = np.minimum(
        np.searchsorted(_cdf(shop.popularity), rng.random(offer_campaign.size), side="right"),
        shop.category.size - 1,
    )
    if offers is not None:  # an experiment's offers share no product: effects stay apart
        weight = shop.popularity / shop.popularity.sum()
        anchor = np.concatenate(
            [rng.choice(shop.category.size, k, replace=False, p=weight) for k in n_offers.tolist()]
        ).astype(np.int64)
    by_brand = np.lexsort((-shop.popularity, shop.brand))
    brand_start = np.searchsorted(shop.brand[by_brand], shop.brand[anchor], side="left")
    brand_end = np.searchsorted(shop.brand[by_brand], shop.brand[anchor], side="right")
    width = np.minimum(rng.integers(1, 6, anchor.size), brand_end - brand_start)
    offer_lists = [  # one small array per offer: a few hundred offers at most per period
        np.unique(np.concatenate([[a], by_brand[s : s + w]]))
        for a, s, w in zip(anchor.tolist(), brand_start.tolist(), width.tolist(), strict=True)
    ]
    if offers is not None:
        offer_lists = _disjoint(offer_lists, anchor, offer_campaign)
    offer_ptr = np.concatenate([[0], np.cumsum([p.size for p in offer_lists])]).astype(np.int64)
    offer_products = np.concatenate(offer_lists).astype(np.int64)
    face = shop.price[anchor] * np.where(shop.by_weight[anchor], 0.5, 1.0)
    discount = np.clip(np.round(face * rng.uniform(0.15, 0.4, anchor.size) * 4) / 4, 0.25, 5.0)
    start_dates = [start + timedelta(days=int(d)) for d in first_day]
    anchor_names = (
        products.select(
            pl.concat_str(pl.col("brand"), pl.col("category").str.to_lowercase(), separator=" ")
        )
        .to_series()
        .gather(anchor)
    )
    offer_series = pl.Series(offer_ids, dtype=pl.String)
    tables = {
        "campaigns": pl.DataFrame(
            {
                "campaign_id": campaign_ids,
                "campaign_type": [types[k] for k in kind],
                "start_date": start_dates,
                "end_date": [
                    s + timedelta(days=int(d) - 1)
                    for s, d in zip(start_dates, duration, strict=True)
                ],
                "targeted": [True] * n_campaigns,
                "name": [
                    f"{types[k].capitalize()} coupons, week {d // 7 + 1}"
                    for k, d in zip(kind, first_day.tolist(), strict=True)
                ],
            },
            schema=TABLES["campaigns"].schema,
        ),
        "offers": pl.DataFrame(
            {
                "offer_id": offer_series,
                "campaign_id": pl.Series(campaign_ids, dtype=pl.String).gather(offer_campaign),
                "coupon_code": [f"5{c:010d}" for c in rng.integers(0, 10**10, anchor.size)],
                "discount_value": discount,
                "description": [
                    f"{d:.2f} off {name}"
                    for d, name in zip(discount.tolist(), anchor_names.to_list(), strict=True)
                ],
            },
            schema=TABLES["offers"].schema,
        ),
        "offer_products": pl.DataFrame(
            {
                "offer_id": offer_series.gather(
                    np.repeat(np.arange(anchor.size), np.diff(offer_ptr))
                ),
                "product_id": PRODUCT_ID_BASE + offer_products,
            },
            schema=TABLES["offer_products"].schema,
        ),
    }
    return _Campaigns(
        tables=tables,
        first_day=first_day,
        duration=duration.astype(np.int64),
        share=np.array([s[0] for s in spec], dtype=np.float64),
        offer_ptr_by_campaign=np.concatenate([[0], np.cumsum(n_offers)]).astype(np.int64),
        anchor=anchor.astype(np.int64),
        discount=discount,
        offer_products=offer_products,
        offer_ptr=offer_ptr,
        campaign_ids=campaign_ids,
        offer_ids=offer_ids,
    )


def _disjoint(
    offer_lists: list[NDArray[np.int64]], anchor: NDArray[np.int64], campaign: NDArray[np.int64]
) -> list[NDArray[np.int64]]:
    """The offers' products with every product in at most one offer of a campaign (an offer
    keeps its anchor, which is unique in the campaign, and the siblings no earlier offer took)."""
    taken: dict[int, set[int]] = {}
    lists = []
    for products, a, c in zip(offer_lists, anchor.tolist(), campaign.tolist(), strict=True):
        used = taken.setdefault(c, set(anchor[campaign == c].tolist()))
        siblings = [p for p in products.tolist() if p != a and p not in used]
        used.update(siblings)
        lists.append(np.array(sorted([a, *siblings]), dtype=np.int64))
    return lists


def build_catalogue(
    seed: int,
    *,
    members: int,
    products: int,
    weeks: int,
    start: date,
    offers_per_campaign: tuple[int, int] | None = None,
) -> tuple[Catalogue, dict[str, pl.DataFrame]]:
    """The club-wide arrays for the chunks and the club-wide tables to write once.

    ``offers_per_campaign`` (lowest, highest) overrides the campaign types' own few offers.
    """
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    product_table, shop = _products(rng, products)
    campaigns = _campaigns(rng, start, weeks, product_table, shop, offers_per_campaign)
    n_stores = int(np.clip(round(members / 2500), 1, 400))
    staple_weight = np.where(shop.cycle_days > 0, shop.popularity, 0.0)
    n_cat = len(TAXONOMY)
    category_weight = np.bincount(shop.category, weights=shop.popularity, minlength=n_cat)
    catalogue = Catalogue(
        start_day=(start - date(1970, 1, 1)).days,
        start_weekday=start.weekday(),
        weeks=weeks,
        category=shop.category,
        price=shop.price,
        by_weight=shop.by_weight,
        pack_kg=np.round(rng.uniform(0.25, 1.2, products), 2),
        # a product that is never a staple still gets a cycle, for tiny catalogues without any
        cycle_days=np.where(shop.cycle_days > 0, shop.cycle_days, 28.0),
        promo_salt=int(rng.integers(0, 2**63)),
        promo_depth=np.round(rng.uniform(0.1, 0.35, products), 2),
        product_cdf=_cdf(shop.popularity),
        staple_cdf=_cdf(staple_weight if staple_weight.sum() > 0 else shop.popularity),
        category_cdf=shop.category + shop.within,
        favourite_cdf=_cdf(category_weight),
        store_cdf=_cdf((rng.permutation(n_stores) + 1.0) ** -0.8),
        store_matches=rng.random(n_stores) < 0.35,
        campaign_start_s=campaigns.first_day * DAY_S,
        campaign_end_s=(campaigns.first_day + campaigns.duration) * DAY_S,
        campaign_share=campaigns.share,
        campaign_offers=campaigns.offer_ptr_by_campaign,
        offer_category=shop.category[campaigns.anchor],
        offer_discount=campaigns.discount,
        offer_products=campaigns.offer_products,
        offer_ptr=campaigns.offer_ptr,
        campaign_ids=campaigns.campaign_ids,
        offer_ids=campaigns.offer_ids,
    )
    return catalogue, {"products": product_table, **campaigns.tables}
