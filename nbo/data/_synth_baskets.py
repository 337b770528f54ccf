"""What the members of one chunk buy: staples, impulse lines, coupons, and the receipt lines.

A line is first a (visit, product, units, coupon value) tuple; lines of the same product in the
same basket are merged, then priced. All of it is vectorised over the chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import NDArray

from nbo.data._synth_catalogue import DAY_S, PRODUCT_ID_BASE, Catalogue
from nbo.data._synth_members import (
    Members,
    Visits,
    draw_members,
    draw_visits,
    expand,
    micros,
    search,
)
from nbo.data._synth_quantity import draw_quantity
from nbo.data._synth_uplift import Dues, counterfactual_response
from nbo.data.contract import TABLES

__all__ = ["CHUNK_TABLES", "member_chunk"]

CHUNK_TABLES = ("members", "transactions", "campaign_audience", "redemptions")
# without counterfactuals every audience member was treated: ``treated`` is left out (reads true)
AUDIENCE_SCHEMA = pl.Schema(
    {c: t for c, t in TABLES["campaign_audience"].schema.items() if c != "treated"}
)
STAPLES_PER_PERSON = 0.5  # mean staples: 1.5 + this per household member
STAPLE_KEPT = 0.9  # share of due staple purchases that happen (the rest: bought elsewhere)
MAX_UNITS = 4
# redemption probability of a coupon by the member's affinity to its products
P_REDEEM_STAPLE, P_REDEEM_CATEGORY, P_REDEEM_OTHER = 0.30, 0.10, 0.015


@dataclass(frozen=True)
class Lines:
    """Receipt lines before merging: the same product may appear twice in a basket."""

    visit: NDArray[np.int64]
    product: NDArray[np.int64]
    units: NDArray[np.int64]  # 0 for a coupon line: the coupon rides on a unit bought anyway
    coupon: NDArray[np.float64]  # face value of a coupon redeemed on this line

    def keep(self, mask: NDArray[np.bool_]) -> Lines:
        return Lines(self.visit[mask], self.product[mask], self.units[mask], self.coupon[mask])

    @staticmethod
    def concat(parts: list[Lines]) -> Lines:
        return Lines(
            *(
                np.concatenate([getattr(p, f) for p in parts])
                for f in ("visit", "product", "units", "coupon")
            )
        )


@dataclass(frozen=True)
class Staples:
    """Each member's staple products (unique per member), the basis of coupon affinity."""

    member: NDArray[np.int64]
    product: NDArray[np.int64]


def staple_lines(
    rng: np.random.Generator, catalogue: Catalogue, members: Members, visits: Visits
) -> tuple[Staples, Lines, Dues]:
    """Each member's staples, bought at the first visit after they run out, cycle after cycle
    (and every due at its visit, kept or not, for the counterfactual truth)."""
    n_products = catalogue.n_products
    count = np.maximum(rng.poisson(1.5 + STAPLES_PER_PERSON * members.household_size), 1)
    owner, _ = expand(count.astype(np.int64))
    key = np.unique(owner * n_products + search(catalogue.staple_cdf, rng.random(owner.size)))
    staples = Staples(member=key // n_products, product=key % n_products)
    member = staples.member
    cycle = np.maximum(
        catalogue.cycle_days[staples.product]
        * members.pace[member]
        * rng.lognormal(0.0, 0.2, member.size),
        2.0,
    )
    phase = rng.random(member.size) * cycle
    room = members.active_days[member] - phase
    dues = np.where(room > 0, np.ceil(room / cycle), 0).astype(np.int64)
    staple, k = expand(dues)
    member = member[staple]
    due_s = ((members.first_day[member] + phase[staple] + k * cycle[staple]) * DAY_S).astype(
        np.int64
    )
    visit = visits.at_or_after(member, due_s)
    in_period = visit < visits.first[member + 1]
    at_visits = Dues(
        member[in_period], staples.product[staple[in_period]], visit[in_period], STAPLE_KEPT
    )
    kept = in_period & (rng.random(visit.size) < STAPLE_KEPT)
    staple, visit = staple[kept], visit[kept]
    # several dues before one visit (a member who shops rarely) become one line of more units
    new = np.ones(visit.size, dtype=bool)
    new[1:] = (visit[1:] != visit[:-1]) | (staple[1:] != staple[:-1])
    start = np.flatnonzero(new)
    units = np.minimum(np.diff(np.append(start, visit.size)), MAX_UNITS)
    lines = Lines(
        visit=visit[start],
        product=staples.product[staple[start]],
        units=units.astype(np.int64),
        coupon=np.zeros(start.size),
    )
    return staples, lines, at_visits


def impulse_lines(
    rng: np.random.Generator,
    catalogue: Catalogue,
    members: Members,
    visits: Visits,
    staple_visits: NDArray[np.int64],
) -> Lines:
    """Non-staple lines: popular products, or products of the member's favourite categories."""
    owner = visits.member
    count = rng.poisson(members.impulse_lines[owner])
    # a basket has at least one line: a visit without a due staple buys something else
    has_staple = np.bincount(staple_visits, minlength=owner.size) > 0
    count = np.where((count == 0) & ~has_staple, 1, count).astype(np.int64)
    visit, _ = expand(count)
    member = owner[visit]
    pick = rng.integers(0, members.favourite_categories.shape[1], visit.size)
    category = members.favourite_categories[member, pick]
    u = rng.random(visit.size)
    product = np.where(
        rng.random(visit.size) < members.favourite_share[member],
        search(catalogue.category_cdf, category + u),
        search(catalogue.product_cdf, u),
    )
    return Lines(visit, product, np.ones(visit.size, dtype=np.int64), np.zeros(visit.size))


def campaign_response(
    rng: np.random.Generator,
    catalogue: Catalogue,
    members: Members,
    visits: Visits,
    staples: Staples,
) -> tuple[pl.DataFrame, pl.DataFrame, Lines]:
    """Campaign audiences, coupon redemptions and the lines the coupons were redeemed on.

    The chance to redeem a coupon depends on the member's affinity to its products: highest
    when one of them is the member's staple, then when it is in a favourite category.
    """
    n, n_campaigns = members.member_id.size, len(catalogue.campaign_ids)
    n_offers = len(catalogue.offer_ids)
    engagement = np.clip(np.sqrt(members.visit_rate / members.visit_rate.mean()), 0.3, 2.0)
    chance = np.minimum(catalogue.campaign_share[None, :] * engagement[:, None], 0.95)
    # audiences are drawn when a campaign launches, among the members who have joined by then
    eligible = members.join_s[:, None] < catalogue.campaign_start_s[None, :]
    in_audience = (rng.random((n, n_campaigns)) < chance) & eligible
    member, campaign = np.nonzero(in_audience)
    per_campaign = np.diff(catalogue.campaign_offers)[campaign]
    pair, k = expand(per_campaign)
    member, campaign = member[pair], campaign[pair]
    offer = catalogue.campaign_offers[campaign] + k
    # staple affinity: (member, offer) pairs where an offer product is one of the staples
    size = np.diff(catalogue.offer_ptr)
    offer_of_product = np.repeat(np.arange(n_offers), size)
    by_product = np.argsort(catalogue.offer_products, kind="stable")
    sorted_products = catalogue.offer_products[by_product]
    lo = np.searchsorted(sorted_products, staples.product, side="left")
    hits = np.searchsorted(sorted_products, staples.product, side="right") - lo
    staple, j = expand(hits.astype(np.int64))
    hit_key = staples.member[staple] * n_offers + offer_of_product[by_product[lo[staple] + j]]
    hit_key, first_hit = np.unique(hit_key, return_index=True)
    hit_product = staples.product[staple[first_hit]]
    pair_key = member * n_offers + offer
    at = np.minimum(np.searchsorted(hit_key, pair_key), max(hit_key.size - 1, 0))
    is_staple = (hit_key[at] == pair_key) if hit_key.size else np.zeros(pair_key.size, bool)
    in_favourite = (
        members.favourite_categories[member] == catalogue.offer_category[offer][:, None]
    ).any(axis=1)
    p_redeem = np.where(
        is_staple, P_REDEEM_STAPLE, np.where(in_favourite, P_REDEEM_CATEGORY, P_REDEEM_OTHER)
    )
    p_redeem = np.minimum(p_redeem * members.coupon_prone[member], 0.95)
    # redeemed at one of the member's visits inside the campaign window, if there is one
    window_lo = visits.at_or_after(member, catalogue.campaign_start_s[campaign])
    window_hi = visits.at_or_after(member, catalogue.campaign_end_s[campaign])
    redeemed = (rng.random(member.size) < p_redeem) & (window_hi > window_lo)
    visit = window_lo + (rng.random(member.size) * (window_hi - window_lo)).astype(np.int64)
    any_product = catalogue.offer_products[
        catalogue.offer_ptr[offer] + (rng.random(member.size) * size[offer]).astype(np.int64)
    ]
    product = np.where(is_staple, hit_product[at] if hit_key.size else 0, any_product)
    member, offer, visit, product = (a[redeemed] for a in (member, offer, visit, product))

    audience_campaign, audience_member = np.nonzero(in_audience.T)
    audience = pl.DataFrame(
        {
            "campaign_id": pl.Series(catalogue.campaign_ids, dtype=pl.String).gather(
                audience_campaign
            ),
            "member_id": members.member_id[audience_member],
        },
        schema=AUDIENCE_SCHEMA,
    )
    redemptions = pl.DataFrame(
        {
            "member_id": members.member_id[member],
            "offer_id": pl.Series(catalogue.offer_ids, dtype=pl.String).gather(offer),
            "ts": micros(catalogue, visits.ts_s[visit]),
        },
        schema=TABLES["redemptions"].schema,
    )
    coupon_lines = Lines(
        visit, product, np.zeros(visit.size, dtype=np.int64), catalogue.offer_discount[offer]
    )
    return audience, redemptions, coupon_lines


def receipt_lines(
    rng: np.random.Generator, catalogue: Catalogue, members: Members, visits: Visits, lines: Lines
) -> pl.DataFrame:
    """Merge a basket's lines of one product, then price them: quantity, sales and discounts.

    Money is computed in whole cents, so every amount is exact to the cent and the discounts
    can never exceed what the line cost.
    """
    n_products = catalogue.n_products
    key = lines.visit * n_products + lines.product
    order = np.argsort(key, kind="stable")  # lines arrive nearly sorted: stable sort is fastest
    key = key[order]
    start = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]]))
    key = key[start]
    visit, product = key // n_products, key % n_products
    units = np.maximum(np.add.reduceat(lines.units[order], start), 1)
    coupon_c = np.rint(np.add.reduceat(lines.coupon[order], start) * 100).astype(np.int64)
    # a few lines of several units; products sold by weight get a weight around their pack
    quantity = draw_quantity(rng, units, catalogue.by_weight[product], catalogue.pack_kg[product])
    gross_c = np.rint(np.rint(catalogue.price * 100)[product] * quantity).astype(np.int64)
    week = np.minimum(visits.ts_s[visit] // (7 * DAY_S), catalogue.weeks - 1)
    on_promo = catalogue.on_promo(product, week)
    retail_c = np.where(on_promo, np.rint(gross_c * catalogue.promo_depth[product]), 0).astype(
        np.int64
    )
    coupon_c = np.minimum(coupon_c, gross_c - retail_c)
    store = visits.store[visit]
    match_c = np.where(
        catalogue.store_matches[store], np.minimum(coupon_c // 2, gross_c - retail_c - coupon_c), 0
    )
    sales_c = gross_c - retail_c - coupon_c - match_c
    return pl.DataFrame(
        {
            "member_id": members.member_id[visits.member[visit]],
            "basket_id": visits.basket_id[visit],
            "product_id": PRODUCT_ID_BASE + product,
            "store_id": store + 1,
            "ts": micros(catalogue, visits.ts_s[visit]),
            "quantity": quantity,
            "sales_value": sales_c / 100,
            "retail_disc": retail_c / 100,
            "coupon_disc": coupon_c / 100,
            "coupon_match_disc": match_c / 100,
        },
        schema=TABLES["transactions"].schema,
    )


def member_chunk(
    catalogue: Catalogue,
    seed: int,
    chunk: int,
    first_member_id: int,
    n: int,
    *,
    control_share: float | None = None,
) -> dict[str, pl.DataFrame]:
    """Every per-member table for members ``first_member_id`` .. ``first_member_id + n - 1``.

    The chunk draws from its own stream, ``SeedSequence(seed, spawn_key=(1, chunk))``, so it
    does not depend on which other chunks ran, in which order or in which process. With a
    ``control_share`` the campaigns are randomized experiments (see ``_synth_uplift``) drawn
    from a second stream, ``spawn_key=(2, chunk)``, and the truth is returned as ``"pairs"``.
    """
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, chunk)))
    members_table, members = draw_members(rng, catalogue, first_member_id, n)
    visits = draw_visits(rng, catalogue, members)
    staples, staple, dues = staple_lines(rng, catalogue, members, visits)
    impulse = impulse_lines(rng, catalogue, members, visits, staple.visit)
    truth: pl.DataFrame | None = None
    if control_share is None:
        audience, redemptions, coupons = campaign_response(rng, catalogue, members, visits, staples)
        lines = Lines.concat([staple, impulse, coupons])
    else:
        natural = Lines.concat([staple, impulse])
        effect = counterfactual_response(
            np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2, chunk))),
            catalogue, members, visits, dues, (natural.visit, natural.product), staple.visit,
            control_share,
        )  # fmt: skip
        audience, redemptions, truth = effect.audience, effect.redemptions, effect.pairs
        (add_visit, add_product), (coupon_visit, coupon_product, face) = (
            effect.added,
            effect.coupons,
        )
        kept = natural.keep(effect.keep)
        lines = Lines.concat(
            [
                kept,
                Lines(
                    add_visit,
                    add_product,
                    np.ones(add_visit.size, np.int64),
                    np.zeros(add_visit.size),
                ),
                Lines(coupon_visit, coupon_product, np.zeros(coupon_visit.size, np.int64), face),
            ]
        )
    transactions = receipt_lines(rng, catalogue, members, visits, lines)
    tables = {
        "members": members_table,
        "transactions": transactions,
        "campaign_audience": audience,
        "redemptions": redemptions,
    }
    return tables if truth is None else tables | {"pairs": truth}
