"""Run a command as a child process and measure its wall time, CPU time and peak memory.

Peak RSS is the largest sum over the child and all its descendants seen by polling (worker
processes included); CPU is user + system of the whole tree from ``RUSAGE_CHILDREN``.
"""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psutil

__all__ = ["GIB", "Measurement", "header", "run_measured"]

POLL_S = 0.1
GIB = 1024**3


def header(extra: str = "") -> str:
    """The first line of a benchmark's output: the machine, the time, the commit (and ``extra``)."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=Path(__file__).parent).stdout.strip()  # fmt: skip
    return (
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, "
        f"{psutil.virtual_memory().total / GIB:.0f} GiB RAM, Python {platform.python_version()}; "
        f"{datetime.now():%Y-%m-%d %H:%M}; commit {commit}" + (f"; {extra}" if extra else "")
    )


@dataclass(frozen=True)
class Measurement:
    """What one command cost."""

    returncode: int
    wall_s: float
    cpu_s: float
    peak_tree_rss: int  # bytes: the largest sum of RSS over the process tree at one poll
    # bytes: kernel high-water mark of the largest single waited-for descendant of this script
    # so far (run smaller sizes first)
    peak_process_rss: int
    load_before: float  # 1-minute load average when the run started
    killed: bool = False  # stopped by ``rss_limit``: the figures are up to that moment


def _tree_rss(root: psutil.Process) -> int:
    try:
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:  # the child has just exited
        return 0
    total = 0
    for proc in tree:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):  # a worker exited
            total += proc.memory_info().rss
    return total


def _kill_tree(root: psutil.Process) -> None:
    with contextlib.suppress(psutil.NoSuchProcess):
        for proc in [*root.children(recursive=True), root]:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()


def run_measured(
    command: list[str],
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    rss_limit: int | None = None,
) -> Measurement:
    """Run ``command`` with stdout and stderr to ``log`` and measure it.

    With ``rss_limit`` (bytes) the process tree is killed once its RSS exceeds it, so a run
    that would exhaust a shared machine's memory stops instead (``Measurement.killed``).
    """
    load_before = os.getloadavg()[0]
    usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak = 0
    with log.open("w") as sink:
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=sink, stderr=sink, env=env, cwd=cwd)
        watched = psutil.Process(child.pid)
        done = threading.Event()
        killed = threading.Event()

        def poll() -> None:
            nonlocal peak
            while not done.is_set():
                with contextlib.suppress(psutil.Error):
                    peak = max(peak, _tree_rss(watched))
                if rss_limit is not None and peak > rss_limit and not killed.is_set():
                    killed.set()
                    _kill_tree(watched)
                done.wait(POLL_S)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        code = child.wait()
        wall = time.perf_counter() - start
        done.set()
        poller.join()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Measurement(
        returncode=code,
        wall_s=wall,
        cpu_s=(usage.ru_utime - usage_before.ru_utime) + (usage.ru_stime - usage_before.ru_stime),
        peak_tree_rss=peak,
        peak_process_rss=usage.ru_maxrss * 1024,  # kilobytes on Linux
        load_before=load_before,
        killed=killed.is_set(),
    )
