"""`nbo evaluate` reports the routine share of its decisions per objective (issue 14)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nbo.cli import app

runner = CliRunner()


def test_evaluate_reports_the_routine_share_of_its_decisions(env: None, synth_club: Path) -> None:
    import mlflow

    from nbo.data.io import ClubData
    from nbo.decisioning.policy import Policy
    from nbo.evaluation.routine import routine_share
    from nbo.features.history import History
    from nbo.pipelines.decide import decide_batch
    from nbo.tracking.registry import configure, load_bundle

    result = runner.invoke(
        app,
        ["evaluate", "--data", str(synth_club), "--as-of", "2024-04-01",
         "--model", "models:/nbo@champion", "--experiment", "evaluate-routine-test"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "routine share" in result.output
    assert "incremental_margin" in result.output and "revenue" in result.output
    runs = mlflow.search_runs(experiment_names=["evaluate-routine-test"], output_format="list")
    metrics = runs[0].data.metrics

    # the same decisions, made here: the logged figures are theirs
    configure()
    bundle = load_bundle("models:/nbo@champion")
    club, at = ClubData(synth_club), datetime(2024, 4, 1)
    for objective, suffix in (("incremental_margin", ""), ("revenue", "_revenue")):
        policy = Policy().with_objective(objective)
        decisions = decide_batch(
            club, bundle, policy, at=at, channel="email", run_id="evaluate-20240401"
        ).result.decisions
        assert decisions.height > 0
        share = metrics[f"decisions.routine_share{suffix}"]
        assert 0.0 <= share <= 1.0
        assert share == pytest.approx(routine_share(decisions, History.at(club, at)))
        assert metrics[f"decisions.count{suffix}"] == decisions.height
        assert metrics[f"decisions.members{suffix}"] == decisions["member_id"].n_unique()
        buckets = ("weeks_0", "weeks_1_3", "weeks_4", "weeks_5_8")
        assert sum(metrics[f"decisions.{b}{suffix}"] for b in buckets) == decisions.height
        routine = metrics[f"decisions.weeks_4{suffix}"] + metrics[f"decisions.weeks_5_8{suffix}"]
        assert share == pytest.approx(routine / decisions.height)
        low, high = (metrics[f"decisions.routine_share_{b}{suffix}"] for b in ("low", "high"))
        assert low <= share <= high
        assert f"{decisions.height:,}" in result.output
