"""`nbo experiment report` (arms and incremental impact) and `nbo experiment evaluate-policy`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from nbo.cli import app
from nbo.cli.common import console
from nbo.history import InteractionStore

runner = CliRunner()


@pytest.fixture(autouse=True)
def _tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``nbo experiment report`` logs to MLflow: a store of the test's own."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")


def _table_rows(output: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in output.splitlines()
        if line.count("│") > 5
    ]


def test_report_prints_incremental_impact_per_campaign(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(console, "width", 80)
    url = f"sqlite:///{tmp_path / 'h.db'}"
    t0 = datetime(2024, 4, 1, 9)
    arms = {m: "holdout" if m < 10 else "champion" for m in range(30)}
    decided = pl.DataFrame(
        {
            "decision_id": [f"d{m}" for m in range(10, 30)],
            "member_id": list(range(10, 30)),
            "offer_id": ["o1"] * 20,
            "campaign_id": ["C1"] * 20,
            "channel": ["app"] * 20,
            "decided_at": [t0] * 20,
            "rank": [1] * 20,
            "p_redeem": [0.1] * 20,
            "expected_value": [1.0] * 20,
            "propensity": [1.0] * 20,
            "explored": [False] * 20,
            "arm": ["champion"] * 20,
            "model_version": ["1"] * 20,
        }
    )
    with InteractionStore(url) as store:
        store.record_decisions(decided)
        store.record_online(
            [], [{"member_id": m, "arm": arm, "assigned_at": t0} for m, arm in arms.items()]
        )
        # holdout: 1 of 10 redeems o1 (0.1 per member); champion: 6 of 20 (0.3 per member)
        store.record_events(
            [{"event_id": f"e{m}", "event_type": "redemption", "member_id": m, "offer_id": "o1",
              "ts": datetime(2024, 4, 2), "amount": 2.0} for m in (1, *range(10, 16))]
        )  # fmt: skip
    result = runner.invoke(app, ["experiment", "report", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert "Incremental per member vs holdout" in result.output
    rows = {(row[0], row[1]): row for row in _table_rows(result.output) if len(row) == 6}
    assert rows[("C1", "champion")][2] == "+0.2000"
    assert rows[("C1", "champion")][4] == "+0.400"  # 0.3 * 2.0 - 0.1 * 2.0
    assert rows[("all", "champion")][2] == "+0.2000"
    low, high = rows[("C1", "champion")][3].split("–")
    assert float(low) < 0.2 < float(high)


def test_report_without_a_holdout_says_so(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    with InteractionStore(url) as store:
        store.record_online([], [{"member_id": 1, "arm": "champion",
                                  "assigned_at": datetime(2024, 4, 1)}])  # fmt: skip
    result = runner.invoke(app, ["experiment", "report", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert "no holdout members" in result.output


AT = "2024-04-01"


def _estimates(output: str) -> dict[tuple[str, str], list[str]]:
    """(reward, estimator) -> the row's cells, from the evaluate-policy table."""
    return {(row[0], row[1]): row for row in _table_rows(output) if len(row) == 7}


def test_evaluate_policy_end_to_end(
    env: None, synth_club: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    monkeypatch.setattr(console, "width", 120)
    db = f"sqlite:///{tmp_path / 'history.db'}"
    out = tmp_path / "decisions.parquet"
    decided = runner.invoke(
        app, ["decide", "--data", str(synth_club), "--at", AT, "--out", str(out),
              "--database-url", db],
    )  # fmt: skip
    assert decided.exit_code == 0, decided.output
    logged = pl.read_parquet(out)
    redeemed = logged.filter(pl.col("rank") == 1).head(40)
    with InteractionStore(db) as store:
        store.record_events(
            [{"event_id": f"r{i}", "event_type": "redemption", "member_id": row["member_id"],
              "offer_id": row["offer_id"], "ts": datetime(2024, 4, 3)}
             for i, row in enumerate(redeemed.iter_rows(named=True))]
        )  # fmt: skip
    same = tmp_path / "same.yaml"
    same.write_text("slots: 3\n", encoding="utf-8")
    fewer = tmp_path / "fewer.yaml"
    fewer.write_text("slots: 1\n", encoding="utf-8")
    base = ["experiment", "evaluate-policy", "--data", str(synth_club), "--database-url", db,
            "--model", "models:/nbo@champion"]  # fmt: skip
    # MLflow: the session's temporary store (``env``), which holds the registry too
    result = runner.invoke(app, [*base, "--policy", str(same)])
    assert result.exit_code == 0, result.output
    rows = _estimates(result.output)
    members = logged["member_id"].n_unique()
    assert float(rows[("redemptions", "logged")][2]) == pytest.approx(40 / members, abs=1e-4)
    ips = rows[("redemptions", "ips")]
    low, high = (float(x) for x in ips[3].split("–"))
    assert low <= 40 / members <= high
    assert float(ips[2]) == pytest.approx(40 / members, abs=0.02)  # same policy, same seed

    other = runner.invoke(app, [*base, "--policy", str(fewer)])
    assert other.exit_code == 0, other.output
    # one offer each: only the rank-1 offers (all redeemed ones) can still be chosen
    fewer_rows = _estimates(other.output)
    assert float(fewer_rows[("redemptions", "dr")][2]) <= float(rows[("redemptions", "dr")][2])
    assert float(fewer_rows[("redemptions", "ips")][2]) > 0
    runs = mlflow.search_runs(experiment_names=["nbo-ope"], output_format="list")
    assert len(runs) == 2
    assert {r.data.params["clip"] for r in runs} == {"20.0"}
    assert len({r.data.params["policy_digest"] for r in runs}) == 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--policy", "missing.yaml"], "no such policy file"),
        (["--policy", "POLICY", "--since", "May"], "--since 'May' is not a date"),
        (["--policy", "POLICY"], "no logged decisions"),
        (["--policy", "POLICY", "--data", "nowhere"], "no imported club dataset"),
    ],
)
def test_evaluate_policy_bad_input_exits_2(
    tiny_club: Path, tmp_path: Path, extra: list[str], message: str
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("slots: 2\n", encoding="utf-8")
    args = ["experiment", "evaluate-policy", "--data", str(tiny_club),
            "--database-url", f"sqlite:///{tmp_path / 'empty.db'}"]  # fmt: skip
    result = runner.invoke(app, [*args, *[str(policy) if a == "POLICY" else a for a in extra]])
    assert result.exit_code == 2, result.output
    assert message in result.output
