"""What the online service reads and writes per request: few rows, plain tuples, no frames.

Reads use the same point-in-time queries as :func:`~nbo.history.contact.read_contact_state`
(summarised in the database for a few members); writes insert decisions and arm assignments in
one transaction, skipping what is already stored (decision ids are deterministic per member,
offer, channel and day, so a repeated request records nothing twice).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.dialects import postgresql, sqlite

from nbo.decisioning.online import Contacts
from nbo.history.contact import offer_events_query, sent_query
from nbo.history.engine import to_naive_utc
from nbo.history.schema import assignments, decisions

__all__ = ["campaign_usage", "insert_online", "member_contacts"]

_MEMBERS_PER_QUERY = 1_000


def member_contacts(
    connection: Connection,
    member_ids: Sequence[int],
    *,
    at: datetime,
    sent_before: datetime,
    lookback_days: int = 365,
) -> dict[int, Contacts]:
    """Each member's decisions made before ``sent_before`` and events before ``at``.

    ``sent_before`` ≤ ``at``: the service counts the decisions of earlier days against frequency
    caps and cooldowns, not its own answers of today (asking twice gives the same answer).
    """
    until = to_naive_utc(at)
    sent_until = min(to_naive_utc(sent_before), until)
    since = until - timedelta(days=lookback_days)
    out: dict[int, Contacts] = {m: Contacts([], {}) for m in member_ids}
    members = sorted(out)
    for start in range(0, len(members), _MEMBERS_PER_QUERY):
        piece = members[start : start + _MEMBERS_PER_QUERY]
        sent = connection.execute(
            sent_query, {"at": sent_until, "since": since, "member_ids": piece}
        )
        for member_id, offer_id, channel, decided_at in sent:
            out[member_id].sent.append((offer_id, channel, decided_at))
        events = connection.execute(
            offer_events_query, {"at": until, "since": since, "member_ids": piece}
        )
        for member_id, offer_id, _exposures, ignored, redeemed, *_ in events:
            out[member_id].offer_events[offer_id] = (int(ignored), bool(redeemed))
    return out


def _insert(connection: Connection, table: Any) -> Any:
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


def insert_online(
    connection: Connection,
    decision_rows: Sequence[dict[str, Any]],
    assignment_rows: Sequence[dict[str, Any]],
) -> int:
    """Insert decisions and arm assignments, skipping known ids; returns decisions new."""
    inserted = 0
    if assignment_rows:
        connection.execute(_insert(connection, assignments), list(assignment_rows))
    if decision_rows:
        result = connection.execute(_insert(connection, decisions), list(decision_rows))
        inserted = max(int(result.rowcount), 0)
    return inserted


def campaign_usage(
    connection: Connection, campaign_ids: Sequence[str], since: datetime, until: datetime
) -> dict[str, tuple[float, float, int]]:
    """Per campaign: expected redemptions, expected cost and members of decisions in a window."""
    if not campaign_ids:
        return {}
    d = decisions.c
    query = (
        select(
            d.campaign_id,
            func.coalesce(func.sum(d.p_redeem), 0.0),
            func.coalesce(func.sum(d.expected_cost), 0.0),
            func.count(func.distinct(d.member_id)),
        )
        .where(
            d.decided_at >= to_naive_utc(since),
            d.decided_at < to_naive_utc(until),
            d.campaign_id.in_(list(campaign_ids)),
        )
        .group_by(d.campaign_id)
    )
    return {
        str(cid): (float(p), float(cost), int(members))
        for cid, p, cost, members in connection.execute(query)
    }
