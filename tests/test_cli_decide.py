"""`nbo decide` and `nbo history` round trips on a small synthetic club."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from nbo.cli import app
from nbo.cli.decide import OUTPUT_COLUMNS
from nbo.history import InteractionStore
from nbo.history.logs import logged_decisions
from nbo.pipelines.decide import campaign_summary

runner = CliRunner()
AT = "2024-04-01"


def _decide(synth_club: Path, tmp_path: Path, *extra: str) -> tuple[int, str, Path, str]:
    out = tmp_path / "decisions.parquet"
    db = f"sqlite:///{tmp_path / 'history.db'}"
    args = ["decide", "--data", str(synth_club), "--at", AT, "--out", str(out)]
    result = runner.invoke(app, [*args, "--database-url", db, *extra])
    return result.exit_code, result.output, out, db


def test_decide_writes_records_and_summarises(env: None, synth_club: Path, tmp_path: Path) -> None:
    code, output, out, db = _decide(synth_club, tmp_path, "--examples", "2")
    assert code == 0, output
    decisions = pl.read_parquet(out)
    assert decisions.columns == list(OUTPUT_COLUMNS)
    assert decisions.height > 0
    assert decisions["decision_id"].is_unique().all()
    assert decisions.group_by("member_id").len()["len"].max() <= 3
    campaigns = pl.read_parquet(synth_club / "campaigns.parquet")
    active = campaigns.filter(
        (pl.col("start_date") <= datetime(2024, 4, 1).date())
        & (pl.col("end_date") >= datetime(2024, 4, 1).date())
    )["campaign_id"]
    assert decisions["campaign_id"].is_in(active.implode()).all()
    assert (decisions["send_at"] >= datetime(2024, 4, 1)).all()
    assert "Decisions per campaign" in output
    assert "of the upper bound" in output
    # the synthetic club has no randomized exposure: the uplift is the flagged assumption
    assert not decisions["uplift_measured"].any()
    assert decisions["reason"].str.ends_with("(assumed)").all()
    assert "uplift assumed, not measured" in output
    assert (decisions["incremental_value"] > -decisions["expected_cost"] - 1e-9).all()
    summary = campaign_summary(decisions)
    assert summary["incremental_value"].sum() == pytest.approx(decisions["incremental_value"].sum())
    with InteractionStore(db) as store:
        member = int(decisions["member_id"][0])
        recorded = store.decisions_for(member)
    assert set(recorded["decision_id"]) == set(
        decisions.filter(pl.col("member_id") == member)["decision_id"]
    )


def test_decide_respects_a_budget_and_the_history(
    env: None, synth_club: Path, tmp_path: Path
) -> None:
    code, output, out, _ = _decide(synth_club, tmp_path, "--no-record")
    assert code == 0, output
    first = pl.read_parquet(out)
    busiest = first.group_by("campaign_id").len().sort("len", descending=True)["campaign_id"][0]
    policy = tmp_path / "policy.yaml"
    policy.write_text(f'campaigns:\n  "{busiest}":\n    max_audience: 5\n', encoding="utf-8")
    code, output, out, _ = _decide(synth_club, tmp_path, "--no-record", "--policy", str(policy))
    assert code == 0, output
    capped = pl.read_parquet(out)
    assert capped.filter(pl.col("campaign_id") == busiest).height <= 5


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--policy", "missing.yaml"], "no such policy file"),
        (["--channel", "pigeon"], "unknown channel 'pigeon'"),
        (["--campaign", "NOPE"], "--campaign 'NOPE' is not in the club's campaigns"),
        (["--database-url", "mysql://x@localhost/db"], "not supported"),
    ],
)
def test_decide_bad_input_exits_2(
    env: None, synth_club: Path, tmp_path: Path, extra: list[str], message: str
) -> None:
    code, output, out, _ = _decide(synth_club, tmp_path, *extra)
    assert code == 2, output
    assert message in " ".join(output.split())
    assert not out.exists()


def test_bad_policy_names_the_key(env: None, synth_club: Path, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("contact:\n  cooldown_dayz: 3\n", encoding="utf-8")
    code, output, _, _ = _decide(synth_club, tmp_path, "--policy", str(policy))
    assert code == 2
    assert "contact.cooldown_dayz" in output


def test_history_migrate(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'h' / 'nbo.db'}"
    result = runner.invoke(app, ["history", "migrate", "--database-url", db])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "h" / "nbo.db").is_file()


def test_deciding_the_same_day_twice_records_nothing_twice(
    env: None, synth_club: Path, tmp_path: Path
) -> None:
    code, output, out, db = _decide(synth_club, tmp_path)
    assert code == 0, output
    first = pl.read_parquet(out)
    assert first["decision_id"].str.starts_with(f"{AT.replace('-', '')}-email-").all()
    code, again, out, _ = _decide(synth_club, tmp_path)
    assert code == 0, again
    second = pl.read_parquet(out)
    # deterministic ids: the same decisions, and none of them stored a second time
    assert second.select("decision_id", "offer_id").equals(first.select("decision_id", "offer_id"))
    assert "recorded 0 decisions" in again
    assert "already recorded by an earlier run" in again
    with InteractionStore(db) as store:
        logged = logged_decisions(store.engine)
    assert logged.height == first.height
