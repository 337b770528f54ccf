"""`nbo plan --engine ray`: one Ray task per member shard, the same plan as `--engine local`."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from nbo.cli import app
from nbo.plans import DayPlan, MemberRows, read_day
from nbo.plans.arrays import read_arrays
from nbo.plans.writer import write_rows
from tests.serving.conftest import TODAY

runner = CliRunner()
SHARDS = "3"
FLOAT_RTOL, FLOAT_ATOL = 1e-12, 1e-12


def plan_cli(synth_club: Path, out: Path, tmp_path: Path, *args: str) -> str:
    result = runner.invoke(app, [
        "plan", "--data", str(synth_club), "--day", f"{TODAY}", "--out", str(out),
        "--database-url", f"sqlite:///{tmp_path / 'nbo.db'}", "--shards", SHARDS, *args,
    ])  # fmt: skip
    return f"{result.exit_code}\n{result.output}"


def _assert_same(local: Any, ray: Any, where: str) -> None:
    """Equal, field by field and array by array (NaN and NaT equal to themselves), floats
    within ``FLOAT_RTOL`` / ``FLOAT_ATOL``."""
    if dataclasses.is_dataclass(local):
        for field in dataclasses.fields(local):
            _assert_same(
                getattr(local, field.name), getattr(ray, field.name), f"{where}.{field.name}"
            )
    elif isinstance(local, dict):
        assert local.keys() == ray.keys(), where
        for key in local:
            _assert_same(local[key], ray[key], f"{where}[{key}]")
    elif isinstance(local, list):
        assert len(local) == len(ray), where
        for k, (a, b) in enumerate(zip(local, ray, strict=True)):
            _assert_same(a, b, f"{where}[{k}]")
    elif isinstance(local, np.ndarray) and local.dtype.kind == "f":
        # a sum's last bits depend on polars' thread count (see nbo.pipelines.plan_shards)
        np.testing.assert_allclose(local, ray, FLOAT_RTOL, FLOAT_ATOL, err_msg=where, strict=True)
    elif isinstance(local, np.ndarray):
        assert local.dtype == ray.dtype, where
        np.testing.assert_array_equal(local, ray, err_msg=where, strict=True)
    elif isinstance(local, float):
        assert ray == pytest.approx(local, rel=FLOAT_RTOL, abs=FLOAT_ATOL), where
    elif hasattr(local, "equals"):  # polars frames
        assert local.equals(ray), where
    else:
        assert local == ray, where


@pytest.fixture
def local_ray() -> Iterator[None]:
    import ray  # an extra that make install installs: its absence is a failure, not a skip

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.slow  # the registry fixture trains a model
def test_ray_engine_gives_the_local_plan(
    env: None, synth_club: Path, tmp_path: Path, local_ray: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    local_out, ray_out = tmp_path / "local", tmp_path / "ray"
    output = plan_cli(synth_club, local_out, tmp_path, "--engine", "local")
    assert output.startswith("0\n"), output
    monkeypatch.setenv("NBO_ENGINE", "ray")  # the option's environment variable
    output = plan_cli(synth_club, ray_out, tmp_path)
    assert output.startswith("0\n"), output
    assert "Plan for 2024-04-01" in output and f"in {SHARDS} shard(s)" in output

    local, ray = read_day(local_out, TODAY), read_day(ray_out, TODAY)
    assert ray.shards == int(SHARDS) and all(m.size for m in ray.members)
    assert sum(p.rows for p in ray.arms["champion"].plans["email"]) > 0
    for field in dataclasses.fields(DayPlan):
        if field.name != "manifest":
            _assert_same(getattr(local, field.name), getattr(ray, field.name), field.name)
    assert local.manifest.keys() == ray.manifest.keys()
    for key in local.manifest.keys() - {"plan_id", "created_at"}:
        _assert_same(local.manifest[key], ray.manifest[key], f"manifest[{key}]")
    # the draft's work files are gone: the day's folder holds the plan only
    assert not any(p.name.startswith(".") for p in (ray_out / f"{TODAY}").resolve().iterdir())


def test_a_shard_written_again_is_replaced_whole(tmp_path: Path) -> None:
    """What makes a retried shard task safe: its files are replaced whole, nothing left over."""

    def rows(member_ids: list[int]) -> MemberRows:
        ids = np.array(member_ids, dtype=np.int64)
        starts = np.arange(ids.size + 1, dtype=np.int64)
        return MemberRows(ids, starts, {"score": ids.astype(np.float64)}, {})

    folder = tmp_path / "champion" / "recommendations" / "00001"
    folder.parent.mkdir(parents=True)
    write_rows(rows([1, 2, 3]), folder)
    write_rows(rows([7]), folder)
    again = read_arrays(MemberRows, folder)
    assert again.member_ids.tolist() == [7] and again.columns["score"].tolist() == [7.0]
    assert [p.name for p in folder.parent.iterdir()] == ["00001"]
