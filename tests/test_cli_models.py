"""Model commands round trip: train → promote → recommend / score-offers / forecast-visits."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from nbo.cli import app

runner = CliRunner()


def test_recommend(env: None, synth_club: Path, tmp_path: Path) -> None:
    out = tmp_path / "recs.parquet"
    result = runner.invoke(
        app,
        [
            "recommend",
            "--data",
            str(synth_club),
            "--at",
            "2024-04-01",
            "--k",
            "5",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    recs = pl.read_parquet(out)
    assert recs.columns[:5] == ["member_id", "rank", "product_id", "score", "reason"]
    assert recs.group_by("member_id").len()["len"].max() == 5


def test_evaluate_reports_ratios_to_p_topfreq_with_intervals(env: None, synth_club: Path) -> None:
    import mlflow

    result = runner.invoke(
        app,
        [
            "evaluate",
            "--data",
            str(synth_club),
            "--as-of",
            "2024-04-01",
            "--model",
            "models:/nbo@champion",
            "--experiment",
            "evaluate-test",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "P-TopFreq" in result.output and "95 % interval" in result.output
    runs = mlflow.search_runs(experiment_names=["evaluate-test"], output_format="list")
    metrics = runs[0].data.metrics
    # the baseline against itself: ratio 1 in every bootstrap draw
    for key in ("recall_ratio", "recall_ratio_low", "recall_ratio_high"):
        assert metrics[f"P-TopFreq.{key}"] == pytest.approx(1.0)
    for prefix in ("nbo.recall_ratio", "nbo.ndcg_ratio", "holdout_visit_mae_ratio"):
        assert metrics[f"{prefix}_low"] <= metrics[prefix] <= metrics[f"{prefix}_high"]
    assert metrics["nbo.recall_ratio"] == pytest.approx(
        metrics["nbo.recall_at_10"] / metrics["P-TopFreq.recall_at_10"]
    )


def test_score_offers(env: None, synth_club: Path, tmp_path: Path) -> None:
    offers = pl.read_parquet(synth_club / "offers.parquet")["offer_id"].head(2).to_list()
    pairs = tmp_path / "pairs.parquet"
    pl.DataFrame(
        {"member_id": [1, 2], "offer_id": offers, "at": ["2024-04-01", "2024-04-08"]}
    ).with_columns(pl.col("at").str.to_datetime()).write_parquet(pairs)
    out = tmp_path / "scores.parquet"
    result = runner.invoke(
        app, ["score-offers", "--data", str(synth_club), "--pairs", str(pairs), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    scores = pl.read_parquet(out)
    assert scores.height == 2 and scores["p_redeem"].is_between(0, 1).all()


def test_forecast_visits(env: None, synth_club: Path, tmp_path: Path) -> None:
    out = tmp_path / "visits.parquet"
    result = runner.invoke(
        app,
        [
            "forecast-visits",
            "--data",
            str(synth_club),
            "--at",
            "2024-04-01",
            "--horizon-days",
            "28",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    visits = pl.read_parquet(out)
    assert {
        "member_id",
        "expected_visits",
        "next_visit_date",
        "preferred_weekday",
        "preferred_hour",
    } <= set(visits.columns)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--as-of", "2024-13-01"], "is not a date"),
        (["recommend", "--at", "2024-04-01", "--model", "/no/such/bundle"], "no such bundle"),
        (["score-offers", "--pairs", "MISSING"], "cannot be read as Parquet"),
    ],
)
def test_bad_input_exits_2(
    env: None, synth_club: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    args = [a.replace("MISSING", str(tmp_path / "missing.parquet")) for a in args]
    result = runner.invoke(
        app,
        [
            *args,
            "--data",
            str(synth_club),
            *([] if args[0] == "train" else ["--out", str(tmp_path / "o.parquet")]),
        ],
    )
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_score_offers_missing_column(env: None, synth_club: Path, tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.parquet"
    pl.DataFrame({"member_id": [1]}).write_parquet(pairs)
    result = runner.invoke(
        app,
        [
            "score-offers",
            "--data",
            str(synth_club),
            "--pairs",
            str(pairs),
            "--out",
            str(tmp_path / "o.parquet"),
        ],
    )
    assert result.exit_code == 2
    assert "missing column(s) at, offer_id" in result.output
