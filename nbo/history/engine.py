"""SQLAlchemy engines for the history store: durable SQLite by default, PostgreSQL via psycopg 3."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event, make_url

from nbo.errors import HistoryError

__all__ = ["SQLITE_BUSY_TIMEOUT_MS", "make_engine", "normalise_url", "to_naive_utc", "utc_now"]


def normalise_url(url: str | URL) -> URL:
    """``url`` with plain ``postgresql://`` (or ``postgres://``) rewritten to psycopg 3."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


SQLITE_BUSY_TIMEOUT_MS = 30_000
"""How long a SQLite connection waits for another writer's lock before it gives up."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers go on while a batch is written; FULL syncs the WAL on every commit, so an
    # acknowledged write survives a power cut, not only a crash of the process. A 64 MiB page
    # cache (the default is 2 MiB) keeps bulk inserts into the member indexes off the disk.
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA cache_size=-65536")
        finally:
            cursor.close()


def make_engine(url: str | URL) -> Engine:
    """An engine for ``url``; a SQLite file gets WAL and ``synchronous=FULL`` and its folder."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            folder = Path(database).expanduser().parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise HistoryError(f"history store: cannot create {folder} ({exc})") from None
        engine = create_engine(parsed)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(parsed, pool_pre_ping=True)


def to_naive_utc(moment: datetime) -> datetime:
    """``moment`` as naive UTC: aware times are converted, naive ones are taken as UTC already."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def utc_now() -> datetime:
    """The current time as naive UTC, the form every time in the store takes."""
    return datetime.now(UTC).replace(tzinfo=None)
