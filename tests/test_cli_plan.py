"""`nbo plan`: the day's plan with its manifest, replaced whole by a second run; bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from nbo.cli import app
from nbo.decisioning.policy import Policy
from nbo.plans import planned_days, policy_digest, read_day, read_manifest
from tests.serving.conftest import TODAY

pytestmark = pytest.mark.slow  # the registry fixture trains a model
runner = CliRunner()


def _plan(synth_club: Path, out: Path, tmp_path: Path, *args: str) -> str:
    result = runner.invoke(app, [
        "plan", "--data", str(synth_club), "--day", f"{TODAY}", "--out", str(out),
        "--database-url", f"sqlite:///{tmp_path / 'nbo.db'}", *args,
    ])  # fmt: skip
    return f"{result.exit_code}\n{result.output}"


def test_plan_writes_the_day_with_its_manifest_and_a_second_run_replaces_it(
    env: None, synth_club: Path, tmp_path: Path
) -> None:
    out = tmp_path / "plans"
    output = _plan(synth_club, out, tmp_path)
    assert output.startswith("0\n"), output
    assert "Plan for 2024-04-01" in output and f"nbo serve --plans {out}" in output
    manifest = read_manifest(out, TODAY)
    assert manifest is not None
    assert manifest["day"] == "2024-04-01" and manifest["data"]["cut"] == "2024-04-01T00:00:00"
    assert manifest["data"]["dir"] == str(synth_club.resolve())
    assert manifest["policy"] == {"file": None, "digest": policy_digest(Policy())}
    champion = manifest["models"]["champion"]
    assert champion["uri"] == "models:/nbo/1"  # the alias pinned to its registry version
    assert champion["version"].startswith("run:")  # what decisions record as model_version
    assert champion["as_of"].startswith("2024-04-01") and champion["rows"]["email"] > 0
    assert manifest["channels"] == ["app", "email", "pos"]
    assert manifest["shards"] == {"count": 1, "hash": "splitmix64(member_id) mod shards"}
    assert manifest["counts"]["members"] > 250 and manifest["counts"]["offers"] > 0

    again = _plan(synth_club, out, tmp_path, "--channel", "email", "--shards", "2")
    assert again.startswith("0\n"), again
    replaced = read_manifest(out, TODAY)
    assert replaced is not None and replaced["plan_id"] != manifest["plan_id"]
    assert replaced["channels"] == ["email"] and replaced["shards"]["count"] == 2
    folders = sorted(p.name for p in out.iterdir())
    assert folders == [f".{TODAY}.{replaced['plan_id']}", f"{TODAY}"]
    assert planned_days(out) == [TODAY]
    plan = read_day(out, TODAY)
    assert list(plan.arms["champion"].plans) == ["email"] and plan.shards == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--day", "2024-03-01"], "before the champion model's training date"),
        (["--day", "April"], "--day 'April' is not a date"),
        (["--day", f"{TODAY}", "--channel", "pigeon"], "pigeon"),
        (["--day", f"{TODAY}", "--model", "models:/nbo@nobody"], "no alias 'nobody'"),
    ],
)
def test_plan_refuses_bad_input_with_exit_2(
    env: None, synth_club: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "plans"
    result = runner.invoke(app, ["plan", "--data", str(synth_club), "--out", str(out), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not out.exists() or planned_days(out) == []
