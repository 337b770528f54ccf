"""Benchmark the per-key rate limit: offers at 16 connections with the limiter off and on.

Two ``nbo serve`` processes run side by side on the same day plan, each with its own SQLite
history: one without ``NBO_RATE_LIMIT_PER_KEY``, one with a limit far above what one key can
send (``--limit``, default 1,000,000/second), so that every request takes a token and none is
refused. ``GET /v1/members/{id}/offers`` for random members goes to each in turn under wrk
(``serve_offers.lua``, see ``serve.py``) at 16 connections, unpaced, in rounds ordered
off-on-on-off (then on-off-off-on, ...) so that drift in the machine's load falls on both
alike. Reported: each run, then the ratio on/off of the median throughput, median latency and
p99 (1.00: no cost), with the command, machine, load and date.

The club is synthetic (``nbo data synth`` through ``decide.py``'s helpers: ``--members``
members, 200 offers active on the day after its last receipt, a bundle trained 28 days before
on a sibling club of ``--train-members``), made once under ``--work`` and reused.

    apt-get update && apt-get install -y wrk       # the load generator (Debian package)
    .venv/bin/python benchmarks/ratelimit.py --work /tmp/nbo-bench --members 20000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

from decide import WORK, nbo_command, overlay_club, synth_club, trained_bundle
from decide_overlay import last_receipt_day
from measure import header
from serve import API_KEYS, WrkRun, club_ids, run_wrk
from serve_process import load, serving

CONNECTIONS = 16


def make_plan(args: argparse.Namespace, run_dir: Path) -> tuple[Path, Path, str]:
    """(club, plan directory, day): the synthetic club's plan of the day after its receipts."""
    sizes = (args.products, args.weeks, 0)  # products, weeks, seed
    club = synth_club(args.work, args.members, *sizes)
    day = last_receipt_day(club) + timedelta(days=1)
    data = overlay_club(club, day, 0)
    sibling = synth_club(args.work, args.train_members, *sizes)
    bundle = trained_bundle(args.work, sibling, day - timedelta(days=28))
    plans = run_dir / "plans"
    command = nbo_command(
        "plan", "--data", str(data), "--day", day.isoformat(), "--out", str(plans),
        "--model", str(bundle), "--database-url", f"sqlite:///{run_dir / 'plan.db'}",
    )  # fmt: skip
    print(f"(not timed) {' '.join(command)}", flush=True)
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"nbo plan failed ({done.returncode}):\n{done.stdout[-3000:]}")
    return data, plans, day.isoformat()


def server_env(data: Path, plans: Path, day: str, history: Path, limit: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NBO_", "MLFLOW_"))}
    env |= {
        "NBO_PLAN_DIR": str(plans),
        "NBO_DATA_DIR": str(data),
        "NBO_TODAY": day,
        "NBO_DATABASE_URL": f"sqlite:///{history}",
        "NBO_API_KEYS": json.dumps(API_KEYS),
    }
    if limit:
        env["NBO_RATE_LIMIT_PER_KEY"] = limit
    return env


def order(rounds: int) -> list[str]:
    """off-on-on-off, on-off-off-on, ...: each mode as often first as last."""
    pattern = [("off", "on", "on", "off"), ("on", "off", "off", "on")]
    return [mode for r in range(rounds) for mode in pattern[r % 2]]


def ratio_rows(runs: dict[str, list[WrkRun]]) -> list[str]:
    def median(mode: str, figure: str) -> float:
        return float(statistics.median(float(getattr(run, figure)) for run in runs[mode]))

    rows = [
        "| figure | limiter off (median) | limiter on (median) | on / off |",
        "|---|---:|---:|---:|",
    ]
    for label, figure, unit in (("throughput", "rps", "req/s"), ("p50", "p50_ms", "ms"),
                                ("p99", "p99_ms", "ms")):  # fmt: skip
        off, on = median("off", figure), median("on", figure)
        rows.append(f"| {label} | {off:,.1f} {unit} | {on:,.1f} {unit} | {on / off:.3f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=WORK, help="where synthetic clubs are kept")
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--train-members", type=int, default=5_000)
    parser.add_argument("--products", type=int, default=5_000)
    parser.add_argument("--weeks", type=int, default=26)
    parser.add_argument("--limit", default="1000000/second", help="the limit that never binds")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of four runs")
    parser.add_argument("--duration", type=int, default=15, help="seconds per wrk run")
    parser.add_argument("--warmup", type=int, default=5, help="seconds of wrk per server first")
    parser.add_argument("--wrk-threads", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get update && apt-get install -y wrk")
    print(header(f"load before: {load()}"))
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    run_dir = Path(tempfile.mkdtemp(prefix="nbo-bench-ratelimit-", dir="/tmp"))
    data, plans, day = make_plan(args, run_dir)
    member_ids, _ = club_ids(data)
    ids_file = run_dir / "member_ids.txt"
    ids_file.write_text("".join(f"{member_id}\n" for member_id in member_ids))
    runs: dict[str, list[WrkRun]] = {"off": [], "on": []}
    rows = [
        "| run | limiter | req/s | p50 ms | p99 ms | non-2xx | load before |",
        "|---:|---|---:|---:|---:|---:|---|",
    ]
    with ExitStack() as stack:
        servers = {}
        for mode in ("off", "on"):
            limit = args.limit if mode == "on" else ""
            env = server_env(data, plans, day, run_dir / f"history-{mode}.db", limit)
            log = run_dir / f"serve-{mode}.log"
            servers[mode] = stack.enter_context(serving(log, env, args.workers))
        for mode, server in servers.items():
            print(f"warm-up of the limiter-{mode} server: {args.warmup} s (not reported)")
            run_wrk(server.base_url, ids_file, CONNECTIONS, args.warmup, args.wrk_threads)
        for number, mode in enumerate(order(args.rounds), 1):
            before = load()
            run = run_wrk(
                servers[mode].base_url, ids_file, CONNECTIONS, args.duration, args.wrk_threads
            )
            runs[mode].append(run)
            rows.append(
                f"| {number} | {mode} | {run.rps:,.0f} | {run.p50_ms:.2f} | {run.p99_ms:.2f} "
                f"| {run.non_2xx + run.socket_errors + run.timeouts} | {before} |"
            )
    print("\n".join(["", *rows, "", *ratio_rows(runs)]))


if __name__ == "__main__":
    main()
