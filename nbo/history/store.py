"""The interaction history store: decisions made and events seen, on SQLite or PostgreSQL."""

from __future__ import annotations

import contextlib
import threading
import time as clock
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from types import TracebackType
from typing import Any

import polars as pl
from sqlalchemy import Connection, Select, select
from sqlalchemy.exc import DBAPIError, OperationalError

from nbo.decisioning.online import Contacts
from nbo.errors import HistoryError
from nbo.history.contact import ContactState, read_contact_state
from nbo.history.decisions import conform_decisions, insert_decisions
from nbo.history.engine import SQLITE_BUSY_TIMEOUT_MS, make_engine, normalise_url, utc_now
from nbo.history.events import EventReceipt, conform_events, insert_events
from nbo.history.exposure import randomized_exposure
from nbo.history.logs import ExperimentLog, experiment_log
from nbo.history.migrate import upgrade
from nbo.history.online import campaign_usage, insert_online, member_contacts
from nbo.history.schema import DECISION_SCHEMA, EVENT_SCHEMA, decisions, events
from nbo.settings import get_settings

__all__ = ["InteractionStore"]

_BACKENDS = ("sqlite", "postgresql")
_LOCK_WAIT_S = 30.0  # how long an online write waits for another process's write lock
_LOCK_PAUSES_S = (0.0002, 0.0005, 0.001, 0.002)  # between its tries (then the last, again)


class InteractionStore:
    """Decisions and interaction events of club members, kept in a SQL database.

    Every write is one transaction, committed before the method returns: a count returned is a
    durable acknowledgement (SQLite runs with WAL and ``synchronous=FULL``).

    Parameters
    ----------
    url
        SQLAlchemy URL; None takes ``NBO_DATABASE_URL`` (default ``sqlite:///./nbo.db``).
        ``postgresql://...`` is run through psycopg 3.
    migrate
        Bring the schema up to date (``alembic upgrade head``) on opening.

    >>> with InteractionStore("sqlite:///history.db") as store:  # doctest: +SKIP
    ...     store.record_decisions(decided)
    ...     state = store.contact_state(at=as_of, member_ids=[42])
    """

    def __init__(self, url: str | None = None, *, migrate: bool = True) -> None:
        if url is None:
            url = get_settings().database_url
        self.url = normalise_url(url)
        if self.url.get_backend_name() not in _BACKENDS:
            raise HistoryError(
                f"history store: {self.url.get_backend_name()!r} databases are not supported; "
                "use a sqlite:/// or postgresql:// URL"
            )
        self.engine = make_engine(self.url)
        # PostgreSQL reads need no transaction (under READ COMMITTED each statement has its own
        # snapshot anyway): without one an online lookup saves the BEGIN and ROLLBACK trips.
        # SQLite's driver opens none for a SELECT, and switching its mode would cost more.
        self._reader = (
            self.engine.execution_options(isolation_level="AUTOCOMMIT")
            if self.url.get_backend_name() == "postgresql"
            else self.engine
        )
        self._threads = threading.local()
        self._raw_readers: list[Any] = []
        if migrate:
            try:
                upgrade(self.engine)
            except BaseException:
                self.engine.dispose()
                raise

    def record_decisions(self, rows: pl.DataFrame) -> int:
        """Store decisions (a frame with the ``decisions`` columns); returns how many were new.

        Optional columns left out are stored as NULL and unknown columns are ignored. A
        decision_id already stored (or repeated in ``rows``) is skipped, not an error.
        """
        frame = conform_decisions(rows)
        with self.engine.begin() as connection:
            return insert_decisions(connection, frame)

    def record_events(self, events: Sequence[Mapping[str, Any]] | pl.DataFrame) -> EventReceipt:
        """Store interaction events, idempotent on ``event_id``; stamps ``received_at`` (UTC).

        Raises EventError naming the first bad event and field; then nothing is stored.
        """
        rows = conform_events(events, received_at=utc_now())
        with self.engine.begin() as connection:
            inserted = insert_events(connection, rows)
        return EventReceipt(inserted=inserted, duplicates=len(rows) - inserted)

    def contact_state(
        self,
        at: datetime,
        member_ids: Sequence[int] | None = None,
        lookback_days: int = 365,
    ) -> ContactState:
        """What was sent to and done by ``member_ids`` (all if None) strictly before ``at``."""
        with self._reader.connect() as connection:
            return read_contact_state(connection, at, member_ids, lookback_days)

    def member_contacts(
        self, member_ids: Sequence[int], *, at: datetime, sent_before: datetime
    ) -> dict[int, Contacts]:
        """Plain-row contact history of a few members (the online path, ``nbo.history.online``).

        A driver error is raised as SQLAlchemy's (as every other read raises it), and the
        thread's connection is dropped: the next call connects afresh, so the online path
        recovers by itself once the database is back.
        """
        backend = self.url.get_backend_name()
        dbapi = self.engine.dialect.loaded_dbapi
        try:
            reader = self._raw_reader()
            return member_contacts(reader, backend, member_ids, at=at, sent_before=sent_before)
        except dbapi.Error as exc:
            self._drop_raw_reader()
            raise DBAPIError.instance(
                "member_contacts", None, exc, dbapi.Error, dialect=self.engine.dialect
            ) from exc

    def _raw_reader(self) -> Any:
        """This thread's own DBAPI connection for the online reads (autocommit: every query
        sees what is committed, and no transaction stays open)."""
        found = getattr(self._threads, "reader", None)
        if found is None:
            # outside the pool: a thread that keeps its connection must not starve the pool
            args, kwargs = self.engine.dialect.create_connect_args(self.engine.url)
            if self.url.get_backend_name() == "sqlite":
                kwargs["check_same_thread"] = False  # closed by whichever thread closes
            found = self.engine.dialect.connect(*args, **kwargs)
            if self.url.get_backend_name() == "postgresql":
                found.autocommit = True
            else:
                found.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            self._threads.reader = found
            self._raw_readers.append(found)
        return found

    def _drop_raw_reader(self) -> None:
        found = getattr(self._threads, "reader", None)
        if found is None:
            return
        self._threads.reader = None
        self._raw_readers.remove(found)
        with contextlib.suppress(Exception):  # a dead connection may fail to close
            found.close()

    def record_online(
        self,
        decision_rows: Sequence[dict[str, Any]],
        assignment_rows: Sequence[dict[str, Any]] = (),
        *,
        sync: bool = True,
    ) -> int:
        """Store online decisions (rows of the ``decisions`` table) and arm assignments in one
        transaction, skipping ids already stored; returns how many decisions were new.

        ``sync=False`` on SQLite commits without waiting for the disk (``synchronous=NORMAL`` for
        this transaction): the rows survive a crash of the process, not of the machine.
        """
        if self.url.get_backend_name() != "sqlite":
            with self.engine.begin() as connection:
                return insert_online(connection, decision_rows, assignment_rows)
        with self.engine.connect() as connection:
            # SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20… ms between its tries, so a
            # write that meets another worker's lock would wait tens of milliseconds: here the
            # handler is off and the transaction is tried again after far shorter pauses
            relaxed = {} if sync else {"synchronous": "NORMAL"}  # FULL is the connection's own
            _set_pragmas(connection, busy_timeout=0, **relaxed)
            try:
                return _retry_locked(
                    connection, lambda: insert_online(connection, decision_rows, assignment_rows)
                )
            finally:  # the pooled connection serves durable, patient writes next
                restored = {} if sync else {"synchronous": "FULL"}
                _set_pragmas(connection, busy_timeout=SQLITE_BUSY_TIMEOUT_MS, **restored)

    def campaign_usage(
        self, campaign_ids: Sequence[str], since: datetime, until: datetime
    ) -> dict[str, tuple[float, float, int]]:
        """Per campaign, (expected redemptions, expected cost, members) decided in a window."""
        with self._reader.connect() as connection:
            return campaign_usage(connection, campaign_ids, since, until)

    def experiment_frames(self, since: date | None = None) -> ExperimentLog:
        """Assignments (from ``since``), decisions per member and redemption events
        (:func:`nbo.history.logs.experiment_log`)."""
        return experiment_log(self._reader, since)

    def randomized_exposure(self, before: datetime | None) -> pl.DataFrame:
        """The service's randomized exposure before ``before`` (None: all), one row per pair:
        delivered champion decisions and the holdout's would-be ones
        (:mod:`nbo.history.exposure`)."""
        return randomized_exposure(self._reader, before)

    def ping(self) -> None:
        """Raise if the database cannot be reached."""
        with self._reader.connect() as connection:
            connection.exec_driver_sql("SELECT 1")

    def decisions_for(self, member_id: int) -> pl.DataFrame:
        """Every decision made for one member, oldest first."""
        query = (
            select(decisions)
            .where(decisions.c.member_id == member_id)
            .order_by(decisions.c.decided_at, decisions.c.decision_id)
        )
        return self._read(query, DECISION_SCHEMA)

    def events_for(self, member_id: int) -> pl.DataFrame:
        """Every event of one member, oldest first."""
        query = (
            select(events)
            .where(events.c.member_id == member_id)
            .order_by(events.c.ts, events.c.event_id)
        )
        return self._read(query, EVENT_SCHEMA)

    def _read(self, query: Select[Any], schema: pl.Schema) -> pl.DataFrame:
        with self._reader.connect() as connection:
            rows = connection.execute(query).all()
        return pl.DataFrame(rows, schema=schema, orient="row")

    def close(self) -> None:
        """Close every pooled connection; the store is not to be used afterwards."""
        for reader in self._raw_readers:
            reader.close()
        self._raw_readers.clear()
        self.engine.dispose()

    def __enter__(self) -> InteractionStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"InteractionStore({self.url.render_as_string(hide_password=True)!r})"


def _set_pragmas(connection: Connection, **values: object) -> None:
    for name, value in values.items():
        connection.exec_driver_sql(f"PRAGMA {name}={value}")
    connection.commit()


def _retry_locked(connection: Connection, write: Callable[[], int]) -> int:
    """``write()`` in a transaction of ``connection``, tried again while SQLite reports the
    database locked by another writer (for at most ``_LOCK_WAIT_S``)."""
    deadline = clock.monotonic() + _LOCK_WAIT_S
    attempt = 0
    while True:
        try:
            with connection.begin():
                return write()
        except OperationalError as exc:
            locked = "locked" in str(exc.orig) or "busy" in str(exc.orig)
            if not locked or clock.monotonic() > deadline:
                raise
        clock.sleep(_LOCK_PAUSES_S[min(attempt, len(_LOCK_PAUSES_S) - 1)])
        attempt += 1
