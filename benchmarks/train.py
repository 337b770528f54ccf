"""Benchmark ``nbo train``: wall time and peak memory of the whole training job.

Runs ``nbo train --data DIR --as-of DATE`` as a child process in a fresh working directory
under /tmp (so its MLflow store is throw-away) and prints one markdown row. The dataset is the
Complete Journey import by default, or a synthetic club generated first (not timed).

    .venv/bin/python benchmarks/train.py                                  # Complete Journey
    .venv/bin/python benchmarks/train.py --synth-members 1000000 --as-of 2024-12-02
    .venv/bin/python benchmarks/train.py --data /tmp/synth1m --as-of 2024-12-02
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

import psutil
from measure import GIB, run_measured

NBO = str(Path(sys.executable).with_name("nbo"))


def prepare(work: Path, synth_members: int | None, weeks: int) -> Path:
    data = work / "club"
    if synth_members:
        args = [
            "data",
            "synth",
            "--members",
            str(synth_members),
            "--products",
            "20000",
            "--weeks",
            str(weeks),
            "--seed",
            "0",
            str(data),
        ]
    else:
        args = ["data", "import", "completejourney", str(data)]
    subprocess.run([NBO, *args], check=True, stdout=subprocess.DEVNULL)
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="use this dataset as it is")
    parser.add_argument("--synth-members", type=int, default=None)
    parser.add_argument("--weeks", type=int, default=52)
    parser.add_argument("--as-of", default="2017-09-04")
    args = parser.parse_args()

    memory = psutil.virtual_memory().total / GIB
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, {memory:.0f} GiB RAM")
    work = Path(tempfile.mkdtemp(prefix="nbo-bench-train-", dir="/tmp"))
    try:
        data = args.data or prepare(work, args.synth_members, args.weeks)
        command = [NBO, "train", "--data", str(data), "--as-of", args.as_of]
        print(f"command: {' '.join(command)}  (cwd {work})")
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        run = run_measured(command, work / "train.log", env=env, cwd=work)
        log = (work / "train.log").read_text()
        if run.returncode != 0:
            raise SystemExit(f"nbo train failed ({run.returncode}):\n{log[-4000:]}")
        print(log[-6000:])
        dataset = (
            str(args.data)
            if args.data
            else f"synthetic {args.synth_members:,} members"
            if args.synth_members
            else "CJ"
        )
        print("| date | dataset | as of | wall s | CPU s | peak RSS tree GiB | load before |")
        print("|---|---|---|---:|---:|---:|---:|")
        print(
            f"| {date.today()} | {dataset} | {args.as_of} | {run.wall_s:.1f} | {run.cpu_s:.1f} "
            f"| {run.peak_tree_rss / GIB:.2f} | {run.load_before:.1f} |"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
