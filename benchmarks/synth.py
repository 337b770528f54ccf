"""Benchmark the synthetic club generator: wall time and peak memory of the whole process tree.

Runs ``nbo data synth`` (or, without the console script, ``python -m nbo.cli``) in a child
process for a baseline size and the target size, polls the RSS of the child and all its
descendants (the generator's worker processes) with psutil, and prints one markdown row per
run. Output goes to a fresh directory under /tmp that is deleted afterwards.

    .venv/bin/python benchmarks/synth.py                      # 100k baseline, then 1M members
    .venv/bin/python benchmarks/synth.py --members 200000 --baseline-members 20000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import psutil
from measure import GIB, run_measured


@dataclass(frozen=True)
class Run:
    """What one generator run cost."""

    members: int
    weeks: int
    products: int
    lines: int
    wall_s: float
    cpu_s: float  # user + system of the whole tree
    peak_tree_rss: int  # bytes: the largest sum of RSS over the tree at one poll
    # bytes: the largest single process so far (kernel high-water mark over all waited-for
    # descendants of this script, so run the smaller size first)
    peak_process_rss: int
    load_before: float  # 1-minute load average when the run started (other work on the box)

    def row(self) -> str:
        return (
            f"| {date.today().isoformat()} | {self.members:,} | {self.weeks} | {self.products:,} "
            f"| {self.lines:,} | {self.wall_s:.1f} | {self.cpu_s:.1f} "
            f"| {self.peak_tree_rss / GIB:.2f} | {self.peak_process_rss / GIB:.2f} "
            f"| {self.lines / self.wall_s / 1e6:.2f} | {self.load_before:.1f} |"
        )


HEADER = (
    "| date | members | weeks | products | lines | wall s | CPU s | peak RSS tree GiB "
    "| peak RSS process GiB | M lines/s | load before |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def _command(out_dir: Path, members: int, products: int, weeks: int, seed: int) -> list[str]:
    sizes = {"--members": members, "--products": products, "--weeks": weeks, "--seed": seed}
    args = ["data", "synth", *(str(x) for item in sizes.items() for x in item), str(out_dir)]
    console_script = Path(sys.executable).with_name("nbo")
    if console_script.is_file():
        return [str(console_script), *args]
    return [sys.executable, "-c", "from nbo.cli import app; app()", *args]


def measure(members: int, products: int, weeks: int, seed: int) -> Run:
    """Generate one club in a child process under /tmp and measure it; the output is deleted."""
    work = Path(tempfile.mkdtemp(prefix="nbo-bench-synth-", dir="/tmp"))
    out_dir = work / "club"
    log = work / "synth.log"
    try:
        run = run_measured(_command(out_dir, members, products, weeks, seed), log)
        code = run.returncode
        if code != 0:
            raise SystemExit(f"generator failed ({code}):\n{log.read_text()[-3000:]}")
        manifest = json.loads((out_dir / "manifest.json").read_text())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Run(
        members=members,
        weeks=weeks,
        products=products,
        lines=int(manifest["rows"]["transactions"]),
        wall_s=run.wall_s,
        cpu_s=run.cpu_s,
        peak_tree_rss=run.peak_tree_rss,
        peak_process_rss=run.peak_process_rss,
        load_before=run.load_before,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--baseline-members", type=int, default=100_000)
    parser.add_argument("--products", type=int, default=20_000)
    parser.add_argument("--weeks", type=int, default=52)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    memory = psutil.virtual_memory().total / GIB
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, {memory:.0f} GiB RAM")
    command = _command(Path("/tmp/OUT"), args.members, args.products, args.weeks, args.seed)
    print(f"command: {' '.join(command)}")
    print()
    print(HEADER, flush=True)
    runs = []
    for members in (args.baseline_members, args.members):
        run = measure(members, args.products, args.weeks, args.seed)
        runs.append(run)
        print(run.row(), flush=True)
    base, target = runs
    print()
    print(
        f"scaling: {target.members / base.members:.1f}x members -> "
        f"{target.wall_s / base.wall_s:.1f}x wall time, "
        f"{target.peak_tree_rss / base.peak_tree_rss:.1f}x peak tree RSS"
    )


if __name__ == "__main__":
    main()
