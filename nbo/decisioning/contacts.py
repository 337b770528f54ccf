"""The contact policy, written once: frequency caps, cooldowns, suppression, redeemed offers.

A member's contact history reaches the kernel from two places — the whole club's history as
frames for a batch run (:class:`ContactHistory`, read by ``nbo.history``), or one member's
rows for a request (:class:`Contacts`) — and both become the same :class:`ContactArrays`
(:meth:`ContactArrays.of_history`, :meth:`ContactArrays.of_member`, one aggregation), on which
:func:`contact_rules` decides, for any number of rows, which pass and how many slots each
member has left. Only what happened strictly before ``at`` counts.

The rules (``policy.contact``):

* an offer redeemed (logged as an event) is never offered again;
* an offer sent less than ``cooldown_days`` ago (any channel) waits;
* an offer exposed ``suppress_after_ignored`` times in a row without a click or redemption
  is suppressed (a dismissal answers nothing);
* a member who was sent ``max_offers[channel]`` decisions on the channel in the last
  ``period_days`` has no capacity left; otherwise ``min(slots, cap − sent)`` slots.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import numpy as np
import polars as pl
from numpy.typing import NDArray

from nbo.decisioning.policy import Policy

__all__ = ["ContactArrays", "ContactHistory", "Contacts", "contact_rules"]

_DAY_US = 86_400 * 1_000_000


class ContactHistory(Protocol):
    """The club's contact history as frames (see ``nbo.history.ContactState``).

    ``sent``: member_id, offer_id, channel, decided_at; ``offer_events``: member_id, offer_id,
    ignored, redeemed (and more columns the kernel does not read).
    """

    @property
    def sent(self) -> pl.DataFrame: ...

    @property
    def offer_events(self) -> pl.DataFrame: ...


@dataclass(frozen=True)
class Contacts:
    """One member's contact history as plain rows (what the service reads per request).

    ``sent``: (offer_id, channel, decided_at) of decisions made before ``at``;
    ``offer_events``: offer_id → (ignored, redeemed) from the events before ``at``.
    """

    sent: list[tuple[str, str, datetime]]
    offer_events: dict[str, tuple[int, bool]]

    @staticmethod
    def none() -> Contacts:
        return Contacts([], {})


def _us(moment: datetime) -> int:
    return int(np.datetime64(moment, "us").astype(np.int64))


@dataclass(frozen=True)
class ContactArrays:
    """Contact state as of ``at`` for one channel: per (member, offer) and per member.

    ``pair_*``: pairs with a decision sent before ``at`` or events — days since the last send
    (``nan`` if never), consecutive ignored exposures, redeemed; ``member_ids`` /
    ``sent_in_period``: decisions on the channel within the policy's period, per member.
    """

    pair_member: NDArray[np.int64]
    pair_offer: NDArray[np.object_]
    days_since_sent: NDArray[np.float64]
    ignored: NDArray[np.int64]
    redeemed: NDArray[np.bool_]
    member_ids: NDArray[np.int64]
    sent_in_period: NDArray[np.int64]

    @staticmethod
    def of_history(
        contacts: ContactHistory, policy: Policy, *, at: datetime, channel: str
    ) -> ContactArrays:
        """From the club's frames (a batch run)."""
        sent, events = contacts.sent, contacts.offer_events
        return ContactArrays._build(
            sent["member_id"].to_numpy().astype(np.int64),
            sent["offer_id"].to_numpy().astype(object),
            sent["channel"].to_numpy().astype(object) == channel,
            sent["decided_at"].cast(pl.Datetime("us")).to_numpy().astype(np.int64),
            events["member_id"].to_numpy().astype(np.int64),
            events["offer_id"].to_numpy().astype(object),
            events["ignored"].cast(pl.Int64).to_numpy(),
            events["redeemed"].cast(pl.Boolean).to_numpy(),
            policy,
            at,
        )

    @staticmethod
    def of_member(
        member_id: int, contacts: Contacts, policy: Policy, *, at: datetime, channel: str
    ) -> ContactArrays:
        """From one member's rows (a request)."""
        sent, events = contacts.sent, contacts.offer_events
        return ContactArrays._build(
            np.full(len(sent), member_id, dtype=np.int64),
            np.array([s[0] for s in sent], dtype=object),
            np.array([s[1] == channel for s in sent], dtype=bool),
            np.array([_us(s[2]) for s in sent], dtype=np.int64),
            np.full(len(events), member_id, dtype=np.int64),
            np.array(list(events), dtype=object),
            np.array([e[0] for e in events.values()], dtype=np.int64),
            np.array([e[1] for e in events.values()], dtype=bool),
            policy,
            at,
        )

    @staticmethod
    def _build(
        sent_member: NDArray[np.int64],
        sent_offer: NDArray[np.object_],
        on_channel: NDArray[np.bool_],
        sent_at: NDArray[np.int64],
        event_member: NDArray[np.int64],
        event_offer: NDArray[np.object_],
        ignored: NDArray[np.int64],
        redeemed: NDArray[np.bool_],
        policy: Policy,
        at: datetime,
    ) -> ContactArrays:
        now = _us(at)
        before = sent_at < now
        sent_member, sent_offer = sent_member[before], sent_offer[before]
        on_channel, sent_at = on_channel[before], sent_at[before]
        period_start = _us(at - timedelta(days=policy.contact.period_days))
        members, in_period = np.unique(
            sent_member[on_channel & (sent_at >= period_start)], return_counts=True
        )
        pair_member = np.r_[sent_member, event_member].astype(np.int64)
        pair_offer = np.r_[sent_offer, event_offer].astype(object)
        if pair_member.size == 0:
            empty = np.zeros(0, dtype=np.int64)
            return ContactArrays(empty, np.zeros(0, dtype=object), np.zeros(0), empty,
                                 np.zeros(0, dtype=bool), members.astype(np.int64),
                                 in_period.astype(np.int64))  # fmt: skip
        offers, offer_code = np.unique(pair_offer, return_inverse=True)
        keys, pair = np.unique(
            pair_member * offers.size + offer_code.reshape(-1), return_inverse=True
        )
        pair = pair.reshape(-1)
        n, k = keys.size, sent_member.size
        last_sent = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
        np.maximum.at(last_sent, pair[:k], sent_at)
        days = np.where(
            last_sent > np.iinfo(np.int64).min, (now - last_sent) / _DAY_US, np.nan
        ).astype(np.float64)
        pair_ignored = np.zeros(n, dtype=np.int64)
        np.maximum.at(pair_ignored, pair[k:], ignored)
        pair_redeemed = np.zeros(n, dtype=bool)
        np.logical_or.at(pair_redeemed, pair[k:], redeemed)
        return ContactArrays(
            (keys // offers.size).astype(np.int64), offers[keys % offers.size], days,
            pair_ignored, pair_redeemed, members.astype(np.int64), in_period.astype(np.int64),
        )  # fmt: skip


def contact_rules(
    row_member: NDArray[np.int64],
    row_offer: NDArray[np.int64],
    offer_codes: Mapping[str, int],
    contacts: ContactArrays | None,
    policy: Policy,
    *,
    channel: str,
) -> tuple[NDArray[np.bool_], NDArray[np.int64]]:
    """Which rows the contact policy lets through, and each row's member's capacity.

    ``row_member`` / ``row_offer`` are the rows' member ids and offer codes (``offer_codes``
    maps offer ids to them). A row passes when its offer is not blocked for the member and the
    member has capacity left.
    """
    cap = policy.contact.max_offers.get(channel)
    capacity = np.full(row_member.size, policy.slots, dtype=np.int64)
    if contacts is None:
        if cap is not None:
            capacity = np.minimum(capacity, cap)
        capacity = np.maximum(capacity, 0)
        return capacity > 0, capacity
    if cap is not None:
        at = np.searchsorted(contacts.member_ids, row_member)
        at = np.minimum(at, max(contacts.member_ids.size - 1, 0))
        hit = contacts.member_ids.size > 0
        sent = (
            np.where(contacts.member_ids[at] == row_member, contacts.sent_in_period[at], 0)
            if hit
            else np.zeros(row_member.size, dtype=np.int64)
        )
        capacity = np.minimum(capacity, cap - sent)
    capacity = np.maximum(capacity, 0)
    rule = policy.contact
    blocked = contacts.redeemed | (contacts.days_since_sent < rule.cooldown_days)
    if rule.suppress_after_ignored is not None:
        blocked |= contacts.ignored >= rule.suppress_after_ignored
    width = max(len(offer_codes), 1)
    codes = np.array([offer_codes.get(o, -1) for o in contacts.pair_offer[blocked]], np.int64)
    known = codes >= 0
    blocked_keys = contacts.pair_member[blocked][known] * width + codes[known]
    keep = ~np.isin(row_member * width + row_offer, blocked_keys) & (capacity > 0)
    return keep, capacity
