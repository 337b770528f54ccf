"""What the online service reads and writes per request: few rows, plain tuples, no frames.

Reads take the same rows as :func:`~nbo.history.contact.read_contact_state` and summarise the
events with the same :func:`~nbo.history.summary.summarise_events`; writes insert decisions and
arm assignments in one transaction, skipping what is already stored (decision ids are
deterministic per member, offer, channel and day, so a repeated request records nothing twice).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import numpy as np
from sqlalchemy import Connection, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from nbo.decisioning.online import Contacts
from nbo.history.engine import to_naive_utc
from nbo.history.schema import assignments, decisions, delivered
from nbo.history.summary import EVENT_CODES, summarise_events

__all__ = ["campaign_usage", "insert_online", "member_contacts"]

_MEMBERS_PER_QUERY = 1_000


# Plain SQL on a DBAPI connection: for one member, SQLAlchemy's statement compilation and
# result machinery cost several times what SQLite takes to answer.
# One query, both tables: the decisions delivered before `sent_before` (kind -1, with their
# channel; `delivered` is the schema's rule, compiled for the backend)
# and the events before `at` (kind: the event type's code in summarise_events), each within the
# lookback. Work per row is left to the database: the type is coded there, and times come as
# ISO text on both backends (SQLite stores them so, PostgreSQL writes them so in its default
# ISO DateStyle), which NumPy parses in one call; a datetime object a row would cost more.
_EVENT_CODE = "CASE event_type {} END".format(
    " ".join(f"WHEN '{kind}' THEN {code}" for kind, code in EVENT_CODES.items())
)
_CONTACTS_SQL = (
    "SELECT -1, member_id, offer_id, channel, CAST(decided_at AS TEXT) FROM decisions "
    "WHERE member_id IN ({marks}) AND decided_at < {p} AND decided_at >= {p} AND {delivered} "
    "UNION ALL "
    f"SELECT {_EVENT_CODE}, member_id, offer_id, NULL, CAST(ts AS TEXT) FROM events "
    "WHERE member_id IN ({marks}) AND ts < {p} AND ts >= {p}"
)


_DIALECTS: dict[str, Dialect] = {
    "sqlite": sqlite.dialect(),
    "postgresql": postgresql.dialect(),  # type: ignore[no-untyped-call]
}


@lru_cache(maxsize=64)
def _statement(template: str, members: int, backend: str) -> str:
    p = "?" if backend == "sqlite" else "%s"
    sent = delivered().compile(dialect=_DIALECTS[backend], compile_kwargs={"literal_binds": True})
    return template.format(marks=", ".join([p] * members), p=p, delivered=sent)


def _add_rows(out: dict[int, Contacts], rows: list[tuple[Any, ...]]) -> None:
    """Add the rows of ``_CONTACTS_SQL`` to their members' contacts."""
    event_rows = [row for row in rows if row[0] >= 0]
    for _, member_id, offer_id, channel, decided_at in (row for row in rows if row[0] < 0):
        out[member_id].sent.append((offer_id, channel, datetime.fromisoformat(decided_at)))
    if not event_rows:
        return
    kinds, member_ids, offer_ids, _, moments = zip(*event_rows, strict=True)
    pair_of: dict[tuple[int, str], int] = {}  # each event's (member, offer) pair, coded
    pairs = [
        pair_of.setdefault(pair, len(pair_of)) for pair in zip(member_ids, offer_ids, strict=True)
    ]
    times = np.array(moments, dtype="datetime64[us]")
    summary = summarise_events(pairs, kinds, times, len(pair_of))
    for (member_id, offer_id), ignored, redeemed in zip(
        pair_of, summary.ignored.tolist(), summary.redeemed.tolist(), strict=True
    ):
        out[member_id].offer_events[offer_id] = (ignored, redeemed)


def member_contacts(
    connection: Any,
    backend: str,
    member_ids: Sequence[int],
    *,
    at: datetime,
    sent_before: datetime,
    lookback_days: int = 365,
) -> dict[int, Contacts]:
    """Each member's decisions delivered before ``sent_before`` and events before ``at``.

    ``connection`` is a DBAPI connection (sqlite3 or psycopg, in autocommit) of ``backend``.

    ``sent_before`` ≤ ``at``: the service counts the decisions of earlier days against frequency
    caps and cooldowns, not its own answers of today (asking twice gives the same answer).
    Events are summarised as ``ContactState.offer_events`` is, by the same function: ``ignored``
    counts the exposures after the last click or redemption of the offer, ``redeemed`` any
    redemption.
    """
    until = to_naive_utc(at)
    sent_until = min(to_naive_utc(sent_before), until)
    since = until - timedelta(days=lookback_days)
    bounds: list[Any] = [sent_until, since, until, since]
    if backend == "sqlite":
        # SQLAlchemy's DateTime text on SQLite ("YYYY-MM-DD HH:MM:SS.ffffff"): sorts as time does
        bounds = [moment.isoformat(" ", "microseconds") for moment in bounds]
    out: dict[int, Contacts] = {m: Contacts([], {}) for m in member_ids}
    members = sorted(out)
    for start in range(0, len(members), _MEMBERS_PER_QUERY):
        piece = members[start : start + _MEMBERS_PER_QUERY]
        cursor = connection.cursor()
        try:
            query = _statement(_CONTACTS_SQL, len(piece), backend)
            cursor.execute(query, (*piece, *bounds[:2], *piece, *bounds[2:]))
            rows = cursor.fetchall()
        finally:
            cursor.close()
        _add_rows(out, rows)
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
        # RETURNING lists only the rows written (executemany's rowcount is not summed on psycopg)
        statement = _insert(connection, decisions).returning(decisions.c.decision_id)
        inserted = len(connection.execute(statement, list(decision_rows)).all())
    return inserted


def campaign_usage(
    connection: Connection, campaign_ids: Sequence[str], since: datetime, until: datetime
) -> dict[str, tuple[float, float, int]]:
    """Per campaign: expected redemptions, expected cost and members of the decisions delivered
    in a window (a holdout member's would-be offers spend no budget)."""
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
            delivered(),
        )
        .group_by(d.campaign_id)
    )
    return {
        str(cid): (float(p), float(cost), int(members))
        for cid, p, cost, members in connection.execute(query)
    }
