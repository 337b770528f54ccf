"""Point-in-time features of (member, offer) pairs for the offer response model.

Three groups, all read through a :class:`~nbo.features.history.History` (so nothing at or after
``as_of`` is seen), plus the offer's definition:

* ``m_*``  the member: shopping in the last 8/26 weeks, coupon use on receipts, past audiences
  and redemptions;
* ``mo_*`` the member and this offer: purchases of the offer's products and categories, coupon
  use on them, earlier redemptions of the same coupon or of offers sharing its products;
* ``o_*``  the offer: its campaign's length and size, its product count and the products'
  recent popularity and coupon use in the whole club.

The offer's definition (campaign, type, dates, products) is read from the full club tables: an
offer being scored usually belongs to a campaign that has not started yet, and its definition is
an input, not history. A member with no history gets zeros for every ``m_*`` and ``mo_*`` feature
(recencies are encoded as ``1 / (1 + weeks since)``, so zero means "never").

Every function returns a LazyFrame; joins are against the pairs, never a loop per pair. A batch
scorer passes ``receipts`` (one chunk of members' receipt lines from ``history.transactions``,
read once) and a club-wide :func:`offer_table` (computed once per run), so a chunk's features
cost a pass over its own members' lines, not over the club's.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl

from nbo.data.io import ClubData
from nbo.features.history import History

__all__ = [
    "FEATURES",
    "MEMBER_FEATURES",
    "OFFER_FEATURES",
    "PAIR_FEATURES",
    "member_features",
    "offer_definitions",
    "offer_features",
    "offer_table",
    "pair_features",
    "response_features",
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

_KEYS = ["member_id", "offer_id"]


def _weeks_before(history: History, weeks: int) -> pl.Expr:
    return pl.col("ts") >= history.as_of - timedelta(weeks=weeks)


def _recency(history: History, last: str) -> pl.Expr:
    """``1 / (1 + weeks since last)``: 1 just before ``as_of``, 0 for never."""
    weeks = (pl.lit(history.as_of) - pl.col(last)).dt.total_seconds() / (7 * 86_400)
    return (1.0 / (1.0 + weeks)).fill_null(0.0)


def _ratio(numerator: str, denominator: str) -> pl.Expr:
    """``numerator / denominator``, 0 where the denominator is 0 or missing."""
    den = pl.col(denominator).cast(pl.Float64)
    return pl.when(den > 0).then(pl.col(numerator) / den).otherwise(0.0)


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


def _receipts(history: History, receipts: pl.LazyFrame | None) -> pl.LazyFrame:
    """The receipt lines to read: ``history.transactions`` or a subset of it read before."""
    return history.transactions if receipts is None else receipts


def member_features(
    history: History, members: pl.LazyFrame, receipts: pl.LazyFrame | None = None
) -> pl.LazyFrame:
    """``m_*`` features of ``members`` (member_id) as of ``history.as_of``; zeros for no history.

    ``receipts``, if given, must hold every line of ``history.transactions`` of these members.
    """
    receipts = _receipts(history, receipts).join(members, on="member_id", how="semi")
    recent, half_year = _weeks_before(history, 8), _weeks_before(history, 26)
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
            _weeks_before(history, 8).sum().alias("m_redemptions_8w"),
            pl.col("campaign_id").n_unique().alias("m_campaigns_redeemed"),
        )
    )
    n_campaigns = history.campaigns.select(pl.len().alias("n_campaigns"))
    counts = [c for c in MEMBER_FEATURES if c not in _MEMBER_DERIVED] + [
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
            _recency(history, "m_last_ts").alias("m_recency"),
            _ratio("m_coupon_lines", "m_lines").alias("m_coupon_share"),
            _ratio("m_campaigns", "n_campaigns").alias("m_audience_share"),
            _ratio("m_redemptions", "m_offers_received").alias("m_redeem_rate"),
            _ratio("m_campaigns_redeemed", "m_campaigns").alias("m_campaign_redeem_rate"),
        )
        .select("member_id", *MEMBER_FEATURES, "m_lines", "m_baskets", "m_spend")
    )


_MEMBER_DERIVED = frozenset(
    {"m_recency", "m_coupon_share", "m_audience_share", "m_redeem_rate", "m_campaign_redeem_rate"}
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
    of members), the group counts are computed on arrays in memory (:func:`_group_counts_eager`,
    the same numbers) instead of by polars joins.
    """
    club = history.club
    in_memory = receipts is not None
    offer_products = club.offer_products.join(pairs.select("offer_id"), on="offer_id", how="semi")
    receipts = _receipts(history, receipts).join(
        pairs.select("member_id"), on="member_id", how="semi"
    )
    on_products = (
        receipts.select("member_id", "basket_id", "product_id", "ts", "sales_value", "coupon_disc")
        .join(offer_products, on="product_id")
        .join(pairs, on=_KEYS, how="semi")
        .group_by(_KEYS)
        .agg(
            pl.col("basket_id").n_unique().alias("mo_baskets"),
            pl.col("basket_id").filter(_weeks_before(history, 8)).n_unique().alias("mo_baskets_8w"),
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
            _group_counts_eager(
                pairs.collect(), lines, offer_products.collect(), club.products.collect()
            ).lazy()
        ]
    else:
        groups = [
            _group_counts(pairs, receipts, offer_products, club.products, keys, prefix)
            for keys, prefix in _GROUPS
        ]
    features = pairs.join(on_products, on=_KEYS, how="left")
    for group in groups:
        features = features.join(group, on=_KEYS, how="left")
    return features.join(_redeemed_before(history, pairs), on=_KEYS, how="left")


# Product groups an offer's products fall in: the category, the subcategory and the maker's
# products in the category (what a manufacturer coupon usually targets).
_GROUPS: tuple[tuple[list[str], str], ...] = (
    (["category"], "cat"),
    (["category", "subcategory"], "sub"),
    (["category", "manufacturer_id"], "maker"),
)


def _group_counts(
    pairs: pl.LazyFrame,
    receipts: pl.LazyFrame,
    offer_products: pl.LazyFrame,
    products: pl.LazyFrame,
    keys: list[str],
    prefix: str,
) -> pl.LazyFrame:
    """The member's baskets and spend in the product groups (``keys``) of the offer's products.

    Baskets are summed over the offer's groups (a basket with two of them counts twice).
    Rows = pairs × groups per offer; a group with a null key matches nothing.
    """
    product_groups = products.select("product_id", *keys).drop_nulls()
    offer_groups = (
        offer_products.join(product_groups, on="product_id").select("offer_id", *keys).unique()
    )
    product_groups = product_groups.join(offer_groups, on=keys, how="semi")  # only groups offered
    # One struct key for (member, group): with separate keys polars' join reordering would
    # join the pairs to every group of the member first (pairs × member groups rows).
    member_group = pl.struct("member_id", *keys).alias("_member_group")
    member_groups = (
        receipts.join(product_groups, on="product_id")
        .group_by("member_id", *keys)
        .agg(pl.col("basket_id").n_unique().alias("baskets"), pl.col("sales_value").sum())
        .select(member_group, "baskets", "sales_value")
    )
    return (
        pairs.join(offer_groups, on="offer_id")
        .with_columns(member_group)
        .join(member_groups, on="_member_group")
        .group_by(_KEYS)
        .agg(
            pl.col("baskets").sum().alias(f"mo_{prefix}_baskets"),
            pl.col("sales_value").sum().alias(f"mo_{prefix}_spend"),
        )
    )


def _group_codes(
    offer_products: pl.DataFrame, products: pl.DataFrame
) -> tuple[pl.DataFrame, list[tuple[str, pl.DataFrame, int]]]:
    """Dense codes of the offered product groups of each of :data:`_GROUPS`.

    Returns product_id with one nullable code column per group kind (``_g_cat`` …), and per
    kind its prefix, the (offer_id, code) rows and the number of codes.
    """
    codes = products.select("product_id")
    kinds = []
    for keys, prefix in _GROUPS:
        product_groups = products.select("product_id", *keys).drop_nulls()
        offer_groups = (
            offer_products.join(product_groups, on="product_id").select("offer_id", *keys).unique()
        )
        groups = offer_groups.select(keys).unique().sort(keys).with_row_index("_g")
        column = f"_g_{prefix}"
        coded = product_groups.join(groups, on=keys).select(
            "product_id", pl.col("_g").alias(column)
        )
        codes = codes.join(coded, on="product_id", how="left")
        pairs = offer_groups.join(groups, on=keys).select("offer_id", "_g")
        kinds.append((prefix, pairs, groups.height))
    return codes, kinds


def _sorted_groups(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sort order of ``key`` and the first position of each distinct key in it."""
    order = np.argsort(key, kind="stable")  # near-sorted keys (receipts by basket) sort fast
    ordered = key[order]
    first = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]) if key.size else order
    return order, first


_KEY_LIMIT = 2**40  # ids below it times group codes (< 2**20 of them) fit in an int64


def _combined(major: np.ndarray, minor: np.ndarray, n_minor: int) -> np.ndarray:
    """One int64 key per (major, minor) pair, ``minor`` in ``0..n_minor-1``."""
    if n_minor >= 2**20 or (major.size and (major.min() < 0 or major.max() >= _KEY_LIMIT)):
        raise ValueError("ids too large to combine; dense-code them first")
    key: np.ndarray = major.astype(np.int64) * n_minor + minor
    return key


def _basket_codes(ids: np.ndarray) -> np.ndarray:
    """Basket ids as they are, or dense codes if out of range (slower, never seen yet)."""
    if ids.size and (ids.min() < 0 or ids.max() >= _KEY_LIMIT):
        return np.unique(ids, return_inverse=True)[1].reshape(-1).astype(np.int64)
    return ids


def _member_codes(ids: np.ndarray, members: np.ndarray) -> np.ndarray:
    """Member ids as they are, or their index in sorted ``members`` if ids are out of range."""
    if members.size and (members[0] < 0 or members[-1] >= _KEY_LIMIT):
        return np.searchsorted(members, ids).astype(np.int64)
    return ids


def _group_counts_eager(
    pairs: pl.DataFrame,
    lines: pl.DataFrame,
    offer_products: pl.DataFrame,
    products: pl.DataFrame,
) -> pl.DataFrame:
    """:func:`_group_counts` of every group kind at once, for receipt ``lines`` in memory.

    The same numbers by sorting instead of hashing: the distinct (basket, group) rows of the
    lines, then per (member, group) their count and spend, then per pair the sum over the
    offer's groups. ``mo_{kind}_baskets`` / ``mo_{kind}_spend`` are null where the member has
    none of the offer's groups, as with the joins.
    """
    codes, kinds = _group_codes(offer_products, products)
    coded = lines.join(codes, on="product_id", how="left")
    distinct = pairs.select(_KEYS).unique(maintain_order=True)
    members = np.unique(distinct["member_id"].to_numpy())
    columns: dict[str, pl.Series] = {}
    for prefix, offer_groups, n_groups in kinds:
        # the lines in one of the offered groups (a filter, not NumPy on a nullable column,
        # which would go through floats)
        mine = coded.filter(pl.col(f"_g_{prefix}").is_not_null())
        group = mine[f"_g_{prefix}"].to_numpy().astype(np.int64)
        n = max(n_groups, 1)
        basket = mine["basket_id"].to_numpy()
        member = mine["member_id"].to_numpy()
        spend = mine["sales_value"].to_numpy()
        order, first = _sorted_groups(_combined(_basket_codes(basket), group, n))
        basket_spend = np.add.reduceat(spend[order], first) if first.size else spend[:0]
        key = _combined(_member_codes(member[order][first], members), group[order][first], n)
        order2, first2 = _sorted_groups(key)
        known = key[order2][first2]
        baskets = np.diff(np.r_[first2, key.size]).astype(np.float64)
        spends = np.add.reduceat(basket_spend[order2], first2) if first2.size else spend[:0]
        wanted = distinct.with_row_index("_pair").join(offer_groups, on="offer_id")
        pair_members = _member_codes(wanted["member_id"].to_numpy(), members)
        pair_key = _combined(pair_members, wanted["_g"].to_numpy().astype(np.int64), n)
        pos = np.searchsorted(known, pair_key)
        hit = pos < known.size
        hit[hit] = known[pos[hit]] == pair_key[hit]
        owner = wanted["_pair"].to_numpy()[hit]
        size = distinct.height
        found = np.bincount(owner, minlength=size) > 0
        for name, values in (("baskets", baskets), ("spend", spends)):
            total = np.bincount(owner, weights=values[pos[hit]], minlength=size)
            columns[f"mo_{prefix}_{name}"] = pl.Series(np.where(found, total, np.nan)).fill_nan(
                None
            )
    return distinct.with_columns(**columns)


def _redeemed_before(history: History, pairs: pl.LazyFrame) -> pl.LazyFrame:
    """Earlier redemptions by the member of the same coupon code, or of offers sharing products."""
    club = history.club
    redeemed = history.redemptions.join(pairs.select("member_id"), on="member_id", how="semi")
    codes = club.offers.select("offer_id", "coupon_code")
    same_code = (
        redeemed.join(codes, on="offer_id")
        .drop("offer_id")
        .join(codes.join(pairs.select("offer_id"), on="offer_id", how="semi"), on="coupon_code")
        .join(pairs, on=_KEYS, how="semi")
        .group_by(_KEYS)
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
        .join(pairs, on=_KEYS, how="semi")
        .group_by(_KEYS)
        .agg(pl.len().alias("mo_related_redeemed"))
    )
    return same_code.join(shared_products, on=_KEYS, how="full", coalesce=True)


def offer_features(history: History, offers: pl.LazyFrame) -> pl.LazyFrame:
    """``o_*`` point-in-time popularity of ``offers`` (offer_id) in the whole club.

    ``o_reach_8w``: receipt lines of the offer's products per basket in the last 8 weeks;
    ``o_coupon_lines_8w``: coupon lines on them per basket; ``o_code_redemptions``: earlier
    redemptions of the same coupon code (by anyone).
    """
    club = history.club
    recent = history.transactions.filter(_weeks_before(history, 8))
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
            _ratio("lines", "n_baskets").alias("o_reach_8w"),
            _ratio("coupon_lines", "n_baskets").alias("o_coupon_lines_8w"),
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
        .select("offer_id", *[f for f in OFFER_FEATURES if f not in _DEFINED])
        .fill_null(0.0)
    )


def _by_campaign_type(history: History, pairs: pl.LazyFrame) -> pl.LazyFrame:
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


def offer_table(history: History, offers: pl.LazyFrame) -> pl.LazyFrame:
    """offer_id, campaign_type and every ``o_*`` feature of ``offers`` (offer_id) as of ``history``.

    The offers' part of :func:`response_features`, to compute once for many chunks of pairs.
    """
    definitions = offer_definitions(history.club).select(
        "offer_id", "campaign_type", *[f for f in OFFER_FEATURES if f in _DEFINED]
    )
    return (
        offers.select("offer_id")
        .unique()
        .join(definitions, on="offer_id", how="left")
        .join(offer_features(history, offers.select("offer_id")), on="offer_id", how="left")
    )


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
    distinct = indexed.select(_KEYS).unique()
    if offers is None:
        offers = offer_table(history, distinct.select("offer_id"))
    pair_counts = [f for f in PAIR_FEATURES if f not in _PAIR_DERIVED]
    return (
        indexed.join(
            member_features(history, distinct.select("member_id"), receipts),
            on="member_id",
            how="left",
        )
        .join(pair_features(history, distinct, receipts), on=_KEYS, how="left")
        .join(offers, on="offer_id", how="left")
        .join(_by_campaign_type(history, distinct), on=["member_id", "campaign_type"], how="left")
        .with_columns(
            pl.col(
                *MEMBER_FEATURES,
                "m_lines",
                "m_baskets",
                "m_spend",
                *pair_counts,
                *_GROUP_SPEND,
                "mo_type_redemptions",
                "mo_type_offers",
            )
            .cast(pl.Float64)
            .fill_null(0.0)
        )
        .with_columns(
            _recency(history, "mo_last_ts").alias("mo_recency"),
            _ratio("mo_baskets", "m_baskets").alias("mo_basket_share"),
            _ratio("mo_products", "o_products").alias("mo_product_coverage"),
            _ratio("mo_spend", "m_spend").alias("mo_spend_share"),
            _ratio("mo_type_redemptions", "mo_type_offers").alias("mo_type_redeem_rate"),
            *(
                _ratio(f"mo_{g}_spend", "m_spend").alias(f"mo_{g}_spend_share")
                for g in ("cat", "sub", "maker")
            ),
        )
        .sort("_row")
        .drop(
            "_row", "m_lines", "m_baskets", "m_spend", "mo_last_ts", "mo_type_offers", *_GROUP_SPEND
        )
        .select(pl.all().exclude(FEATURES), *FEATURES)
    )


_DEFINED = frozenset({"o_campaign_days", "o_campaign_offers", "o_products", "o_discount_value"})
_PAIR_DERIVED = frozenset(
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
_GROUP_SPEND = ("mo_cat_spend", "mo_sub_spend", "mo_maker_spend")
