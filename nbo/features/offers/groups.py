"""The member's baskets and spend in the product groups of an offer's products.

An offer's products fall in groups (:data:`GROUPS`): the category, the subcategory and the
maker's products in the category. :func:`group_counts` computes a member's baskets and spend in
them by polars joins over a whole club; :func:`group_counts_eager` the same numbers for one
batch chunk's receipt lines in memory, by sorting instead of hashing.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from nbo.features.offers.columns import KEYS

__all__ = ["GROUPS", "group_counts", "group_counts_eager"]

# Product groups an offer's products fall in: the category, the subcategory and the maker's
# products in the category (what a manufacturer coupon usually targets).
GROUPS: tuple[tuple[list[str], str], ...] = (
    (["category"], "cat"),
    (["category", "subcategory"], "sub"),
    (["category", "manufacturer_id"], "maker"),
)


def group_counts(
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
        .group_by(KEYS)
        .agg(
            pl.col("baskets").sum().alias(f"mo_{prefix}_baskets"),
            pl.col("sales_value").sum().alias(f"mo_{prefix}_spend"),
        )
    )


def _group_codes(
    offer_products: pl.DataFrame, products: pl.DataFrame
) -> tuple[pl.DataFrame, list[tuple[str, pl.DataFrame, int]]]:
    """Dense codes of the offered product groups of each of :data:`GROUPS`.

    Returns product_id with one nullable code column per group kind (``_g_cat`` …), and per
    kind its prefix, the (offer_id, code) rows and the number of codes.
    """
    codes = products.select("product_id")
    kinds = []
    for keys, prefix in GROUPS:
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


def group_counts_eager(
    pairs: pl.DataFrame,
    lines: pl.DataFrame,
    offer_products: pl.DataFrame,
    products: pl.DataFrame,
) -> pl.DataFrame:
    """:func:`group_counts` of every group kind at once, for receipt ``lines`` in memory.

    The same numbers by sorting instead of hashing: the distinct (basket, group) rows of the
    lines, then per (member, group) their count and spend, then per pair the sum over the
    offer's groups. ``mo_{kind}_baskets`` / ``mo_{kind}_spend`` are null where the member has
    none of the offer's groups, as with the joins.
    """
    codes, kinds = _group_codes(offer_products, products)
    coded = lines.join(codes, on="product_id", how="left")
    distinct = pairs.select(KEYS).unique(maintain_order=True)
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
