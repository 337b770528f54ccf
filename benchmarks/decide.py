"""Benchmark ``nbo decide``: the batch decision job at 1M members × 200 offers, and one member.

Prepared first (not timed, reused from ``--work`` on later runs):

* synthetic clubs from ``nbo data synth --products 20000 --weeks 52 --seed 0`` (target size,
  baseline size, and a smaller sibling for training);
* an *overlay* of each club (see :mod:`decide_overlay`): every table symlinked except the four
  offer tables, which get 10 extra campaigns × 20 offers active on ``--at``;
* a model bundle, trained by ``nbo train`` on the sibling club in a throw-away MLflow directory
  (training on 1M members takes ~25 min; the models are feature-based, so the decision cost
  does not depend on how many members the bundle was trained on).

Timed: ``nbo decide`` as a child process for the baseline and the target size (one markdown row
each, and their ratio; with ``--record`` again recording into SQLite); then one member's
decision in-process (see :mod:`decide_latency`), 1,000 members, as p50/p95/p99.

    nice -n 5 .venv/bin/python benchmarks/decide.py --record --stages   # 100k, then 1M members
    .venv/bin/python benchmarks/decide.py --members 20000 --baseline-members 5000 \\
        --train-members 5000                                 # a quick look
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl
import psutil
from decide_latency import member_latency
from decide_overlay import build_overlay, last_receipt_day
from measure import GIB, Measurement, run_measured

import nbo
from nbo.data.io import ClubData

WORK = Path("/work/data/bench")
TARGET_WALL_S = 300.0  # issue: 1M members × 200 offers in at most 5 minutes
TARGET_RSS = 8e9  # and 8 GB peak RSS
TARGET_P99_MS = 5.0  # one member in-process


def nbo_command(*args: str) -> list[str]:
    """The ``nbo`` console script beside this Python, or ``python -c`` without it."""
    console_script = Path(sys.executable).with_name("nbo")
    if console_script.is_file():
        return [str(console_script), *args]
    return [sys.executable, "-c", "from nbo.cli import app; app()", *args]


def child_env() -> dict[str, str]:
    """Our environment without MLFLOW_TRACKING_URI, so training logs to its own directory."""
    return {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}


def synth_club(work: Path, members: int, products: int, weeks: int, seed: int) -> Path:
    """The synthetic club of this size under ``work``, generated if it is not there yet."""
    club = work / f"synth-{members}-p{products}-w{weeks}-s{seed}"
    if (club / "manifest.json").is_file():
        print(f"reusing {club}")
        return club
    print(f"generating {club} (nbo data synth, not timed) ...", flush=True)
    sizes = {"--members": members, "--products": products, "--weeks": weeks, "--seed": seed}
    args = ["data", "synth", *(str(x) for item in sizes.items() for x in item), str(club)]
    subprocess.run(nbo_command(*args), check=True, stdout=subprocess.DEVNULL)
    return club


def overlay_club(club: Path, at: date, seed: int) -> Path:
    """The 200-offer overlay of ``club`` for ``at``, built and validated if it is not there."""
    overlay = club.with_name(f"{club.name}-offers200-{at.isoformat()}")
    if (overlay / "manifest.json").is_file():
        print(f"reusing {overlay}")
        return overlay
    print(f"writing overlay {overlay} ...", flush=True)
    build_overlay(club, overlay, at, seed=seed)
    check = subprocess.run(
        nbo_command("data", "validate", str(overlay)), capture_output=True, text=True
    )
    if check.returncode != 0:
        shutil.rmtree(overlay, ignore_errors=True)
        raise SystemExit(f"the overlay does not validate:\n{check.stdout[-3000:]}{check.stderr}")
    print(f"nbo data validate {overlay}: ok (exit 0)")
    return overlay


def model_code_digest() -> str:
    """A digest of the model, feature and bundle code: a bundle is reused only by the code that
    made it."""
    import nbo.features
    import nbo.models
    import nbo.tracking

    digest = hashlib.sha1(usedforsecurity=False)
    for package in (nbo.models, nbo.features, nbo.tracking):
        for path in sorted(p for d in package.__path__ for p in Path(d).rglob("*.py")):
            digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def trained_bundle(work: Path, sibling: Path, as_of: date) -> Path:
    """The bundle of ``nbo train --data SIBLING --as-of AS_OF``, trained once per model code."""
    model_dir = work / f"model-{sibling.name}-asof-{as_of.isoformat()}-code-{model_code_digest()}"
    found = sorted(model_dir.glob("mlartifacts/**/bundle.joblib"))
    if found:
        print(f"reusing bundle {found[0]}")
        return found[0]
    model_dir.mkdir(parents=True, exist_ok=True)
    command = nbo_command("train", "--data", str(sibling), "--as-of", as_of.isoformat())
    print(f"training (not timed): {' '.join(command)}  (cwd {model_dir}) ...", flush=True)
    start = time.perf_counter()
    with (model_dir / "train.log").open("w") as log:
        code = subprocess.run(command, stdout=log, stderr=log, env=child_env(), cwd=model_dir)
    if code.returncode != 0:
        tail = (model_dir / "train.log").read_text()[-3000:]
        raise SystemExit(f"nbo train failed ({code.returncode}):\n{tail}")
    found = sorted(model_dir.glob("mlartifacts/**/bundle.joblib"))
    if not found:
        raise SystemExit(f"nbo train wrote no bundle.joblib under {model_dir / 'mlartifacts'}")
    print(f"trained in {time.perf_counter() - start:.0f} s: {found[0]}")
    return found[0]


@dataclass(frozen=True)
class Run:
    """What one ``nbo decide`` run cost and wrote."""

    label: str
    members: int
    offers: str  # active offers, from the job's own summary line ("-" if absent)
    candidates: str  # scored candidate rows, idem
    decisions: int
    reached: int  # members with at least one decision
    cost: Measurement

    def row(self) -> str:
        m = self.cost
        return (
            f"| {self.label} | {self.members:,} | {self.offers} | {self.candidates} "
            f"| {m.wall_s:.1f} | {m.cpu_s:.1f} | {m.peak_tree_rss / GIB:.2f} "
            f"| {self.decisions:,} | {self.reached:,} | {m.returncode}{' (killed)' * m.killed} "
            f"| {m.load_before:.1f} |"
        )


def scaling(base: Run, big: Run) -> str:
    """The target/baseline ratios and the target size against the issue's targets."""
    a, b = base.cost, big.cost
    finished = b.returncode == 0
    if b.killed:
        why = " (killed over the RSS limit: figures up to that moment)"
    elif not finished:
        why = f" (the job failed, exit {b.returncode}: figures up to that moment)"
    else:
        why = ""
    note = "" if big.members == 1_000_000 else " [the targets are for 1,000,000 members]"
    wall_ok = finished and b.wall_s <= TARGET_WALL_S
    rss_verdict = "met" if finished else "unknown"
    if b.peak_tree_rss > TARGET_RSS:
        rss_verdict = "NOT met"
    return (
        f"{big.label}: {big.members / base.members:.0f}x members -> {b.wall_s / a.wall_s:.1f}x "
        f"wall, {b.cpu_s / a.cpu_s:.1f}x CPU, {b.peak_tree_rss / a.peak_tree_rss:.1f}x peak "
        f"RSS; {b.wall_s:.0f} s of {TARGET_WALL_S:.0f} s ({'met' if wall_ok else 'NOT met'}), "
        f"{b.peak_tree_rss / 1e9:.2f} GB of {TARGET_RSS / 1e9:.0f} GB "
        f"({rss_verdict}){why}{note}"
    )


def verdict(big: Run) -> str:
    """The target size against the issue's targets."""
    b = big.cost
    finished = b.returncode == 0
    wall_ok = finished and b.wall_s <= TARGET_WALL_S
    rss_ok = finished and b.peak_tree_rss <= TARGET_RSS
    return (
        f"{big.label}, {big.members:,} members: {b.wall_s:.0f} s of {TARGET_WALL_S:.0f} s "
        f"({'met' if wall_ok else 'NOT met'}), {b.cpu_s:.0f} CPU s, "
        f"{b.peak_tree_rss / 1e9:.2f} GB of {TARGET_RSS / 1e9:.0f} GB "
        f"({'met' if rss_ok else 'NOT met'}), exit {b.returncode}"
    )


HEADER = (
    "| run | members | offers | candidates | wall s | CPU s | peak RSS tree GiB "
    "| decisions written | members with offers | exit | load before |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)
SUMMARY = re.compile(r"from ([\d,]+) scored candidates\s+\((\d+) active\s+offers\)")


def decide_command(
    overlay: Path, at: date, bundle: Path, out: Path, db: Path, record: bool
) -> list[str]:
    return nbo_command(
        "decide",
        "--data",
        str(overlay),
        "--at",
        at.isoformat(),
        "--model",
        str(bundle),
        "--out",
        str(out),
        "--record" if record else "--no-record",
        "--database-url",
        f"sqlite:///{db}",
    )


def timed_decide(
    work: Path, overlay: Path, members: int, at: date, bundle: Path, *, record: bool, rss_limit: int
) -> Run:
    """Run ``nbo decide`` once as a measured child process (fresh output and history file)."""
    runs = work / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    kind = "record" if record else "no-record"
    out = runs / f"decisions-{members}-{kind}.parquet"
    db = work / (f"history-{members}.db" if record else f"runs/empty-{members}.db")
    out.unlink(missing_ok=True)
    db.unlink(missing_ok=True)
    log = runs / f"decide-{members}-{kind}.log"
    command = decide_command(overlay, at, bundle, out, db, record)
    print(f"timing: {' '.join(command)}", flush=True)
    env = child_env() | {"COLUMNS": "200"}  # the job's summary line unwrapped in the log
    cost = run_measured(command, log, env=env, cwd=runs, rss_limit=rss_limit)
    text = log.read_text()
    if cost.killed:
        print(f"killed: the process tree went over {rss_limit / GIB:.1f} GiB RSS", flush=True)
    elif cost.returncode != 0:
        print(f"nbo decide failed ({cost.returncode}); log tail:\n{text[-3000:]}", flush=True)
    found = SUMMARY.search(text)
    decisions = reached = 0
    if cost.returncode == 0 and out.is_file():
        written = pl.scan_parquet(out).select(rows=pl.len(), members=pl.col("member_id").n_unique())
        decisions, reached = written.collect().row(0)
    return Run(
        label=f"{kind}{' (SQLite)' if record else ''}",
        members=members,
        offers=found.group(2) if found else "-",
        candidates=found.group(1) if found else "-",
        decisions=decisions,
        reached=reached,
        cost=cost,
    )


def stage_seconds(overlay: Path, at: date, bundle_path: Path) -> dict[str, tuple[float, float]]:
    """``decide_batch`` in-process: wall and CPU seconds of each stage (no history, no I/O)."""
    from nbo.decisioning.policy import Policy
    from nbo.pipelines.decide import decide_batch
    from nbo.tracking.bundle import Bundle

    bundle = Bundle.load(bundle_path)
    marks: list[tuple[str, float, float]] = []

    def mark(name: str) -> None:
        marks.append((name, time.perf_counter(), time.process_time()))

    decide_batch(
        ClubData(overlay),
        bundle,
        Policy(),
        at=datetime.combine(at, datetime.min.time()),
        channel="email",
        stage=mark,
    )
    mark("end")
    return {
        name: (wall1 - wall0, cpu1 - cpu0)
        for (name, wall0, cpu0), (_, wall1, cpu1) in itertools.pairwise(marks)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--baseline-members", type=int, default=100_000)
    parser.add_argument("--train-members", type=int, default=50_000)
    parser.add_argument("--data", type=Path, default=None, help="target club to use as it is")
    parser.add_argument(
        "--at",
        type=date.fromisoformat,
        default=None,
        help="decision date (default: the day after the last receipt)",
    )
    parser.add_argument(
        "--train-as-of",
        type=date.fromisoformat,
        default=None,
        help="bundle training date (default: 28 days before --at)",
    )
    parser.add_argument("--products", type=int, default=20_000)
    parser.add_argument("--weeks", type=int, default=52)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=WORK, help="where clubs and runs are kept")
    parser.add_argument(
        "--record",
        action="store_true",
        help="also time runs that record into a fresh SQLite history",
    )
    parser.add_argument(
        "--stages",
        action="store_true",
        help="time decide_batch's stages in-process (baseline size)",
    )
    parser.add_argument("--latency-members", type=int, default=1_000, help="0: skip it")
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="bundle to use as it is (default: trained on the sibling club, once per model code)",
    )
    parser.add_argument(
        "--no-baseline", action="store_true", help="time the target size only (no ratios)"
    )
    parser.add_argument(
        "--max-rss-gib",
        type=float,
        default=None,
        help="kill a run above this RSS (default: available memory - 2 GiB)",
    )
    args = parser.parse_args()

    memory = psutil.virtual_memory()
    rss_limit = int((args.max_rss_gib or max(memory.available / GIB - 2, 1)) * GIB)
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, {memory.total / GIB:.0f} GiB "
        f"RAM ({memory.available / GIB:.1f} GiB available); date {date.today()}"
    )
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"nbo code: {Path(nbo.__file__).parent}; model code digest {model_code_digest()}")
    args.work.mkdir(parents=True, exist_ok=True)
    sizes = (args.products, args.weeks, args.seed)
    target = args.data or synth_club(args.work, args.members, *sizes)
    members = int(ClubData(target).members.select(pl.len()).collect().item())
    at = args.at or last_receipt_day(target) + timedelta(days=1)
    train_as_of = args.train_as_of or at - timedelta(days=28)
    overlays = {}
    if not args.no_baseline:
        baseline = synth_club(args.work, args.baseline_members, *sizes)
        overlays[args.baseline_members] = overlay_club(baseline, at, args.seed)
    overlays[members] = overlay_club(target, at, args.seed)
    if args.model is not None:
        bundle = args.model
    else:
        sibling = synth_club(args.work, args.train_members, *sizes)
        bundle = trained_bundle(args.work, sibling, train_as_of)
    print(
        f"\nmodel bundle: trained by `nbo train --as-of {train_as_of}` on a "
        f"{args.train_members:,}-member sibling club (same seed, products and weeks), not on "
        f"the club decided for: training on 1M members takes ~25 min, and the decision cost "
        f"does not depend on how many members the bundle was trained on.\ndecision date: {at}; "
        f"runs over {rss_limit / GIB:.1f} GiB RSS are killed (--max-rss-gib)\n"
    )
    runs: dict[tuple[bool, int], Run] = {}
    for record in (False, True) if args.record else (False,):
        for size, overlay in overlays.items():
            run = timed_decide(
                args.work, overlay, size, at, bundle, record=record, rss_limit=rss_limit
            )
            print(HEADER if not runs else "", run.row(), sep="\n", flush=True)
            runs[record, size] = run
    print()
    for record in (False, True) if args.record else (False,):
        if not args.no_baseline:
            print(scaling(runs[record, args.baseline_members], runs[record, members]))
        else:
            print(verdict(runs[record, members]))
    if args.stages and not args.no_baseline:
        print(f"\ndecide_batch stages in-process, {args.baseline_members:,} members:")
        for name, (wall, cpu) in stage_seconds(overlays[args.baseline_members], at, bundle).items():
            print(f"  {name}: {wall:.1f} s wall, {cpu:.1f} s CPU")
    if args.latency_members > 0:
        print()
        latency = member_latency(overlays[members], bundle, at, args.latency_members, args.seed)
        print(latency.report(TARGET_P99_MS))
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
