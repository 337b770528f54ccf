"""Randomized campaigns with known counterfactuals: what each offer changes, and the truth.

Only with ``generate_club(..., counterfactuals=True)``. Every audience member of a campaign is a
control (``treated`` false: no offer) with probability ``control_share``. For every (member,
offer) pair of an audience the generator knows, from its own processes, the probability that
the member buys any of the offer's products within the campaign window without the offer:

* a staple of the member among the offer's products: each due of its cycle that falls on a visit
  in the window is bought with probability ``STAPLE_KEPT`` (independently), so none is bought
  with probability ``(1 - STAPLE_KEPT) ** dues``;
* impulse lines: a visit has Poisson(mu) lines, each an offer product with probability pi (from
  the member's favourite categories and the popularity of the products), so a visit buys none
  with probability ``exp(-mu pi)``; a visit without any staple line that drew no line at all
  still gets one line, which lowers that to ``exp(-mu pi) - pi exp(-mu)``.

So ``p_buy_control = 1 - P(no staple due kept) * prod over visits P(no impulse offer line)``,
exact for the natural receipts of a control. The offer then acts by the member's response type
(drawn once per member): a persuadable who did not buy buys with probability ``lift`` (a line of
an offer product added at a visit in the window), a do-not-disturb member who bought drops every
such line with probability ``drop``, an indifferent member is left alone (a "sure thing" where
``p_buy_control >= 0.5``, else a "lost cause"). A treated buyer redeems the coupon with a
member-specific probability, sure things included: the club pays for purchases it had anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import NDArray

from nbo.data._synth_catalogue import Catalogue
from nbo.data._synth_members import Members, Visits, expand, micros
from nbo.data._synth_quantity import expected_line_price
from nbo.data.contract import TABLES

__all__ = [
    "MARGIN_SHARE",
    "RESPONSE_SHARES",
    "RESPONSE_TYPES",
    "TRUTH_COLUMNS",
    "TRUTH_SCHEMA",
    "Dues",
    "Truth",
    "counterfactual_response",
]

# response types and their shares among members
RESPONSE_TYPES = ("persuadable", "indifferent", "do_not_disturb")
RESPONSE_SHARES = (0.35, 0.55, 0.10)
LIFT = (0.15, 0.5)  # persuadable: share of the members who would not buy that an offer converts
DROP = (0.3, 0.7)  # do not disturb: share of the purchases an offer puts off
REDEEM_GIVEN_BUY = 0.6  # times the member's coupon_prone (mean 1): a treated buyer redeems
MARGIN_SHARE = 0.25  # the club's margin on a sale, as a share of the shelf price
TRUTH_COLUMNS: dict[str, str] = {
    "campaign_id": "the campaign",
    "offer_id": "an offer of the campaign",
    "member_id": "a member of the campaign's audience",
    "treated": "true: the member got the offer; false: held out at random as a control",
    "response_type": "persuadable, sure_thing, lost_cause or do_not_disturb (for this offer)",
    "p_buy_control": "P(buys any of the offer's products in the campaign window | no offer)",
    "p_buy_treated": "P(buys any of the offer's products in the campaign window | offer)",
    "p_redeem_treated": "P(redeems the offer | offered)",
    "value": "the club's margin on the purchase: MARGIN_SHARE x the mean expected shelf price "
    "of a line of one pick of the offer's products (extra units and weights included)",
    "coupon_cost": "the club's cost per redemption: the coupon's face value",
}
TRUTH_SCHEMA = pl.Schema(
    {
        "campaign_id": pl.String(),
        "offer_id": pl.String(),
        "member_id": pl.Int64(),
        "treated": pl.Boolean(),
        "response_type": pl.String(),
        "p_buy_control": pl.Float64(),
        "p_buy_treated": pl.Float64(),
        "p_redeem_treated": pl.Float64(),
        "value": pl.Float64(),
        "coupon_cost": pl.Float64(),
    }
)


@dataclass(frozen=True)
class Dues:
    """Every staple due at the visit it falls on, before the draw that keeps 90 % of them."""

    member: NDArray[np.int64]
    product: NDArray[np.int64]
    visit: NDArray[np.int64]
    kept: float  # the probability that a due is bought


@dataclass(frozen=True)
class Truth:
    """What the chunk's campaigns did: audience, redemptions, receipt edits and the truth."""

    audience: pl.DataFrame
    redemptions: pl.DataFrame
    keep: NDArray[np.bool_]  # per natural line: False where an offer put the purchase off
    added: tuple[NDArray[np.int64], NDArray[np.int64]]  # (visit, product) bought for an offer
    # (visit, product, face value) of each redemption, the line the coupon is redeemed on
    coupons: tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]
    pairs: pl.DataFrame  # the truth per (campaign, offer, member), TRUTH_SCHEMA


def _window_hits(
    member: NDArray[np.int64],
    product: NDArray[np.int64],
    pair: NDArray[np.int64],
    lo: NDArray[np.int64],
    hi: NDArray[np.int64],
    events: tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]],
    n_products: int,
) -> pl.DataFrame:
    """(pair, event, visit) for every event (member, product, visit) of a pair's (member,
    product) rows whose visit lies in the pair's window ``lo <= visit < hi``."""
    e_member, e_product, e_visit = events
    rows = pl.DataFrame(
        {"key": member * n_products + product, "pair": pair, "lo": lo[pair], "hi": hi[pair]}
    )
    found = pl.DataFrame(
        {
            "key": e_member * n_products + e_product,
            "event": np.arange(e_visit.size, dtype=np.int64),
            "visit": e_visit,
        }
    )
    return (
        rows.join(found, on="key")
        .filter((pl.col("visit") >= pl.col("lo")) & (pl.col("visit") < pl.col("hi")))
        .select("pair", "event", "visit")
        .sort("pair", "visit", "event")
    )


def _product_masses(catalogue: Catalogue) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per product: its probability as a popular pick, and within its category."""
    popular = np.diff(catalogue.product_cdf, prepend=0.0)
    cdf = catalogue.category_cdf  # category index + cumulative share within the category
    below = np.maximum(np.concatenate([[0.0], cdf[:-1]]), catalogue.category.astype(np.float64))
    return popular, cdf - below


def counterfactual_response(
    rng: np.random.Generator,
    catalogue: Catalogue,
    members: Members,
    visits: Visits,
    dues: Dues,
    natural: tuple[NDArray[np.int64], NDArray[np.int64]],
    staple_visits: NDArray[np.int64],
    control_share: float,
) -> Truth:
    """Randomized audiences, the offers' effect on the ``natural`` (visit, product) lines, and
    the truth per audience pair (see the module docstring for the model)."""
    n, n_campaigns = members.member_id.size, len(catalogue.campaign_ids)
    n_products = catalogue.n_products
    engagement = np.clip(np.sqrt(members.visit_rate / members.visit_rate.mean()), 0.3, 2.0)
    chance = np.minimum(catalogue.campaign_share[None, :] * engagement[:, None], 0.95)
    eligible = members.join_s[:, None] < catalogue.campaign_start_s[None, :]
    in_audience = (rng.random((n, n_campaigns)) < chance) & eligible
    is_treated = rng.random((n, n_campaigns)) >= control_share
    kind = np.minimum(
        np.searchsorted(np.cumsum(RESPONSE_SHARES), rng.random(n), side="right"),
        len(RESPONSE_TYPES) - 1,
    )
    lift, drop = rng.uniform(*LIFT, n), rng.uniform(*DROP, n)
    redeem = np.clip(REDEEM_GIVEN_BUY * members.coupon_prone, 0.02, 0.95)

    # audience pairs, in campaign then member order
    audience_campaign, audience_member = np.nonzero(in_audience.T)
    size = np.diff(catalogue.offer_ptr)
    pair_of, k = expand(np.diff(catalogue.campaign_offers)[audience_campaign])
    member, campaign = audience_member[pair_of], audience_campaign[pair_of]
    offer = catalogue.campaign_offers[campaign] + k
    treated = is_treated[member, campaign]
    n_pairs = member.size
    lo = visits.at_or_after(member, catalogue.campaign_start_s[campaign])
    hi = visits.at_or_after(member, catalogue.campaign_end_s[campaign])

    # p_buy_control from the generator's own processes
    row_pair, j = expand(size[offer])
    row_member = member[row_pair]
    row_product = catalogue.offer_products[catalogue.offer_ptr[offer[row_pair]] + j]
    popular, within = _product_masses(catalogue)
    favourite = members.favourite_categories[row_member]
    hits = (favourite == catalogue.category[row_product][:, None]).sum(axis=1)
    share = members.favourite_share[row_member]
    mass = (1 - share) * popular[row_product] + share * hits / favourite.shape[1] * within[
        row_product
    ]
    pi = np.minimum(np.bincount(row_pair, weights=mass, minlength=n_pairs), 1.0)
    mu = members.impulse_lines[member]
    no_staple = np.bincount(staple_visits, minlength=visits.member.size) == 0
    no_staple_before = np.concatenate([[0], np.cumsum(no_staple)])
    due_hits = _window_hits(
        row_member, row_product, row_pair, lo, hi, (dues.member, dues.product, dues.visit),
        n_products,
    )  # fmt: skip
    n_dues = np.bincount(due_hits["pair"].to_numpy(), minlength=n_pairs)
    log_none = (
        n_dues * np.log1p(-dues.kept)
        - (hi - lo) * mu * pi
        + (no_staple_before[hi] - no_staple_before[lo]) * np.log1p(-pi * np.exp(-mu * (1 - pi)))
    )
    p0 = np.where(hi > lo, -np.expm1(log_none), 0.0)
    pair_kind = kind[member]
    p1 = np.select(
        [pair_kind == 0, pair_kind == 2],
        [p0 + (1 - p0) * lift[member], p0 * (1 - drop[member])],
        p0,
    )
    p1 = np.where(hi > lo, p1, 0.0)

    # what the natural receipts bought, and what the offer changes for the treated
    line_visit, line_product = natural
    line_hits = _window_hits(
        row_member, row_product, row_pair, lo, hi,
        (visits.member[line_visit], line_product, line_visit), n_products,
    )  # fmt: skip
    hit_pair, hit_line = line_hits["pair"].to_numpy(), line_hits["event"].to_numpy()
    bought = np.bincount(hit_pair, minlength=n_pairs) > 0
    first_at = np.searchsorted(hit_pair, np.arange(n_pairs))  # hits are sorted by pair, visit
    first_line = hit_line[np.minimum(first_at, max(hit_line.size - 1, 0))]
    u_effect, u_where, u_product, u_redeem = (rng.random(n_pairs) for _ in range(4))
    add = treated & (pair_kind == 0) & ~bought & (hi > lo) & (u_effect < lift[member])
    put_off = treated & (pair_kind == 2) & bought & (u_effect < drop[member])
    keep = np.ones(line_visit.size, dtype=bool)
    keep[hit_line[put_off[hit_pair]]] = False
    add_visit = lo + (u_where * (hi - lo)).astype(np.int64)
    add_product = catalogue.offer_products[
        catalogue.offer_ptr[offer] + (u_product * size[offer]).astype(np.int64)
    ]
    # a treated buyer redeems on the line bought (unless another offer put that line off)
    natural_line_kept = bought & keep[first_line] if line_visit.size else bought
    redeemed = treated & (u_redeem < redeem[member]) & (add | (natural_line_kept & ~put_off))
    where_visit = np.where(add, add_visit, line_visit[first_line] if line_visit.size else 0)
    where_product = np.where(add, add_product, line_product[first_line] if line_visit.size else 0)

    offer_ids = pl.Series(catalogue.offer_ids, dtype=pl.String)
    campaign_ids = pl.Series(catalogue.campaign_ids, dtype=pl.String)
    line_price = expected_line_price(catalogue.price, catalogue.by_weight, catalogue.pack_kg)
    offer_of_row = np.repeat(np.arange(size.size), size)
    offer_value = (
        MARGIN_SHARE
        * np.bincount(
            offer_of_row, weights=line_price[catalogue.offer_products], minlength=size.size
        )
        / np.maximum(size, 1)
    )
    labels = np.where(
        pair_kind == 0,
        "persuadable",
        np.where(pair_kind == 2, "do_not_disturb", np.where(p0 >= 0.5, "sure_thing", "lost_cause")),
    )
    pairs = pl.DataFrame(
        {
            "campaign_id": campaign_ids.gather(campaign),
            "offer_id": offer_ids.gather(offer),
            "member_id": members.member_id[member],
            "treated": treated,
            "response_type": labels,
            "p_buy_control": p0,
            "p_buy_treated": p1,
            "p_redeem_treated": p1 * redeem[member],
            "value": offer_value[offer],
            "coupon_cost": catalogue.offer_discount[offer],
        },
        schema=TRUTH_SCHEMA,
    )
    audience = pl.DataFrame(
        {
            "campaign_id": campaign_ids.gather(audience_campaign),
            "member_id": members.member_id[audience_member],
            "treated": is_treated[audience_member, audience_campaign],
        },
        schema=TABLES["campaign_audience"].schema,
    )
    r_member, r_offer, r_visit = member[redeemed], offer[redeemed], where_visit[redeemed]
    redemptions = pl.DataFrame(
        {
            "member_id": members.member_id[r_member],
            "offer_id": offer_ids.gather(r_offer),
            "ts": micros(catalogue, visits.ts_s[r_visit]),
        },
        schema=TABLES["redemptions"].schema,
    )
    return Truth(
        audience=audience,
        redemptions=redemptions,
        keep=keep,
        added=(add_visit[add], add_product[add]),
        coupons=(r_visit, where_product[redeemed], catalogue.offer_discount[r_offer]),
        pairs=pairs,
    )
