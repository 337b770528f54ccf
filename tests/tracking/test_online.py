"""The live experiment in MLflow: ``nbo experiment report`` logs one run to ``nbo-online`` whose
numbers are the report's, computed from a real history of decisions and events."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import mlflow
import polars as pl
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from nbo.cli import app
from nbo.evaluation.experiment import arm_report, arm_report_over_time
from nbo.history import InteractionStore
from nbo.history.logs import experiment_log
from nbo.tracking.online import ONLINE_EXPERIMENT, REPORT_METRICS

runner = CliRunner()
T0 = datetime(2024, 4, 1, 9)
VERSIONS = {"champion": "run:aaa", "challenger": "run:bbb"}


def _history(url: str) -> None:
    """60 members: 0-9 holdout, 10-39 champion, 40-59 challenger, assigned over two weeks;
    redemptions in the first and the third week."""
    arms = {m: "holdout" if m < 10 else "champion" if m < 40 else "challenger" for m in range(60)}
    assigned = {m: T0 + timedelta(days=m % 14) for m in arms}
    served = [m for m, arm in arms.items() if arm != "holdout"]
    decided = pl.DataFrame(
        {
            "decision_id": [f"d{m}" for m in served],
            "member_id": served,
            "offer_id": ["o1"] * len(served),
            "campaign_id": ["C1"] * len(served),
            "channel": ["app"] * len(served),
            "decided_at": [assigned[m] for m in served],
            "rank": [1] * len(served),
            "p_redeem": [0.2] * len(served),
            "expected_value": [1.0] * len(served),
            "propensity": [1.0] * len(served),
            "explored": [False] * len(served),
            "arm": [arms[m] for m in served],
            "model_version": [VERSIONS[arms[m]] for m in served],
        }
    )
    redeemers = [2, *range(10, 22), *range(40, 45)]
    with InteractionStore(url) as store:
        store.record_decisions(decided)
        store.record_online(
            [],
            [{"member_id": m, "arm": arm, "assigned_at": assigned[m]} for m, arm in arms.items()],
        )
        store.record_events(
            [{"event_id": f"e{m}", "event_type": "redemption", "member_id": m, "offer_id": "o1",
              "ts": assigned[m] + timedelta(days=1 + 7 * (m % 2)), "amount": 1.5 + m % 3}
             for m in redeemers]
        )  # fmt: skip


@pytest.fixture
def tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def test_report_logs_one_run_with_the_reports_numbers(tmp_path: Path, tracking: str) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    _history(url)
    result = runner.invoke(app, ["experiment", "report", "--database-url", url, "--every", "7"])
    assert result.exit_code == 0, result.output
    assert f"logged to MLflow experiment {ONLINE_EXPERIMENT}" in result.output

    with InteractionStore(url) as store:
        logged = experiment_log(store.engine)
    report = arm_report(logged)
    assert set(report["arm"]) == {"champion", "challenger", "holdout"}

    mlflow.set_tracking_uri(tracking)
    client = MlflowClient()
    experiment = client.get_experiment_by_name(ONLINE_EXPERIMENT)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    metrics = run.data.metrics
    for row in report.iter_rows(named=True):
        for column, name in REPORT_METRICS.items():
            assert metrics[f"{row['arm']}_{name}"] == pytest.approx(row[column]), name
    # the holdout's lift over itself is 0; the champion's 12/30 − 1/10 with an interval around it
    assert metrics["champion_lift_over_holdout"] == pytest.approx(12 / 30 - 1 / 10)
    assert metrics["champion_lift_over_holdout_ci_low"] < 0.3 < metrics[
        "champion_lift_over_holdout_ci_high"
    ]  # fmt: skip
    assert metrics["champion_redemptions"] == 12
    assert run.data.params["champion_model_versions"] == "run:aaa"
    assert run.data.params["challenger_model_versions"] == "run:bbb"
    assert run.data.params["since"] == "all"

    # over time: one step per week, each the report as it stood then
    over_time = arm_report_over_time(logged, timedelta(days=7))
    history = client.get_metric_history(run.info.run_id, "over_time/champion_redemption_rate")
    expected = over_time.filter(pl.col("arm") == "champion").sort("period_end")
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(
        expected["redemption_rate"].to_list()
    )
    assert len(history) >= 3  # assignments over two weeks, redemptions into the third
    assert [m.timestamp for m in sorted(history, key=lambda m: m.step)] == [
        int(end.timestamp() * 1000) for end in expected["period_end"]
    ]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert artifacts == {
        "plots/redemption_rate.png",
        "plots/lift_over_holdout.png",
        "plots/spend_per_member.png",
    }
    tables = {a.path for a in client.list_artifacts(run.info.run_id, "tables")}
    assert "tables/arms.json" in tables


def test_report_over_time_counts_only_what_was_known_at_each_period_end(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    _history(url)
    with InteractionStore(url) as store:
        logged = experiment_log(store.engine)
    over_time = arm_report_over_time(logged, timedelta(days=7))
    first = over_time.filter(pl.col("period_end") == over_time["period_end"].min())
    # members assigned in the first week: day m % 14 < 7 of the cycle
    week_one = [m for m in range(60) if m % 14 < 7]
    assert dict(first.select("arm", "members").iter_rows()) == {
        "holdout": sum(m < 10 for m in week_one),
        "champion": sum(10 <= m < 40 for m in week_one),
        "challenger": sum(m >= 40 for m in week_one),
    }
    last = over_time.filter(pl.col("period_end") == over_time["period_end"].max())
    report = arm_report(logged)
    assert last.drop("period_end").sort("arm").equals(report.sort("arm"))


def test_no_log_leaves_mlflow_alone(tmp_path: Path, tracking: str) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    _history(url)
    result = runner.invoke(app, ["experiment", "report", "--database-url", url, "--no-log"])
    assert result.exit_code == 0, result.output
    assert "logged to MLflow" not in result.output
    assert not (tmp_path / "mlflow.db").exists()
