"""Bulk writing of decisions: a polars frame in, one transaction, duplicates skipped.

SQLite gets one prepared ``INSERT ... ON CONFLICT DO NOTHING`` run over slices of plain tuples;
PostgreSQL (psycopg 3) gets ``COPY`` of CSV slices written by polars, straight into the table or,
when the batch meets a decision_id already stored, through a temporary table.
"""

from __future__ import annotations

from typing import Any

import polars as pl
import psycopg
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from nbo.errors import HistoryError
from nbo.history.schema import (
    DECISION_COLUMNS,
    DECISION_DEFAULTS,
    DECISION_SCHEMA,
    REQUIRED_DECISION_COLUMNS,
)
from nbo.history.schema import decisions as decisions_table

__all__ = ["conform_decisions", "insert_decisions"]

_SLICE = 50_000
# SQLAlchemy's own DateTime storage format on SQLite, so its reads and comparisons agree
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S%.6f"
_DATETIMES = [name for name, dtype in DECISION_SCHEMA.items() if isinstance(dtype, pl.Datetime)]
_FLOATS = [name for name, dtype in DECISION_SCHEMA.items() if isinstance(dtype, pl.Float64)]


def conform_decisions(rows: pl.DataFrame) -> pl.DataFrame:
    """``rows`` cast to the decisions columns: optional ones missing become null (or their
    default, ``DECISION_DEFAULTS``: ``delivered`` true), extras go.

    Aware datetimes are converted to naive UTC. Raises HistoryError naming the column (and the
    first bad row) when a required column is missing or null, or a value does not cast.
    """
    missing = [name for name in REQUIRED_DECISION_COLUMNS if name not in rows.columns]
    if missing:
        raise HistoryError(f"decisions: missing required column(s) {', '.join(missing)}")
    columns: list[pl.Series] = []
    for name, dtype in DECISION_SCHEMA.items():
        default = DECISION_DEFAULTS.get(name)
        if name not in rows.columns:
            columns.append(pl.repeat(default, rows.height, dtype=dtype, eager=True).alias(name))
            continue
        series = rows[name] if default is None else rows[name].fill_null(default)
        if isinstance(series.dtype, pl.Datetime) and series.dtype.time_zone is not None:
            series = series.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        try:
            columns.append(series.cast(dtype))
        except pl.exceptions.PolarsError:
            raise HistoryError(
                f"decisions: column {name!r} of type {series.dtype} does not cast to {dtype}"
            ) from None
    frame = pl.DataFrame(columns)
    for name in REQUIRED_DECISION_COLUMNS:
        nulls = frame[name].null_count()
        if nulls:
            first = frame[name].is_null().arg_max()
            raise HistoryError(f"decisions: {name!r} is null in row {first} ({nulls} row(s))")
    for name in _FLOATS:
        # SQLite would store NaN as NULL, PostgreSQL as NaN: neither is a decision to keep
        bad = (~frame[name].is_finite()).fill_null(False)
        if bad.any():
            row = int(bad.arg_max() or 0)
            raise HistoryError(
                f"decisions: {name!r} is {frame[name][row]} in row {row}; scores must be finite"
            )
    too_long = frame["decision_id"].str.len_chars() > 64
    if too_long.any():
        raise HistoryError(
            f"decisions: decision_id in row {too_long.arg_max()} is longer than 64 characters"
        )
    return frame


def insert_decisions(connection: Connection, frame: pl.DataFrame) -> int:
    """Insert conformed decisions in the open transaction; returns how many rows were new."""
    if frame.is_empty():
        return 0
    backend = connection.dialect.name
    if backend == "sqlite":
        return _insert_sqlite(connection, frame)
    if backend == "postgresql" and connection.dialect.driver == "psycopg":
        return _copy_postgres(connection, frame)
    return _insert_many(connection, frame)


def _insert_sqlite(connection: Connection, frame: pl.DataFrame) -> int:
    statement = sqlite.insert(decisions_table).on_conflict_do_nothing()
    compiled = statement.compile(dialect=connection.dialect, column_keys=list(DECISION_COLUMNS))
    order = list(compiled.positiontup or [])
    text_frame = frame.with_columns(pl.col(_DATETIMES).dt.to_string(_TIME_FORMAT)).select(order)
    inserted = 0
    for part in text_frame.iter_slices(_SLICE):
        result = connection.exec_driver_sql(compiled.string, part.rows())
        inserted += result.rowcount  # sqlite3 sums the rows each statement changed
    return inserted


def _copy(cursor: Any, table: str, frame: pl.DataFrame) -> None:
    columns = ", ".join(DECISION_COLUMNS)
    with cursor.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT csv)") as copy:
        for part in frame.iter_slices(_SLICE):
            # an unquoted empty field is NULL and "" an empty string: polars writes exactly that
            copy.write(part.write_csv(include_header=False, datetime_format=_TIME_FORMAT))


def _copy_postgres(connection: Connection, frame: pl.DataFrame) -> int:
    raw: Any = connection.connection.driver_connection
    with raw.cursor() as cursor:
        # the common case, all decisions new, copies straight in; the savepoint catches the rest
        savepoint = connection.begin_nested()
        try:
            _copy(cursor, "decisions", frame)
        except psycopg.errors.UniqueViolation:
            savepoint.rollback()
        else:
            savepoint.commit()
            return frame.height
        cursor.execute(
            "CREATE TEMPORARY TABLE nbo_decisions_load "
            "(LIKE decisions INCLUDING DEFAULTS) ON COMMIT DROP"
        )
        _copy(cursor, "nbo_decisions_load", frame)
        columns = ", ".join(DECISION_COLUMNS)
        cursor.execute(
            f"INSERT INTO decisions ({columns}) SELECT {columns} FROM nbo_decisions_load "
            "ON CONFLICT (decision_id) DO NOTHING"
        )
        inserted = int(cursor.rowcount)
        cursor.execute("DROP TABLE nbo_decisions_load")
        return inserted


def _insert_many(connection: Connection, frame: pl.DataFrame) -> int:
    """Portable path (a PostgreSQL driver other than psycopg): executemany with RETURNING."""
    statement = (
        postgresql.insert(decisions_table)
        .on_conflict_do_nothing(index_elements=["decision_id"])
        .returning(decisions_table.c.decision_id)
    )
    inserted = 0
    for part in frame.iter_slices(_SLICE):
        inserted += len(connection.execute(statement, part.to_dicts()).all())
    return inserted
