"""Point-in-time contact state: what a member was sent and how they responded, before ``at``.

One query per table, reading raw rows; the events are summarised per member and offer by
:func:`nbo.history.summary.summarise_events`, the one place the rule is written (the online
reads in ``nbo.history.online`` call it too).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import polars as pl
from sqlalchemy import ColumnElement, Connection, Select, and_, bindparam, select

from nbo.history.engine import to_naive_utc
from nbo.history.schema import EVENT_TYPES, decisions, delivered, events
from nbo.history.summary import summarise_events

__all__ = [
    "OFFER_EVENTS_SCHEMA",
    "SENT_SCHEMA",
    "ContactState",
    "read_contact_state",
    "summarise_offer_events",
]

SENT_SCHEMA = pl.Schema(
    {
        "member_id": pl.Int64(),
        "offer_id": pl.String(),
        "channel": pl.String(),
        "decided_at": pl.Datetime("us"),
    }
)
OFFER_EVENTS_SCHEMA = pl.Schema(
    {
        "member_id": pl.Int64(),
        "offer_id": pl.String(),
        "exposures": pl.Int64(),
        "ignored": pl.Int64(),
        "redeemed": pl.Boolean(),
        "dismissed": pl.Int64(),
        "last_exposed_at": pl.Datetime("us"),
    }
)
_EVENT_ROWS_SCHEMA = pl.Schema(
    {
        "member_id": pl.Int64(),
        "offer_id": pl.String(),
        "event_type": pl.String(),
        "ts": pl.Datetime("us"),
    }
)
_KEYS = ("member_id", "offer_id")
# an event type's physical value is its code in summarise_events (its place in EVENT_TYPES)
_EVENT_TYPE = pl.Enum(EVENT_TYPES)
# a long member list is read in pieces: SQLite allows at most 32,766 bound values per statement
_MEMBERS_PER_QUERY = 10_000


@dataclass(frozen=True)
class ContactState:
    """Contact history as of one moment, as the decision engine needs it.

    Attributes
    ----------
    sent
        Decisions delivered in the window: ``member_id, offer_id, channel, decided_at`` (the
        engine counts these per channel and period, and applies cooldowns; a holdout member's
        would-be offers were never sent and are not here).
    offer_events
        One row per member and offer with events in the window: ``exposures``; ``ignored``,
        the exposures after the member's last click or redemption of that offer (all of them if
        there was none), i.e. the consecutive exposures left unanswered; ``redeemed``, any
        redemption; ``dismissed``, the number of dismissals; ``last_exposed_at``.
    """

    sent: pl.DataFrame
    offer_events: pl.DataFrame

    @classmethod
    def empty(cls) -> ContactState:
        """A state with no history: what a new member has."""
        return cls(
            sent=pl.DataFrame(schema=SENT_SCHEMA),
            offer_events=pl.DataFrame(schema=OFFER_EVENTS_SCHEMA),
        )


def _in_window(table: Any, ts: Any, by_member: bool) -> ColumnElement[bool]:
    condition = and_(ts < bindparam("at"), ts >= bindparam("since"))
    if by_member:
        condition = and_(condition, table.c.member_id.in_(bindparam("member_ids", expanding=True)))
    return condition


def _sent_query(by_member: bool) -> Select[Any]:
    d = decisions.c
    query = select(d.member_id, d.offer_id, d.channel, d.decided_at)
    query = query.where(_in_window(decisions, d.decided_at, by_member), delivered())
    # ordered only per member: the index gives that order for free, a full scan does not
    return query.order_by(d.member_id, d.decided_at) if by_member else query


def _event_rows_query(by_member: bool) -> Select[Any]:
    e = events.c
    query = select(e.member_id, e.offer_id, e.event_type, e.ts)
    return query.where(_in_window(events, e.ts, by_member))


# built once: building a statement costs more than running it for one member
_SENT = {by_member: _sent_query(by_member) for by_member in (False, True)}
_EVENT_ROWS = {by_member: _event_rows_query(by_member) for by_member in (False, True)}


def summarise_offer_events(event_rows: pl.DataFrame) -> pl.DataFrame:
    """Per member and offer, the ``offer_events`` of a ContactState from raw event rows.

    ``event_rows`` has ``member_id, offer_id, event_type, ts``; the result is sorted by member
    and offer and has the columns of ``OFFER_EVENTS_SCHEMA``; the rule is written in
    :func:`~nbo.history.summary.summarise_events`.
    """
    rows = event_rows.sort(_KEYS).with_columns(pair=pl.struct(_KEYS).rle_id())
    keys = rows.filter(pl.col("pair").is_first_distinct()).select(_KEYS)
    summary = summarise_events(
        rows["pair"].to_numpy(),
        rows["event_type"].cast(_EVENT_TYPE).to_physical().to_numpy(),
        rows["ts"].to_numpy(),
        pair_count=keys.height,
    )
    return keys.with_columns(
        exposures=summary.exposures,
        ignored=summary.ignored,
        redeemed=summary.redeemed,
        dismissed=summary.dismissed,
        last_exposed_at=summary.last_exposed_at,  # NaT, never exposed, becomes null
    ).cast(OFFER_EVENTS_SCHEMA)


def _frame(
    connection: Connection, query: Select[Any], params: dict[str, Any], schema: pl.Schema
) -> pl.DataFrame:
    rows = connection.execute(query, params).all()
    return pl.DataFrame(rows, schema=schema, orient="row")


def read_contact_state(
    connection: Connection,
    at: datetime,
    member_ids: Sequence[int] | None = None,
    lookback_days: int = 365,
) -> ContactState:
    """The contact state of ``member_ids`` (all members if None) from rows strictly before ``at``.

    Only decisions and events in ``[at - lookback_days, at)`` count; ``at`` is taken as UTC
    when naive, as every time in the store is. Both frames come sorted by member.
    """
    if lookback_days < 0:
        raise ValueError(f"lookback_days must be >= 0, got {lookback_days}")
    until = to_naive_utc(at)
    params: dict[str, Any] = {"at": until, "since": until - timedelta(days=lookback_days)}
    if member_ids is None:
        sent = _frame(connection, _SENT[False], params, SENT_SCHEMA)
        event_rows = _frame(connection, _EVENT_ROWS[False], params, _EVENT_ROWS_SCHEMA)
        return ContactState(
            sent=sent.sort("member_id", "decided_at"),
            offer_events=summarise_offer_events(event_rows),
        )
    members = sorted(set(member_ids))
    if not members:
        return ContactState.empty()
    sent_parts: list[pl.DataFrame] = []
    event_parts: list[pl.DataFrame] = []
    for start in range(0, len(members), _MEMBERS_PER_QUERY):
        piece = params | {"member_ids": members[start : start + _MEMBERS_PER_QUERY]}
        sent_parts.append(_frame(connection, _SENT[True], piece, SENT_SCHEMA))
        event_parts.append(_frame(connection, _EVENT_ROWS[True], piece, _EVENT_ROWS_SCHEMA))
    return ContactState(
        sent=pl.concat(sent_parts),
        offer_events=summarise_offer_events(pl.concat(event_parts)),
    )
