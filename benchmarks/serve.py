"""Benchmark ``nbo serve``: online offers under wrk, and bulk event ingestion into PostgreSQL.

Scenario A: the Complete Journey champion's plan (``nbo plan``, not timed) served by
``nbo serve --workers 2``; ``GET /v1/members/{id}/offers`` for random Complete Journey member ids,
driven by wrk with ``serve_offers.lua`` (~30 s each, after a warm-up): first 16 connections
paced at the target rate (1,000 requests/s: the latency a campaign tool sees at that load),
then 16 and 256 connections as fast as they go (the most the service can take, and its latency
when saturated). Reports requests/s, p50/p99 latency, non-2xx and socket errors/timeouts, and
checks that every decision served is in the ``decisions`` table (wrk's script collects the
decision ids it was served, and they are looked up; rows counted). wrk times a request from
when it is written, so in a paced run a request that waited for a free connection would hide
that wait: the script counts the requests sent more than 1 ms behind their slot, and the target
is checked against an upper bound on the p99 of latencies timed from the schedule (see
``serve_offers.lua``), not wrk's own p99.

Scenario B: ``POST /v1/events`` in batches of 1,000 and 10,000 events from a few concurrent
clients into a fresh PostgreSQL database (created here, dropped afterwards); reports events/s.

    apt-get update && apt-get install -y wrk       # the load generator (Debian package)
    .venv/bin/python benchmarks/serve.py --train    # train and promote a CJ champion first
    .venv/bin/python benchmarks/serve.py --mlflow-uri sqlite:///$PWD/mlflow.db   # after make demo
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from decide import model_code_digest, nbo_command
from measure import header
from serve_process import (
    count_rows,
    count_stored,
    history_database,
    load,
    postgres_database,
    serving,
    wait_for_count,
)

from nbo.data.io import ClubData
from nbo.serving.offerbook import OfferBook

WORK = Path("/work/data/bench")
HERE = Path(__file__).resolve().parent
LUA = HERE / "serve_offers.lua"
TODAY = "2017-09-04"  # the Complete Journey "today": the day the champion is trained as of
READER_KEY, WRITER_KEY = "bench-reader", "bench-writer"
API_KEYS = {READER_KEY: "reader", WRITER_KEY: "writer"}
TARGET_RPS = 1000.0  # issue: >= 1,000 req/s at 16 connections
TARGET_P99_MS = 25.0  # with p99 <= 25 ms
TARGET_EVENTS_PER_S = 5000.0  # bulk ingestion into PostgreSQL


def day_plan(mlflow_uri: str, data: Path, run_dir: Path) -> Path:
    """``nbo plan`` of the registry's champion for TODAY into ``run_dir`` (not timed)."""
    plans = run_dir / "plans"
    if (plans / TODAY).exists():
        return plans
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBO_")}
    env["MLFLOW_TRACKING_URI"] = mlflow_uri
    database = f"sqlite:///{run_dir / 'plan.db'}"
    command = nbo_command("plan", "--data", str(data.resolve()), "--day", TODAY, "--out",
                          str(plans), "--database-url", database)  # fmt: skip
    print(f"(not timed) {' '.join(command)} ...", flush=True)
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(
            f"nbo plan failed ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr}"
        )
    return plans


def server_env(mlflow_uri: str, data: Path, database_url: str, run_dir: Path) -> dict[str, str]:
    """The server's environment: the plan of TODAY (made here first), keys, the history."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBO_")}
    return env | {
        "NBO_PLAN_DIR": str(day_plan(mlflow_uri, data, run_dir)),
        "NBO_DATA_DIR": str(data.resolve()),
        "NBO_TODAY": TODAY,
        "NBO_DATABASE_URL": database_url,
        "NBO_API_KEYS": json.dumps(API_KEYS),
    }


def champion_registry(data: Path, work: Path) -> str:
    """A local MLflow store whose champion is ``nbo train --as-of TODAY`` on ``data``."""
    store = work / f"serve-model-cj-asof-{TODAY}-code-{model_code_digest()}"
    uri = f"sqlite:///{store / 'mlflow.db'}"
    if (store / "promoted").is_file():
        print(f"reusing the champion in {uri}")
        return uri
    store.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBO_")}
    env["MLFLOW_TRACKING_URI"] = uri
    if not (data / "manifest.json").is_file():
        print(f"importing Complete Journey into {data} ...", flush=True)
        command = nbo_command("data", "import", "completejourney", str(data))
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    for step in (["train", "--data", str(data.resolve()), "--as-of", TODAY], ["promote"]):
        print(f"(not timed) {' '.join(nbo_command(*step))}  (cwd {store}) ...", flush=True)
        with (store / f"{step[0]}.log").open("w") as log:
            done = subprocess.run(nbo_command(*step), stdout=log, stderr=log, env=env, cwd=store)
        if done.returncode != 0:
            tail = (store / f"{step[0]}.log").read_text()[-3000:]
            raise SystemExit(f"nbo {step[0]} failed ({done.returncode}):\n{tail}")
    (store / "promoted").touch()
    return uri


@dataclass(frozen=True)
class WrkRun:
    """One wrk run's figures (from serve_offers.lua's done())."""

    connections: int
    seconds: float
    requests: int
    non_2xx: int
    socket_errors: int  # connect + read + write errors
    timeouts: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    served: int  # decisions in the 200 answers, a member's repeated answers included
    decision_ids: frozenset[str]  # the distinct decision ids served
    wrk_cpu_s: float  # user + system CPU seconds of wrk itself
    rate: float  # requests/s the run was paced at; 0: unpaced
    behind_max_ms: float  # paced: the furthest behind its slot a request was sent
    behind_1ms: int  # paced: requests sent more than 1 ms behind their slot
    p99_bound_ms: float  # paced: the most the p99 timed from the schedule can be (inf: unknown)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def run_wrk(
    url: str, ids_file: Path, connections: int, seconds: int, threads: int, rate: float = 0.0
) -> WrkRun:
    threads = min(threads, connections)
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "2s",
        "-s",
        str(LUA),
        url,
        "--",
        str(ids_file),
        READER_KEY,
        *(("email", f"{rate / threads:g}") if rate else ()),
    ]
    print(f"load before: {load()}; {' '.join(command)}", flush=True)
    decisions_file = ids_file.with_name("served_decisions.txt")
    env = os.environ | {"WRK_DECISIONS_FILE": str(decisions_file)}
    usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, env=env)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu_s = (usage.ru_utime - usage_before.ru_utime) + (usage.ru_stime - usage_before.ru_stime)
    print(done.stdout.strip())
    lines = [line for line in done.stdout.splitlines() if line.startswith("wrk-json: ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    figures: dict[str, float] = json.loads(lines[-1].removeprefix("wrk-json: "))
    return WrkRun(
        connections=connections,
        seconds=figures["duration_us"] / 1e6,
        requests=int(figures["requests"]),
        non_2xx=int(figures["status"]),
        socket_errors=int(figures["connect"] + figures["read"] + figures["write"]),
        timeouts=int(figures["timeout"]),
        p50_ms=figures["p50_us"] / 1e3,
        p99_ms=figures["p99_us"] / 1e3,
        max_ms=figures["max_us"] / 1e3,
        served=int(figures["served"]),
        decision_ids=frozenset(decisions_file.read_text().split()),
        wrk_cpu_s=wrk_cpu_s,
        rate=rate,
        behind_max_ms=figures["behind_max_us"] / 1e3,
        behind_1ms=int(figures["behind_1ms"]),
        p99_bound_ms=figures["p99_bound_us"] / 1e3 if figures["p99_bound_us"] >= 0 else math.inf,
    )


def verdict(run: WrkRun, stored: int) -> str:
    """The target row of one run (see the module docstring for what each kind checks)."""
    recorded = stored == len(run.decision_ids)
    kept = f"{stored:,} of {len(run.decision_ids):,} decisions recorded"
    errors = run.non_2xx + run.socket_errors + run.timeouts
    if run.rate:
        bound = (
            "no bound (1 % or more sent late)"
            if math.isinf(run.p99_bound_ms)
            else f"at most {run.p99_bound_ms:.1f} ms"
        )
        met = (
            run.rps >= 0.99 * run.rate
            and run.p99_bound_ms <= TARGET_P99_MS
            and recorded
            and not errors
        )
        return (
            f"| offers at 16 connections paced at {run.rate:,.0f} req/s: p99 ≤ "
            f"{TARGET_P99_MS:.0f} ms, every decision recorded | {run.rps:,.0f} req/s, p99 "
            f"{run.p99_ms:.1f} ms as wrk times it, {bound} timed from the schedule "
            f"({run.behind_1ms:,} requests sent > 1 ms late), {errors:,} errors, "
            f"{kept} | {'yes' if met else '**no**'} |"
        )
    if run.connections == 16:
        met = run.rps >= TARGET_RPS and recorded and not errors
        return (
            f"| offers at 16 connections unpaced: ≥ {TARGET_RPS:,.0f} req/s, every decision "
            f"recorded | {run.rps:,.0f} req/s (p99 {run.p99_ms:.1f} ms when saturated), "
            f"{errors:,} errors, {kept} | {'yes' if met else '**no**'} |"
        )
    return (
        f"| offers at {run.connections} connections: no errors | {run.rps:,.0f} req/s, p99 "
        f"{run.p99_ms:.1f} ms, {errors:,} errors, {kept} "
        f"| {'yes' if errors == 0 and recorded else '**no**'} |"
    )


def club_ids(data: Path) -> tuple[list[int], list[str]]:
    club = ClubData(data)
    member_ids = club.members.select("member_id").collect().to_series().to_list()
    offer_ids = club.offers.select("offer_id").collect().to_series().to_list()
    return member_ids, offer_ids


def offers_scenario(args: argparse.Namespace, mlflow_uri: str, run_dir: Path) -> list[str]:
    """Scenario A: wrk against GET /v1/members/{id}/offers; markdown rows and target rows."""
    member_ids, _ = club_ids(args.data)
    ids_file = run_dir / "member_ids.txt"
    ids_file.write_text("".join(f"{member_id}\n" for member_id in member_ids))
    rows: list[str] = []
    targets: list[str] = []
    with history_database(args.offers_db, run_dir, args.postgres_url) as database_url:
        env = server_env(mlflow_uri, args.data, database_url, run_dir)
        with serving(run_dir / "serve-offers.log", env, args.workers) as server:
            print(f"warm-up: {args.warmup} s at 16 connections (not reported)")
            run_wrk(server.base_url, ids_file, 16, args.warmup, args.wrk_threads)
            runs = [(16, args.rate)] if args.rate else []
            runs += [(connections, 0.0) for connections in args.connections]
            for connections, rate in runs:
                rows_before = wait_for_count(database_url, "decisions")
                load_before = load()
                cpu_before = server.cpu_seconds()
                run = run_wrk(
                    server.base_url, ids_file, connections, args.duration, args.wrk_threads, rate
                )
                server_cpu_s = server.cpu_seconds() - cpu_before
                cpu_ms = 1e3 * (server_cpu_s + run.wrk_cpu_s) / max(run.requests, 1)
                added = wait_for_count(database_url, "decisions") - rows_before
                stored = count_stored(database_url, run.decision_ids)
                paced = f"{rate:,.0f}/s" if rate else "no"
                behind = f"{run.behind_max_ms:.1f} ({run.behind_1ms:,} > 1 ms)" if rate else "–"
                bound = f"{run.p99_bound_ms:.1f}" if rate else "–"
                rows.append(
                    f"| {connections} | {paced} | {run.seconds:.1f} | {run.requests:,} "
                    f"| {run.rps:,.0f} | {run.p50_ms:.1f} | {run.p99_ms:.1f} | {bound} "
                    f"| {run.max_ms:.0f} "
                    f"| {behind} | {run.non_2xx:,} | {run.socket_errors:,} | {run.timeouts:,} "
                    f"| {run.served:,} | {len(run.decision_ids):,} | {stored:,} | {added:,} "
                    f"| {server_cpu_s:.1f} | {run.wrk_cpu_s:.1f} | {cpu_ms:.2f} | {load_before} |"
                )
                targets.append(verdict(run, stored))
            total = count_rows(database_url, "decisions")
    rows.append(f"\ndecisions table after all runs (warm-up included): {total:,} rows")
    header = (
        "| connections | paced | s | requests | req/s | p50 ms | p99 ms | p99 bound ms | max ms "
        "| most behind schedule ms | non-2xx | socket errors | timeouts | decisions served "
        "| distinct | distinct stored | rows added | server CPU s | wrk CPU s "
        "| CPU ms / request | load before |"
    )
    return [
        header,
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        *rows,
        "",
        "| target | measured | met? |",
        "|---|---|---|",
        *targets,
    ]


def event_bodies(prefix: str, total: int, batch: int, data: Path, plans: Path) -> list[bytes]:
    """``total`` events with unique ids on the club's members and the planned offers (the
    service refuses events about offers no plan lists), as request bodies."""
    member_ids, _ = club_ids(data)
    offer_ids = sorted(OfferBook(plans).offer_ids())
    t0 = datetime(2017, 8, 1, 8, 0)
    bodies = []
    for start in range(0, total, batch):
        events: list[dict[str, Any]] = [
            {
                "event_id": f"{prefix}-{i}",
                "event_type": ("exposure", "click", "redemption", "dismissal")[i % 4],
                "member_id": member_ids[i % len(member_ids)],
                "offer_id": offer_ids[i % len(offer_ids)],
                "ts": (t0 + timedelta(seconds=i)).isoformat(),
                "decision_id": None,
                "channel": "email",
                "amount": 1.5 if i % 4 == 2 else None,
            }
            for i in range(start, min(start + batch, total))
        ]
        bodies.append(json.dumps({"events": events}).encode())
    return bodies


@dataclass(frozen=True)
class IngestRun:
    seconds: float
    events: int
    p50_ms: float
    p99_ms: float

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds


def post_all(base_url: str, bodies: list[bytes], clients: int) -> IngestRun:
    """POST every body from ``clients`` threads; each must be inserted in full."""
    pending = iter(bodies)
    lock = threading.Lock()
    latencies: list[float] = []
    inserted = 0

    def client() -> None:
        nonlocal inserted
        headers = {"X-API-Key": WRITER_KEY, "Content-Type": "application/json"}
        with httpx.Client(base_url=base_url, headers=headers, timeout=120.0) as http:
            while True:
                with lock:
                    body = next(pending, None)
                if body is None:
                    return
                sent = time.perf_counter()
                response = http.post("/v1/events", content=body)
                elapsed = time.perf_counter() - sent
                if response.status_code != 200:
                    raise SystemExit(f"POST /v1/events: {response.status_code} {response.text}")
                with lock:
                    latencies.append(elapsed)
                    inserted += int(response.json()["inserted"])

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for done in [pool.submit(client) for _ in range(clients)]:
            done.result()
    seconds = time.perf_counter() - start
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e3

    return IngestRun(seconds=seconds, events=inserted, p50_ms=pct(0.5), p99_ms=pct(0.99))


def events_scenario(args: argparse.Namespace, mlflow_uri: str, run_dir: Path) -> list[str]:
    """Scenario B: bulk POST /v1/events into a fresh PostgreSQL database; markdown rows."""
    rows: list[str] = []
    targets: list[str] = []
    with postgres_database(args.postgres_url) as database_url:
        env = server_env(mlflow_uri, args.data, database_url, run_dir)
        with serving(run_dir / "serve-events.log", env, args.workers) as server:
            plans = Path(env["NBO_PLAN_DIR"])
            post_all(server.base_url, event_bodies("warm-up", 2000, 1000, args.data, plans), 2)
            for batch in args.event_batches:
                bodies = event_bodies(f"b{batch}", args.events, batch, args.data, plans)
                stored_before = count_rows(database_url, "events")
                load_before = load()
                print(f"load before: {load_before}; {args.events:,} events in batches of {batch:,}")
                cpu_before = server.cpu_seconds()
                run = post_all(server.base_url, bodies, args.event_clients)
                server_cpu_s = server.cpu_seconds() - cpu_before
                stored = count_rows(database_url, "events") - stored_before
                rows.append(
                    f"| {batch:,} | {args.event_clients} | {run.events:,} | {run.seconds:.1f} "
                    f"| {run.events_per_s:,.0f} | {run.p50_ms:.0f} | {run.p99_ms:.0f} "
                    f"| {stored:,} | {server_cpu_s:.1f} | {load_before} |"
                )
                met = run.events_per_s >= TARGET_EVENTS_PER_S and stored == args.events
                targets.append(
                    f"| events into PostgreSQL, batches of {batch:,}: ≥ {TARGET_EVENTS_PER_S:,.0f}"
                    f"/s | {run.events_per_s:,.0f}/s | {'yes' if met else '**no**'} |"
                )
    return [
        "| batch | clients | events | s | events/s | batch p50 ms | batch p99 ms "
        "| rows stored | server CPU s | load before |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        *rows,
        "",
        "| target | measured | met? |",
        "|---|---|---|",
        *targets,
    ]


def int_list(value: str) -> list[int]:
    return [int(part) for part in value.split(",") if part]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mlflow-uri", help="registry whose champion is served")
    parser.add_argument("--train", action="store_true", help="train and promote a CJ champion")
    parser.add_argument("--data", type=Path, default=Path("data/completejourney"))
    parser.add_argument("--work", type=Path, default=WORK, help="where --train keeps its store")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", type=int, default=30, help="seconds per wrk run")
    parser.add_argument("--warmup", type=int, default=10, help="seconds of wrk before measuring")
    parser.add_argument("--connections", type=int_list, default=[16, 256], help="unpaced runs")
    parser.add_argument(
        "--rate",
        type=float,
        default=TARGET_RPS,
        help="requests/s of the paced run at 16 connections first (0: none)",
    )
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--offers-db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--postgres-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="maintenance database of the PostgreSQL server (fresh databases are made there)",
    )
    parser.add_argument("--events", type=int, default=100_000, help="events per batch size")
    parser.add_argument("--event-batches", type=int_list, default=[1000, 10000])
    parser.add_argument("--event-clients", type=int, default=4)
    parser.add_argument("--skip-offers", action="store_true")
    parser.add_argument("--skip-events", action="store_true")
    args = parser.parse_args()
    # a SIGTERM unwinds like Ctrl-C, so the server is stopped and the databases dropped
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    if not args.skip_offers and shutil.which("wrk") is None:
        raise SystemExit(
            "wrk is not installed: it is the load generator of scenario A. Install it with\n"
            "  apt-get update && apt-get install -y wrk\n(or run with --skip-offers)"
        )
    if args.mlflow_uri:
        mlflow_uri = args.mlflow_uri
    elif args.train:
        mlflow_uri = champion_registry(args.data, args.work)
    elif "MLFLOW_TRACKING_URI" in os.environ:
        mlflow_uri = os.environ["MLFLOW_TRACKING_URI"]
    elif (Path.cwd() / "mlflow.db").is_file():  # what make demo leaves
        mlflow_uri = f"sqlite:///{Path.cwd() / 'mlflow.db'}"
    else:
        raise SystemExit(
            "no model registry: pass --mlflow-uri URI (a registry with a champion), --train "
            "(train and promote one on Complete Journey), or run from where make demo ran"
        )
    print(header(f"model {mlflow_uri} (models:/nbo@champion); load before: {load()}"))
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    run_dir = Path(tempfile.mkdtemp(prefix="nbo-bench-serve-", dir="/tmp"))
    sections: list[list[str]] = []
    try:
        if not args.skip_offers:
            sections.append(offers_scenario(args, mlflow_uri, run_dir))
        if not args.skip_events:
            sections.append(events_scenario(args, mlflow_uri, run_dir))
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    print(f"\nload after: {load()}")
    for lines in sections:
        print("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
