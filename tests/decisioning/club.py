"""Hand-made and randomly drawn decision-engine inputs: candidates, members, contact history.

``candidate(...)`` / ``member(...)`` give one row with sensible defaults, so a unit test names
only what it is about; :func:`instances` draws whole random instances (inputs and a policy) for
the property tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
from hypothesis import strategies as st

from nbo.decisioning.engine import OfferStats
from nbo.decisioning.policy import Policy
from nbo.decisioning.prepare import CANDIDATE_COLUMNS, MEMBER_COLUMNS
from nbo.history.contact import OFFER_EVENTS_SCHEMA as EVENTS_SCHEMA
from nbo.history.contact import SENT_SCHEMA
from nbo.models.uplift import assumed_uplift

AT = datetime(2024, 6, 10, 9, 30)
TODAY = AT.date()
CHANNELS = ("email", "app", "pos")

STATS_SCHEMA = pl.Schema(
    {"offer_id": pl.String(), "exposures": pl.Int64(), "redemptions": pl.Int64()}
)


@dataclass(frozen=True)
class Contacts:
    """A contact history as the engine reads it (satisfies ``prepare.ContactHistory``)."""

    sent: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=SENT_SCHEMA))
    offer_events: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=EVENTS_SCHEMA))

    @staticmethod
    def of(sent: list[dict[str, Any]], events: list[dict[str, Any]] | None = None) -> Contacts:
        rows = [
            {"dismissed": 0, "last_exposed_at": AT - timedelta(days=1), **e} for e in events or []
        ]
        return Contacts(
            pl.DataFrame(sent, schema=SENT_SCHEMA), pl.DataFrame(rows, schema=EVENTS_SCHEMA)
        )


def candidate(member_id: int, offer_id: str, **overrides: Any) -> dict[str, Any]:
    """One candidate row: in audience, in an open window, on a product new to the member."""
    row: dict[str, Any] = {
        "member_id": member_id,
        "offer_id": offer_id,
        "campaign_id": "C1",
        "category": f"cat-{offer_id}",
        "start_date": TODAY - timedelta(days=5),
        "end_date": TODAY + timedelta(days=20),
        "in_audience": True,
        "p_redeem": 0.2,
        "p_buy": 0.0,
        "uplift": None,  # None: the assumed uplift of p_redeem and p_buy
        "uplift_measured": False,
        "value": 10.0,
        "cost": 1.0,
        "is_new": True,
        "redeemed_before": False,
        "bought_baskets": 0,
        "days_since_bought": None,
        "usual_gap_days": None,
        "product": f"product {offer_id}",
    }
    unknown = set(overrides) - set(row)
    assert not unknown, f"not a candidate column: {unknown}"
    out = {**row, **overrides}
    if out["uplift"] is None:
        out["uplift"] = assumed_uplift(out["p_redeem"], out["p_buy"])
    return out


def member(member_id: int, **overrides: Any) -> dict[str, Any]:
    """One member row: an established, active member with no visit prediction."""
    row: dict[str, Any] = {
        "member_id": member_id,
        "baskets": 50,
        "yearly_value": 1_000.0,
        "lapsing": False,
        "cold_start": False,
        "next_visit_date": None,
        "preferred_hour": None,
    }
    unknown = set(overrides) - set(row)
    assert not unknown, f"not a member column: {unknown}"
    return {**row, **overrides}


def candidates_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=CANDIDATE_COLUMNS)


def members_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=MEMBER_COLUMNS)


@dataclass(frozen=True)
class Instance:
    """Everything ``engine.decide`` takes, drawn at random."""

    candidates: pl.DataFrame
    members: pl.DataFrame
    contacts: Contacts | None
    offer_stats: OfferStats | None
    policy: Policy
    channel: str
    closed_campaigns: frozenset[str]

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))  # hypothesis's pretty printer would shorten the frames

    def __repr__(self) -> str:
        with pl.Config(tbl_rows=-1, tbl_cols=-1, fmt_str_lengths=30, tbl_width_chars=250):
            contacts = (
                "None" if self.contacts is None
                else f"sent=\n{self.contacts.sent}\nevents=\n{self.contacts.offer_events}"
            )  # fmt: skip
            return (
                f"Instance(channel={self.channel!r}, closed={sorted(self.closed_campaigns)},\n"
                f"policy={self.policy.model_dump()!r},\ncandidates=\n{self.candidates}\n"
                f"members=\n{self.members}\ncontacts: {contacts}\n"
                f"offer_stats={None if self.offer_stats is None else self.offer_stats.frame})"
            )


# strategies built once: building them inside a draw costs more than the draw
_COIN = st.booleans()
_RARE = st.integers(0, 4).map(lambda x: x == 0)
_CHANNEL = st.sampled_from(CHANNELS)
_CHANNEL_LISTS = st.lists(_CHANNEL, unique=True, max_size=3)
_CAMPAIGN_RULE = st.fixed_dictionaries(
    {
        "weight": st.sampled_from([0.0, 0.5, 1.0, 2.0]),
        "boost": st.sampled_from([-2.0, 0.0, 1.0, 5.0]),
        "channels": st.none() | _CHANNEL_LISTS,
        "max_redemptions": st.none() | st.sampled_from([0.0, 0.1, 0.25, 0.5, 1.0, 2.0]),
        "max_cost": st.none() | st.sampled_from([0.0, 0.05, 0.3, 1.0, 3.0]),
        "max_audience": st.none() | st.integers(0, 6),
    }
)
_OFFER_RULE = st.fixed_dictionaries(
    {"weight": st.sampled_from([0.0, 1.0, 3.0]), "boost": st.sampled_from([-1.0, 0.0, 4.0])}
)
_CONTACT = st.fixed_dictionaries(
    {
        "period_days": st.integers(1, 14),
        "max_offers": st.dictionaries(_CHANNEL, st.sampled_from([0, 1, 2, 3, 5]), max_size=3),
        "cooldown_days": st.sampled_from([0, 1, 7, 14, 21]),
        "suppress_after_ignored": st.none() | st.integers(1, 4),
        "skip_recent_purchase_days": st.sampled_from([0, 0, 3, 10, 30]),
    }
)
_DIVERSITY = st.fixed_dictionaries(
    {
        "max_per_category": st.integers(1, 3),
        "max_per_campaign": st.none() | st.integers(1, 3),
        "new_product_share": st.sampled_from([0.0, 0.34, 0.5, 1.0]),
    }
)
_EXPLORATION = st.fixed_dictionaries(
    {
        "share": st.sampled_from([0.0, 0.05, 0.5, 1.0]),
        "prior_strength": st.sampled_from([1.0, 20.0]),
        "draws": st.just(200),
    }
)
_ECONOMICS = st.fixed_dictionaries(
    {
        "objective": st.sampled_from(["incremental_margin", "revenue", "redemptions"]),
        "contact_cost": st.fixed_dictionaries(
            {c: st.sampled_from([0.0, 0.02, 0.2]) for c in CHANNELS}
        ),
        "member_cost_share": st.none() | st.sampled_from([0.0, 0.01, 0.05]),
        "member_cost_floor": st.sampled_from([0.0, 0.5, 1.0, 100.0]),
    }
)


def _subset(draw: st.DrawFn, items: list[Any]) -> list[Any]:
    return [item for item in items if draw(_COIN)]


@st.composite
def policies(
    draw: st.DrawFn, campaigns: list[str], offers: list[str], member_ids: list[int]
) -> Policy:
    """A random but valid policy over the given campaigns, offers and members."""
    raw: dict[str, Any] = {
        "slots": draw(st.integers(1, 5)),
        "contact": draw(_CONTACT),
        "diversity": draw(_DIVERSITY),
        "exploration": draw(_EXPLORATION),
        "tracks": {
            "onboarding_max_baskets": draw(st.integers(0, 6)),
            "onboarding_campaigns": _subset(draw, campaigns) if draw(_RARE) else [],
            "winback_campaigns": _subset(draw, campaigns) if draw(_RARE) else [],
        },
        "economics": draw(_ECONOMICS),
        "campaigns": {c: draw(_CAMPAIGN_RULE) for c in campaigns if draw(_COIN)},
        "offers": {o: draw(_OFFER_RULE) for o in offers if draw(_RARE)},
        "excluded_members": [m for m in member_ids if draw(_RARE)] if draw(_RARE) else [],
        "excluded_offers": [o for o in offers if draw(_RARE)] if draw(_RARE) else [],
        "send_lead_hours": draw(st.integers(0, 6)),
        "seed": draw(st.integers(0, 2**16)),
    }
    return Policy.model_validate(raw)


def _days(rng: np.random.Generator, low: int, high: int) -> timedelta:
    return timedelta(days=int(rng.integers(low, high + 1)))


def _pick(rng: np.random.Generator, values: list[Any]) -> Any:
    return values[int(rng.integers(len(values)))]


def _offers(rng: np.random.Generator, n: int, campaigns: list[str]) -> dict[str, dict[str, Any]]:
    """Offers in campaigns; most windows contain ``AT``, some end before it or start after."""
    offers = {}
    for i in range(n):
        kind = rng.random()
        if kind < 0.8:  # open at AT, some just starting or ending on the day
            start, end = TODAY - _days(rng, 0, 10), TODAY + _days(rng, 0, 14)
        elif kind < 0.9:
            start = TODAY + _days(rng, 1, 5)
            end = start + _days(rng, 0, 10)
        else:
            end = TODAY - _days(rng, 1, 5)
            start = end - _days(rng, 0, 10)
        offers[f"O{i}"] = {
            "campaign_id": _pick(rng, campaigns),
            "category": _pick(rng, ["DAIRY", "BAKERY", "FRUIT", "MEAT", None]),
            "start_date": start,
            "end_date": end,
        }
    return offers


def _members(rng: np.random.Generator, member_ids: list[int]) -> list[dict[str, Any]]:
    members = []
    for member_id in member_ids:
        if rng.random() < 0.1:
            continue  # a candidate's member missing from the members frame
        members.append(
            {
                "member_id": member_id,
                "baskets": int(rng.integers(0, 13)),
                "yearly_value": None if rng.random() < 0.2 else round(rng.uniform(0, 500), 1),
                "lapsing": bool(rng.random() < 0.3),
                "cold_start": bool(rng.random() < 0.3),
                "next_visit_date": None if rng.random() < 0.3 else TODAY + _days(rng, -3, 20),
                "preferred_hour": None if rng.random() < 0.3 else int(rng.integers(0, 24)),
            }
        )
    return members


def _candidates(
    rng: np.random.Generator, member_ids: list[int], offers: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    rows = []
    for member_id in member_ids:
        for offer_id, offer in offers.items():
            if rng.random() < 0.3:
                continue
            bought = int(rng.integers(0, 9)) if rng.random() < 0.5 else 0
            rows.append(
                {
                    "member_id": member_id,
                    "offer_id": offer_id,
                    **offer,
                    "in_audience": bool(rng.random() < 0.85),
                    **_response(rng),
                    "value": round(rng.uniform(0, 20), 2),
                    "cost": _pick(rng, [0.0, 0.5, 1.0, round(rng.uniform(0, 5), 2)]),
                    "is_new": bought == 0,
                    "redeemed_before": bool(rng.random() < 0.1),
                    "bought_baskets": bought,
                    "days_since_bought": None if bought == 0 else float(rng.integers(0, 61)),
                    "usual_gap_days": None if bought < 2 else float(rng.integers(1, 31)),
                    "product": f"product {offer_id}",
                }
            )
    return rows


def _response(rng: np.random.Generator) -> dict[str, Any]:
    """p_redeem, p_buy and an uplift: measured (any sign) or the assumed one."""
    p_redeem = _pick(rng, [0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.6, 1.0])
    p_buy = _pick(rng, [0.0, 0.05, 0.3, 0.9])
    measured = bool(rng.random() < 0.5)
    uplift = (
        _pick(rng, [-0.05, 0.0, 0.02, 0.1, 0.3]) if measured else assumed_uplift(p_redeem, p_buy)
    )
    return {"p_redeem": p_redeem, "p_buy": p_buy, "uplift": uplift, "uplift_measured": measured}


def _contacts(rng: np.random.Generator, member_ids: list[int], offers: list[str]) -> Contacts:
    """Sends (a few after ``AT``, which the engine must not see) and per-pair event tallies."""
    pairs = [(m, o) for m in member_ids for o in offers]
    sent = [
        {
            "member_id": m,
            "offer_id": o,
            "channel": _pick(rng, list(CHANNELS)),
            "decided_at": AT - timedelta(hours=int(rng.integers(-48, 24 * 25))),
        }
        for m, o in (_pick(rng, pairs) for _ in range(int(rng.integers(0, 13))))
    ]
    events = []
    for i in rng.permutation(len(pairs))[: int(rng.integers(0, 9))]:
        exposures = int(rng.integers(0, 7))
        events.append(
            {
                "member_id": pairs[i][0],
                "offer_id": pairs[i][1],
                "exposures": exposures,
                "ignored": int(rng.integers(0, exposures + 1)),
                "redeemed": bool(rng.random() < 0.2),
                "dismissed": int(rng.integers(0, 3)),
                "last_exposed_at": AT - _days(rng, 1, 30),
            }
        )
    return Contacts(
        pl.DataFrame(sent, schema=SENT_SCHEMA), pl.DataFrame(events, schema=EVENTS_SCHEMA)
    )


def _offer_stats(rng: np.random.Generator, offers: list[str]) -> OfferStats:
    rows = []
    for offer_id in offers:
        if rng.random() < 0.7:
            exposures = int(rng.integers(0, 501))
            redemptions = int(rng.integers(0, exposures + 1))
            rows.append({"offer_id": offer_id, "exposures": exposures, "redemptions": redemptions})
    return OfferStats(pl.DataFrame(rows, schema=STATS_SCHEMA))


@st.composite
def instances(draw: st.DrawFn, max_members: int = 6, max_offers: int = 8) -> Instance:
    """A small random club, its candidates, contact history and policy.

    Hypothesis draws the shape and the policy (so a failure shrinks to a small policy); the
    rows' values come from a NumPy generator seeded by a drawn seed, which keeps a draw cheap.
    """
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    campaigns = [f"C{i}" for i in range(draw(st.integers(1, 4)))]
    offers = _offers(rng, draw(st.integers(1, max_offers)), campaigns)
    member_ids = sorted(
        int(m) for m in rng.choice(10_000, draw(st.integers(1, max_members)), replace=False) + 1
    )
    with_contacts, with_stats = draw(_COIN), draw(_COIN)
    return Instance(
        candidates=candidates_frame(_candidates(rng, member_ids, offers)),
        members=members_frame(_members(rng, member_ids)),
        contacts=_contacts(rng, member_ids, list(offers)) if with_contacts else None,
        offer_stats=_offer_stats(rng, list(offers)) if with_stats else None,
        policy=draw(policies(campaigns, list(offers), member_ids)),
        channel=draw(_CHANNEL),
        closed_campaigns=frozenset(_subset(draw, campaigns) if draw(_RARE) else []),
    )
