"""Helpers of ``serve.py``: ``nbo serve`` as a child process, fresh history databases, counts."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import httpx
import psutil
import psycopg
from sqlalchemy import func, select, text

from nbo.history.engine import make_engine
from nbo.history.schema import decisions

__all__ = [
    "Server",
    "count_rows",
    "count_stored",
    "history_database",
    "load",
    "postgres_database",
    "serving",
    "wait_for_count",
]

READY_TIMEOUT_S = 300.0
ENTRY = "from nbo.cli import main; main()"


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f} (5 min {five:.1f})"


def cpu_seconds(procs: Sequence[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Server:
    """``nbo serve`` as a child process in its own process group, logging to a file."""

    def __init__(self, log: Path, env: dict[str, str], workers: int) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = log
        host_port = ["--host", "127.0.0.1", "--port", str(self.port)]
        # the console script's entry point (nbo.cli:main) run by this Python: `nbo serve` itself
        command = [sys.executable, "-c", ENTRY, "serve", *host_port, "--workers", str(workers)]
        print(f"server: {' '.join(command)}", flush=True)
        with log.open("wb") as sink:
            self.process = subprocess.Popen(
                command,
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=log.parent,
                start_new_session=True,
            )

    def wait_ready(self) -> None:
        """Poll ``/v1/readyz`` for 200, then wait until the workers stop loading (CPU settles)."""
        start = time.monotonic()
        with httpx.Client(base_url=self.base_url, timeout=2.0) as http:
            while True:
                if self.process.poll() is not None:
                    raise SystemExit(
                        f"nbo serve exited ({self.process.returncode}):\n{self.tail()}"
                    )
                # uvicorn's supervisor restarts a worker whose startup failed, again and again
                if "Application startup failed" in self.tail(20_000):
                    raise SystemExit(f"a worker of nbo serve failed to start:\n{self.tail()}")
                if time.monotonic() - start > READY_TIMEOUT_S:
                    raise SystemExit(
                        f"nbo serve not ready in {READY_TIMEOUT_S:.0f} s:\n{self.tail()}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    if http.get("/v1/readyz").status_code == 200:
                        break
                time.sleep(0.25)
        # with several workers readyz answers once the first is up while the others may still
        # be loading the model: wait (at most a minute) until the tree's CPU use settles
        root = psutil.Process(self.process.pid)
        procs = [root, *root.children(recursive=True)]
        for _ in range(60):
            busy = cpu_seconds(procs)
            time.sleep(1.0)
            if cpu_seconds(procs) - busy < 0.15:
                break
        print(f"server ready in {time.monotonic() - start:.1f} s ({len(procs)} processes)")

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the server's process tree so far."""
        root = psutil.Process(self.process.pid)
        return cpu_seconds([root, *root.children(recursive=True)])

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL it if it is still there after 15 s."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=15)

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


@contextlib.contextmanager
def serving(log: Path, env: dict[str, str], workers: int) -> Iterator[Server]:
    server = Server(log, env, workers)
    try:
        server.wait_ready()
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
