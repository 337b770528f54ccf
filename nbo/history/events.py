"""Interaction events: validation with row-level messages and an idempotent insert.

An event is known by its ``event_id``: sending it again is a duplicate, counted and not stored
twice, as long as it says the same (type, member, offer, decision, channel, ``ts`` and
amount). An ``event_id`` that comes back saying something else is refused
(:class:`EventConflictError`), and so is the whole batch: one transaction stores all or nothing.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl
from sqlalchemy import Connection, bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite

from nbo.errors import EventError, HistoryError
from nbo.history.engine import to_naive_utc
from nbo.history.schema import EVENT_TYPES
from nbo.history.schema import events as events_table

__all__ = ["PAYLOAD", "EventConflictError", "EventReceipt", "conform_events", "insert_events"]

_TEXT = ("event_id", "offer_id")
_OPTIONAL_TEXT = ("decision_id", "channel")
PAYLOAD = ("event_type", "member_id", "offer_id", "decision_id", "channel", "ts", "amount")
"""What an event says: an ``event_id`` sent again must say the same (``received_at`` aside)."""
_LOOKUP_CHUNK = 1000  # event ids per query when comparing duplicates with the stored events


class EventConflictError(HistoryError):
    """Events whose ``event_id`` is stored (or repeated in the batch) with another payload."""

    def __init__(self, event_ids: list[str]) -> None:
        shown = ", ".join(repr(e) for e in event_ids[:10])
        more = f" and {len(event_ids) - 10} more" if len(event_ids) > 10 else ""
        super().__init__(
            f"event_id {shown}{more} already recorded with a different payload; nothing of the "
            "batch was stored (send a new event_id for a new event)"
        )
        self.event_ids = event_ids


@dataclass(frozen=True)
class EventReceipt:
    """What recording a batch of events did: rows new to the store, and rows already there."""

    inserted: int
    duplicates: int


def _fail(index: int, field: str, problem: str) -> EventError:
    return EventError(f"event {index}: {field!r} {problem}", index=index, field=field)


def _conform_one(index: int, event: Mapping[str, Any], received_at: datetime) -> dict[str, Any]:
    for field in _TEXT:
        value = event.get(field)
        if not isinstance(value, str) or not value:
            raise _fail(index, field, f"must be a non-empty string, got {value!r}")
    if len(event["event_id"]) > 64:
        raise _fail(index, "event_id", "is longer than 64 characters")
    event_type = event.get("event_type")
    if event_type not in EVENT_TYPES:
        raise _fail(
            index, "event_type", f"is {event_type!r}; expected one of {', '.join(EVENT_TYPES)}"
        )
    raw_member_id: Any = event.get("member_id")
    try:
        if isinstance(raw_member_id, bool):
            raise TypeError
        member_id = operator.index(raw_member_id)  # numpy integers too, not floats
    except TypeError:
        raise _fail(index, "member_id", f"must be an integer, got {raw_member_id!r}") from None
    for field in _OPTIONAL_TEXT:
        value = event.get(field)
        if value is not None and not isinstance(value, str):
            raise _fail(index, field, f"must be a string or missing, got {value!r}")
    ts = event.get("ts")
    if not isinstance(ts, datetime):
        raise _fail(index, "ts", f"must be a datetime, got {ts!r}")
    amount = event.get("amount")
    if amount is not None:
        if isinstance(amount, bool) or not isinstance(amount, int | float):
            raise _fail(index, "amount", f"must be a number or missing, got {amount!r}")
        if not math.isfinite(amount):
            raise _fail(index, "amount", f"must be finite, got {amount!r}")
        amount = float(amount)
    return {
        "event_id": event["event_id"],
        "event_type": event_type,
        "member_id": member_id,
        "offer_id": event["offer_id"],
        "decision_id": event.get("decision_id"),
        "channel": event.get("channel"),
        "ts": to_naive_utc(ts),
        "received_at": received_at,
        "amount": amount,
    }


def conform_events(
    events: Sequence[Mapping[str, Any]] | pl.DataFrame, received_at: datetime
) -> list[dict[str, Any]]:
    """Events as rows of the ``events`` table, stamped ``received_at``; extra fields are dropped.

    Raises EventError naming the first bad event (its index in ``events``) and field.
    """
    rows = events.to_dicts() if isinstance(events, pl.DataFrame) else events
    return [_conform_one(index, event, received_at) for index, event in enumerate(rows)]


def _sqlite_insert() -> Any:
    return (
        sqlite.insert(events_table)
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(events_table.c.event_id)
    )


def _postgres_insert() -> Any:
    # one statement whatever the batch size: each column travels as one array and is unnested
    # on the server (executemany would send, and psycopg re-parse, a statement per 1,000 rows)
    columns = list(events_table.columns)
    unnested = [func.unnest(bindparam(c.name, type_=postgresql.ARRAY(c.type))) for c in columns]
    return (
        postgresql.insert(events_table)
        .from_select([c.name for c in columns], select(*unnested))
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(events_table.c.event_id)
    )


_SQLITE_INSERT = _sqlite_insert()
_POSTGRES_INSERT = _postgres_insert()


def _payload(row: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(row[field] for field in PAYLOAD)


def _first_of_each(rows: list[dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The first row of each event_id, and the ids repeated in ``rows`` with another payload."""
    first: dict[str, dict[str, Any]] = {}
    conflicts: list[str] = []
    for row in rows:
        seen = first.setdefault(row["event_id"], row)
        if seen is not row and _payload(seen) != _payload(row) and row["event_id"] not in conflicts:
            conflicts.append(row["event_id"])
    return first, conflicts


def _stored_differently(connection: Connection, rows: dict[str, dict[str, Any]]) -> list[str]:
    """The event_ids of ``rows`` stored with another payload."""
    ids = list(rows)
    columns = [events_table.c.event_id, *(events_table.c[field] for field in PAYLOAD)]
    differ: list[str] = []
    for start in range(0, len(ids), _LOOKUP_CHUNK):
        chunk = ids[start : start + _LOOKUP_CHUNK]
        query = select(*columns).where(events_table.c.event_id.in_(chunk))
        for event_id, *stored in connection.execute(query):
            if tuple(stored) != _payload(rows[event_id]):
                differ.append(event_id)
    return differ


def insert_events(connection: Connection, rows: list[dict[str, Any]]) -> int:
    """Insert conformed events in the open transaction, skipping known event_ids; returns new.

    Raises EventConflictError when an event_id is stored, or repeated in ``rows``, with another
    payload (the caller's transaction then rolls back: nothing of the batch is stored).
    """
    if not rows:
        return 0
    first, conflicts = _first_of_each(rows)
    if conflicts:
        raise EventConflictError(conflicts)
    unique = list(first.values())
    # RETURNING lists only the rows written, which counts the new ones on every driver
    if connection.dialect.name == "postgresql":
        arrays = {c.name: [row[c.name] for row in unique] for c in events_table.columns}
        written = connection.execute(_POSTGRES_INSERT, arrays).scalars().all()
    else:
        written = connection.execute(_SQLITE_INSERT, unique).scalars().all()
    new = set(written)
    if len(new) < len(unique):  # the others were stored before: they must say the same
        known = {event_id: row for event_id, row in first.items() if event_id not in new}
        conflicts = _stored_differently(connection, known)
        if conflicts:
            raise EventConflictError(conflicts)
    return len(new)
