"""Benchmark a plan-reading ``nbo serve``: planning, worker start-up, memory, offers under wrk.

Plans mode (the default): ``nbo plan --data DATA --day TODAY --out PLANS`` as a child process
(wall, CPU, peak RSS of its process tree), then ``nbo serve --workers N`` on that plan
directory. In-process mode (``--in-process``): ``nbo serve`` with ``NBO_DATA_DIR`` and the
registry, as the service worked before plans (every worker scores the club at start-up); run it
with an older checkout first on ``PYTHONPATH`` to measure that code.

``--synth-members N`` plans and serves a synthetic club of N members instead of ``--data``:
the club of ``nbo data synth --products 20000 --weeks 52 --seed 0`` with 200 offers active on
the day after its last receipt, and a bundle trained 28 days before on a smaller sibling club
(``decide.py``'s helpers; made once under ``--work`` and reused).

Then, for the server: the time from its start to each worker's "nbo serve: ready" line (the
log is polled every 20 ms), each worker's memory after start-up and again after the load runs
(USS: pages only it holds, what another worker would add; PSS; RSS), and
``GET /v1/members/{id}/offers`` for random member ids of DATA under wrk with
``serve_offers.lua`` (see ``serve.py``): a warm-up, 16 connections paced at 1,000 requests/s,
and 16 connections unpaced.

    .venv/bin/python benchmarks/plan_serve.py --data /work/data/completejourney \\
        --mlflow-uri sqlite:////work/data/bench/cj-store/mlflow.db --today 2017-09-04
    PYTHONPATH=/tmp/old-checkout .venv/bin/python benchmarks/plan_serve.py --in-process ...
    .venv/bin/python benchmarks/plan_serve.py --synth-members 100000 --skip-load
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import psutil
from decide import WORK, nbo_command, overlay_club, synth_club, trained_bundle
from decide_overlay import last_receipt_day
from measure import GIB, header, run_measured
from serve import API_KEYS, TARGET_P99_MS, TARGET_RPS, club_ids, run_wrk
from serve_process import load

from nbo.serving.process import ServeProcess

MIB = 1024**2
READY = re.compile(r"nbo serve: ready \(pid (\d+)")


@dataclass(frozen=True)
class WorkerMemory:
    pid: int
    uss: int
    pss: int
    rss: int


def worker_memory(pids: list[int]) -> list[WorkerMemory]:
    out = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            info = psutil.Process(pid).memory_full_info()
            out.append(WorkerMemory(pid, info.uss, info.pss, info.rss))
    return out


def memory_rows(label: str, memory: list[WorkerMemory]) -> list[str]:
    return [
        f"| {label} | {m.pid} | {m.uss / MIB:,.0f} | {m.pss / MIB:,.0f} | {m.rss / MIB:,.0f} |"
        for m in memory
    ]


def wait_workers(server: ServeProcess, workers: int, start: float, timeout_s: float) -> list[float]:
    """Seconds from ``start`` to each worker's ready line (polled every 20 ms), in order."""
    seen: dict[int, float] = {}
    deadline = start + timeout_s
    while len(seen) < workers and time.monotonic() < deadline:
        if server.process is not None and server.process.poll() is not None:
            raise SystemExit(f"nbo serve exited:\n{server.tail()}")
        for pid in READY.findall(server.tail(200_000)):
            seen.setdefault(int(pid), time.monotonic() - start)
        time.sleep(0.02)
    if len(seen) < workers:
        raise SystemExit(f"{len(seen)} of {workers} workers ready after {timeout_s:.0f} s")
    return [seen[pid] for pid in sorted(seen, key=seen.__getitem__)]


def ready_pids(server: ServeProcess) -> list[int]:
    return [int(pid) for pid in dict.fromkeys(READY.findall(server.tail(200_000)))]


def plan(args: argparse.Namespace, env: dict[str, str], run_dir: Path) -> tuple[Path, list[str]]:
    plans = run_dir / "plans"
    command = nbo_command(
        "plan", "--data", str(args.data), "--day", args.today, "--out", str(plans),
        "--database-url", f"sqlite:///{run_dir / 'plan.db'}",
        *(("--shards", str(args.shards)) if args.shards else ()),
        *(("--model", args.model) if args.model else ()),
    )  # fmt: skip
    print(f"load before: {load()}; {' '.join(command)}", flush=True)
    limit = int(args.max_rss_gib * GIB)
    measured = run_measured(command, run_dir / "plan.log", env=env, cwd=run_dir, rss_limit=limit)
    print((run_dir / "plan.log").read_text()[-3000:])
    if measured.returncode != 0:
        raise SystemExit(
            f"nbo plan failed ({measured.returncode}"
            f"{', killed over the RSS limit' * measured.killed}) after {measured.wall_s:.0f} s, "
            f"{measured.cpu_s:.0f} CPU s, peak RSS "
            f"{measured.peak_tree_rss / GIB:.2f} GiB"
        )
    manifest = json.loads((plans / args.today / "manifest.json").read_text())
    files = sum(p.stat().st_size for p in (plans / args.today).resolve().rglob("*") if p.is_file())
    rows = {arm: m["rows"] for arm, m in manifest["models"].items()}
    return plans, [
        "| step | wall s | CPU s | peak RSS tree GiB | load before | plan |",
        "|---|---:|---:|---:|---:|---|",
        f"| nbo plan | {measured.wall_s:.1f} | {measured.cpu_s:.1f} "
        f"| {measured.peak_tree_rss / GIB:.2f} | {measured.load_before:.1f} "
        f"| {manifest['counts']['members']:,} members, {manifest['counts']['offers']} offers, "
        f"{manifest['shards']['count']} shard(s), rows {rows}, {files / MIB:,.0f} MiB on disk |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="club dataset (or --synth-members)")
    parser.add_argument("--mlflow-uri", default="", help="registry whose champion is planned")
    parser.add_argument("--model", default="", help="model to plan (default: the champion)")
    parser.add_argument("--today", help="the day planned and served")
    parser.add_argument("--synth-members", type=int, default=0)
    parser.add_argument("--train-members", type=int, default=20_000)
    parser.add_argument("--work", type=Path, default=WORK, help="where synthetic clubs are kept")
    parser.add_argument("--max-rss-gib", type=float, default=14.0, help="nbo plan is killed above")
    parser.add_argument("--in-process", action="store_true", help="serve without plans")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--shards", type=int, default=0, help="nbo plan --shards (0: default)")
    parser.add_argument("--duration", type=int, default=30, help="seconds per wrk run")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--ready-timeout", type=float, default=600.0)
    parser.add_argument("--skip-load", action="store_true", help="start-up and memory only")
    args = parser.parse_args()
    if args.synth_members:
        sizes = (20_000, 52, 0)  # products, weeks, seed: decide.py's clubs
        club = synth_club(args.work, args.synth_members, *sizes)
        at = last_receipt_day(club) + timedelta(days=1)
        args.data = overlay_club(club, at, 0)
        sibling = synth_club(args.work, args.train_members, *sizes)
        args.model = args.model or str(trained_bundle(args.work, sibling, at - timedelta(days=28)))
        args.today = at.isoformat()
    if args.data is None or args.today is None:
        parser.error("--data and --today, or --synth-members")
    if not args.skip_load and shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk (or --skip-load)")
    args.data = args.data.resolve()
    print(
        header(
            f"PYTHONPATH={os.environ.get('PYTHONPATH', '')}; "
            f"mode {'in-process' if args.in_process else 'plans'}; load before: {load()}"
        )
    )
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    run_dir = Path(tempfile.mkdtemp(prefix="nbo-bench-plan-serve-", dir="/tmp"))
    base = {k: v for k, v in os.environ.items() if not k.startswith("NBO_")}
    if args.mlflow_uri:
        base["MLFLOW_TRACKING_URI"] = args.mlflow_uri
    if args.model:
        base["NBO_MODEL_URI"] = args.model  # the in-process service's champion
    sections: list[list[str]] = []
    try:
        env = base | {
            "NBO_TODAY": args.today,
            "NBO_DATA_DIR": str(args.data),
            "NBO_DATABASE_URL": f"sqlite:///{run_dir / 'history.db'}",
            "NBO_API_KEYS": json.dumps(API_KEYS),
        }
        if not args.in_process:
            plans, rows = plan(args, base, run_dir)
            sections.append(rows)
            env = {k: v for k, v in env.items() if k != "MLFLOW_TRACKING_URI"}
            env["NBO_PLAN_DIR"] = str(plans)
        server = ServeProcess(env, run_dir, args=("--workers", str(args.workers)))
        print(f"load before: {load()}; server: {' '.join(server.command)}", flush=True)
        start = time.monotonic()
        server.start()
        try:
            ready = wait_workers(server, args.workers, start, args.ready_timeout)
            server.wait_ready(60)
            pids = ready_pids(server)
            for _ in range(60):  # settled: no worker still busy starting
                busy = server.cpu_seconds()
                time.sleep(1.0)
                if server.cpu_seconds() - busy < 0.15:
                    break
            memory = memory_rows("after start-up", worker_memory(pids))
            runs: list[str] = []
            if not args.skip_load:
                member_ids, _ = club_ids(args.data)
                ids_file = run_dir / "member_ids.txt"
                ids_file.write_text("".join(f"{m}\n" for m in member_ids))
                run_wrk(server.base_url, ids_file, 16, args.warmup, args.wrk_threads)
                for rate in (TARGET_RPS, 0.0):
                    run = run_wrk(server.base_url, ids_file, 16, args.duration,
                                  args.wrk_threads, rate)  # fmt: skip
                    errors = run.non_2xx + run.socket_errors + run.timeouts
                    bound = f"{run.p99_bound_ms:.1f}" if rate else "–"
                    runs.append(
                        f"| 16 | {f'{rate:,.0f}/s' if rate else 'no'} | {run.requests:,} "
                        f"| {run.rps:,.0f} | {run.p50_ms:.1f} | {run.p99_ms:.1f} | {bound} "
                        f"| {run.max_ms:.0f} | {errors:,} |"
                    )
                memory += memory_rows("after the load runs", worker_memory(pids))
        finally:
            server.stop()
        sections.append(
            [
                "| worker | ready s after start |",
                "|---:|---:|",
                *(f"| {k + 1} | {seconds:.2f} |" for k, seconds in enumerate(ready)),
            ]
        )
        sections.append(
            ["| when | pid | USS MiB | PSS MiB | RSS MiB |", "|---|---:|---:|---:|---:|", *memory]
        )
        if runs:
            sections.append(
                [
                    f"targets: ≥ {TARGET_RPS:,.0f} req/s, p99 ≤ {TARGET_P99_MS:.0f} ms",
                    "| connections | paced | requests | req/s | p50 ms | p99 ms | p99 bound ms "
                    "| max ms | errors |",
                    "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
                    *runs,
                ]
            )
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    print(f"\nload after: {load()}")
    for lines in sections:
        print("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
