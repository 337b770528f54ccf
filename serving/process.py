"""``nbo serve`` as a child process: what the test suite and the benchmarks start and stop.

The process runs the console script's entry point with this Python, on a loopback port, in a
process group of its own (so a signal reaches every worker too), writing its output to
``cwd/<name>-<N>.log``, where N counts the starts: a restarted server keeps its first log.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import psutil

__all__ = ["ServeProcess", "ServeProcessError", "free_port"]

ENTRY = "from nbo.cli import main; main()"  # what the `nbo` console script runs


class ServeProcessError(RuntimeError):
    """The server exited, failed to start a worker, or was not ready in time (log tail inside)."""


def free_port() -> int:
    """A loopback port nothing listens on now (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ServeProcess:
    """One ``nbo serve --host 127.0.0.1 --port PORT [args]`` child; see the module docstring."""

    def __init__(
        self,
        env: dict[str, str],
        cwd: Path,
        *,
        port: int | None = None,
        args: Sequence[str] = (),
        name: str = "serve",
    ) -> None:
        self.env = env
        self.cwd = cwd
        self.port = port if port is not None else free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.args = tuple(args)  # more `nbo serve` options, e.g. ("--workers", "2")
        self.name = name
        self.starts = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def command(self) -> list[str]:
        host_port = ["--host", "127.0.0.1", "--port", str(self.port)]
        return [sys.executable, "-c", ENTRY, "serve", *host_port, *self.args]

    @property
    def log(self) -> Path:
        return self.cwd / f"{self.name}-{self.starts}.log"

    def start(self) -> None:
        self.starts += 1
        with self.log.open("wb") as sink:
            self.process = subprocess.Popen(
                self.command,
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )

    def wait_ready(self, timeout_s: float) -> None:
        """Poll ``/v1/readyz`` until it answers 200 (from the first worker that is up)."""
        if self.process is None:
            raise ServeProcessError("the server is not started")
        deadline = time.monotonic() + timeout_s
        with httpx.Client(base_url=self.base_url, timeout=2.0) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise ServeProcessError(
                        f"nbo serve exited with {self.process.returncode}:\n{self.tail()}"
                    )
                # uvicorn's supervisor restarts a worker whose startup failed, again and again
                if "Application startup failed" in self.tail(20_000):
                    raise ServeProcessError(
                        f"a worker of nbo serve failed to start:\n{self.tail()}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    if http.get("/v1/readyz").status_code == 200:
                        return
                time.sleep(0.2)
        raise ServeProcessError(f"nbo serve not ready after {timeout_s:.0f} s:\n{self.tail()}")

    def processes(self) -> list[psutil.Process]:
        """The server and its workers (empty once it is gone)."""
        if self.process is None or self.process.poll() is not None:
            return []
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(self.process.pid)
            return [root, *root.children(recursive=True)]
        return []

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the server's process tree so far."""
        total = 0.0
        for proc in self.processes():
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM the process group; SIGKILL it if it is still there after ``grace_s``."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.kill()
                return
        self.process = None

    def kill(self) -> None:
        """SIGKILL the whole process group and reap the child (no-op once it is gone)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""
