"""Helpers of ``serve.py``: ``nbo serve`` ready for a run, fresh history databases, counts.

The server process itself is :class:`nbo.serving.process.ServeProcess`, which the test suite
starts too.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import psycopg
from sqlalchemy import func, select, text

from nbo.history.engine import make_engine
from nbo.history.schema import decisions
from nbo.serving.process import ServeProcess, ServeProcessError

__all__ = [
    "count_rows",
    "count_stored",
    "history_database",
    "load",
    "postgres_database",
    "serving",
    "wait_for_count",
]

READY_TIMEOUT_S = 300.0


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f} (5 min {five:.1f})"


@contextlib.contextmanager
def serving(log: Path, env: dict[str, str], workers: int) -> Iterator[ServeProcess]:
    """``nbo serve --workers N`` (logging to ``log``'s folder), ready and settled; then stopped.

    With several workers ``/v1/readyz`` answers once the first is up while the others may
    still be loading the model: after it, wait (at most a minute) until the process tree's CPU
    use settles, so that no run measures a worker's start-up.
    """
    server = ServeProcess(env, log.parent, args=("--workers", str(workers)), name=log.stem)
    print(f"server: {' '.join(server.command)}", flush=True)
    start = time.monotonic()
    try:
        server.start()
        try:
            server.wait_ready(READY_TIMEOUT_S)
        except ServeProcessError as exc:
            raise SystemExit(str(exc)) from None
        for _ in range(60):
            busy = server.cpu_seconds()
            time.sleep(1.0)
            if server.cpu_seconds() - busy < 0.15:
                break
        workers_up = len(server.processes())
        print(f"server ready in {time.monotonic() - start:.1f} s ({workers_up} processes)")
        yield server
    finally:
        server.stop()


def count_rows(database_url: str, table: str) -> int:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


@contextlib.contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database on the server of ``admin_url``, dropped afterwards."""
    name = f"nbo_bench_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=5)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield admin_url.rsplit("/", 1)[0] + f"/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def wait_for_count(database_url: str, table: str) -> int:
    """Rows in ``table`` once the count stops changing (writes may trail the answers)."""
    count = count_rows(database_url, table)
    for _ in range(30):
        time.sleep(1.0)
        latest = count_rows(database_url, table)
        if latest == count:
            break
        count = latest
    return count


def count_stored(database_url: str, decision_ids: Iterable[str]) -> int:
    """How many of ``decision_ids`` the ``decisions`` table holds."""
    wanted = sorted(decision_ids)
    engine = make_engine(database_url)
    found = 0
    try:
        with engine.connect() as connection:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                query = select(func.count()).where(decisions.c.decision_id.in_(chunk))
                found += int(connection.execute(query).scalar_one())
    finally:
        engine.dispose()
    return found


@contextlib.contextmanager
def history_database(kind: str, run_dir: Path, admin_url: str) -> Iterator[str]:
    """A fresh interaction history: a SQLite file in ``run_dir`` or a PostgreSQL database."""
    if kind == "sqlite":
        yield f"sqlite:///{run_dir / 'history.db'}"
    else:
        with postgres_database(admin_url) as url:
            yield url
