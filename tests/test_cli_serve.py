"""`nbo serve` refuses bad configuration cleanly; `nbo experiment report` reads the history."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nbo.cli import app
from nbo.cli.common import console
from nbo.history import InteractionStore

runner = CliRunner()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "no API keys configured"),
        ({"NBO_API_KEYS": '{"k": "boss"}'}, "NBO_API_KEYS"),
        ({"NBO_API_KEYS": "not json"}, "NBO_API_KEYS"),
        ({"NBO_API_KEYS": '{"k": "admin"}', "NBO_HOLDOUT_SHARE": "2"}, "NBO_HOLDOUT_SHARE"),
        ({"NBO_API_KEYS": '{"k": "admin"}', "NBO_PLAN_DIR": "/nowhere"}, "/nowhere"),
    ],
)
def test_serve_refuses_bad_settings_with_exit_2(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name in ("NBO_API_KEYS", "NBO_PLAN_DIR", "NBO_HOLDOUT_SHARE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = runner.invoke(app, ["serve", "--port", "1"])
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and message in result.output
    assert "Traceback" not in result.output


def test_serve_names_a_missing_plan_directory_with_the_command_that_makes_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("NBO_API_KEYS", '{"k": "admin"}')
    monkeypatch.setenv("NBO_TODAY", "2024-04-01")
    nowhere = tmp_path / "plans"
    result = runner.invoke(
        app, ["serve", "--port", "1", "--plans", str(nowhere), "--data", "data/club"]
    )
    assert result.exit_code == 2
    assert str(nowhere) in result.output
    assert f"nbo plan --data data/club --day 2024-04-01 --out {nowhere}" in result.output


def test_serve_refuses_a_plan_made_under_another_policy(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from nbo.plans import write_day
    from tests.plans.test_store import DAY, day_plan, tiny_plan

    write_day(day_plan(tiny_plan([-1, 1, 2])), tmp_path, policy={"digest": "sha256:other"})
    monkeypatch.setenv("NBO_API_KEYS", '{"k": "admin"}')
    monkeypatch.setenv("NBO_TODAY", f"{DAY}")
    result = runner.invoke(app, ["serve", "--port", "1", "--plans", str(tmp_path)])
    assert result.exit_code == 2
    assert "another policy" in result.output and "--policy" in result.output


def test_experiment_report_per_arm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "width", 80)  # fits an ordinary terminal
    # the report is logged to MLflow: to this test's store, not the checkout's
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    url = f"sqlite:///{tmp_path / 'h.db'}"
    t0 = datetime(2024, 4, 1, 9)
    with InteractionStore(url) as store:
        store.record_online(
            [], [{"member_id": m, "arm": "holdout" if m < 10 else "champion", "assigned_at": t0}
                 for m in range(40)],
        )  # fmt: skip
        store.record_events(
            [{"event_id": f"e{m}", "event_type": "redemption", "member_id": m, "offer_id": "o",
              "ts": datetime(2024, 4, 2), "amount": 1.5} for m in (1, 12, 13, 14)]
        )  # fmt: skip
    result = runner.invoke(app, ["experiment", "report", "--database-url", url])
    assert result.exit_code == 0, result.output
    lines = {line.split("│")[1].strip(): line for line in result.output.splitlines()
             if line.count("│") > 5}  # fmt: skip
    assert "0.1000" in lines["holdout"] and "0.1000" in lines["champion"]  # 1/10 and 3/30
    bad = runner.invoke(app, ["experiment", "report", "--database-url", url, "--since", "May"])
    assert bad.exit_code == 2 and "--since" in bad.output
