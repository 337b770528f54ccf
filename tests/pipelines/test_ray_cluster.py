"""`nbo decide --engine ray` on a two-node Ray cluster on this machine, with a worker killed
mid-run: Ray runs the killed chunk's task again and the decisions are the local engine's
(issue 17)."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import psutil
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from nbo.cli import app
from tests.pipelines.test_plan_engine import plan_cli

runner = CliRunner()
AT = "2024-04-01"
MEMBERS_PER_CHUNK = "100"  # three chunks of the 300-member synthetic club
TASK_TITLE = "ray::_score_chunk"  # what Ray names a worker's process while it runs a chunk
FLOAT_TOL = 1e-12  # a sum's last bits depend on polars' thread count (nbo.pipelines.plan_shards)


class WorkerKiller(threading.Thread):
    """Kills (SIGKILL) the first worker process it finds running a chunk's task, once."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.killed: list[int] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set() and not self.killed:
            for process in psutil.process_iter(["cmdline"]):
                title = " ".join(process.info["cmdline"] or ())
                if title.startswith(TASK_TITLE):
                    os.kill(process.pid, signal.SIGKILL)
                    self.killed.append(process.pid)
                    break
            self.done.wait(0.01)


def _decide(synth_club: Path, out: Path, tmp_path: Path, *args: str) -> str:
    result = runner.invoke(app, [
        "decide", "--data", str(synth_club), "--at", AT, "--out", str(out), "--no-record",
        "--database-url", f"sqlite:///{tmp_path / 'nbo.db'}",
        "--members-per-chunk", MEMBERS_PER_CHUNK, *args,
    ])  # fmt: skip
    return f"{result.exit_code}\n{result.output}"


@pytest.fixture
def two_nodes() -> Iterator[Any]:
    """A head node and a second node, 1 CPU each, this process connected as the driver."""
    from ray.cluster_utils import Cluster  # an extra make install installs: failure, not skip

    cluster = Cluster(
        initialize_head=True,
        connect=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False},
    )
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        import ray

        ray.shutdown()
        cluster.shutdown()  # type: ignore[no-untyped-call]


@pytest.mark.slow  # the registry fixture trains a model
def test_decide_on_two_nodes_survives_a_killed_worker(
    env: None, synth_club: Path, tmp_path: Path, two_nodes: Any
) -> None:
    local_out, ray_out = tmp_path / "local" / "decisions.parquet", tmp_path / "ray" / "out.parquet"
    output = _decide(synth_club, local_out, tmp_path, "--engine", "local")
    assert output.startswith("0\n"), output

    killer = WorkerKiller()
    killer.start()
    try:
        output = _decide(synth_club, ray_out, tmp_path, "--engine", "ray",
                         "--ray-address", two_nodes.address)  # fmt: skip
    finally:
        killer.done.set()
        killer.join()
    assert output.startswith("0\n"), output
    assert len(killer.killed) == 1  # the run above lost a worker mid-task
    assert "scored 3 member chunk(s) as Ray tasks on 2 node(s)" in output

    local, ray = pl.read_parquet(local_out), pl.read_parquet(ray_out)
    assert local.height > 0
    floats = [name for name, dtype in local.schema.items() if dtype.is_float()]
    # ids, members, offers, ranks, flags, times and texts exactly; floats to their last bits
    assert local.drop(floats).equals(ray.drop(floats))
    assert_frame_equal(local, ray, rel_tol=FLOAT_TOL, abs_tol=FLOAT_TOL)
    # the tasks' work folder is gone: beside the output only the output
    assert [p.name for p in ray_out.parent.iterdir()] == [ray_out.name]


@pytest.mark.parametrize("command", ["decide", "plan"])
def test_ray_engine_without_ray_installed_is_a_clear_error(
    command: str, synth_club: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    out = tmp_path / "out"
    if command == "decide":
        output = _decide(synth_club, out, tmp_path, "--engine", "ray")
    else:
        output = plan_cli(synth_club, out, tmp_path, "--engine", "ray")
    assert output.startswith("2\n"), output
    assert "pip install 'nbo[ray]'" in output and "Traceback" not in output
    assert not out.exists()
