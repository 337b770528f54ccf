"""`nbo monitor`: calibration and drift per live model version, against the training reference
recorded in the bundle, with a known shift in one version's scores."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path

import mlflow
import numpy as np
import polars as pl
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from nbo.cli import app
from nbo.cli.common import console
from nbo.cli.monitor import EXIT_ALERT
from nbo.data.io import ClubData
from nbo.evaluation.monitor import psi
from nbo.evaluation.reference import reference_pairs, references_of, training_reference
from nbo.history import InteractionStore
from nbo.plans import read_manifest
from nbo.settings import get_settings
from nbo.tracking.bundle import Bundle
from nbo.tracking.online import MONITOR_EXPERIMENT, bundle_reference
from nbo.tracking.registry import configure, experiment_id, load_bundle

runner = CliRunner()
T0 = datetime(2024, 6, 3, 10)
N = 20_000  # decisions per version: the synth club redeems about 1 offer in 200
YOUNG = 2_000  # of them decided too recently to settle


@pytest.fixture
def trained(registry: str, synth_club: Path, monkeypatch: pytest.MonkeyPatch) -> Bundle:
    """The registry's champion (trained on the synth club) with its training reference."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry)
    configure()
    bundle = load_bundle("models:/nbo@champion")
    bundle.reference = training_reference(bundle, ClubData(synth_club))
    return bundle


def _log_bundle(bundle: Bundle) -> str:
    """The bundle as a run's ``bundle`` artifact, as training logs it; its model version."""
    with (
        mlflow.start_run(experiment_id=experiment_id("nbo-monitor-test")) as run,
        tempfile.TemporaryDirectory() as tmp,
    ):
        bundle.version = f"run:{run.info.run_id}"
        mlflow.log_artifact(str(bundle.save(tmp)), artifact_path="bundle")
        return bundle.version


def _decisions(version: str, p_redeem: np.ndarray, at: list[datetime], first: int) -> pl.DataFrame:
    n = p_redeem.size
    return pl.DataFrame(
        {
            "decision_id": [f"{version}-{i}" for i in range(n)],
            "member_id": list(range(first, first + n)),
            "offer_id": [f"live-{i % 7}" for i in range(n)],  # not in the club: open window
            "campaign_id": ["L1"] * n,
            "channel": ["app"] * n,
            "decided_at": at,
            "rank": [1] * n,
            "p_redeem": p_redeem,
            "expected_value": [1.0] * n,
            "propensity": [1.0] * n,
            "explored": [False] * n,
            "model_version": [version] * n,
        }
    )


@pytest.fixture
def history(
    trained: Bundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, str, str, pl.DataFrame]]:
    """A fresh tracking store with the bundle logged twice; served decisions of version
    ``good`` (scores as in training, redeemed at their rate) and ``bad`` (scores moved up
    threefold, redeemed at the training rate); the last YOUNG of each too recent to settle."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    configure()
    good, bad = _log_bundle(trained), _log_bundle(trained)
    assert trained.reference is not None
    rng = np.random.default_rng(6)
    train_scores = rng.choice(_holdout_scores(trained), N)
    at = [T0] * (N - YOUNG) + [T0 + timedelta(days=40)] * YOUNG
    decided = pl.concat(
        [
            _decisions(good, train_scores, at, 0),
            _decisions(bad, np.minimum(train_scores * 3, 1.0), at, N),
        ]
    )
    redeemed = rng.random(N) < train_scores  # both versions: what training saw
    events = [
        {"event_id": f"e-{first + i}", "event_type": "redemption", "member_id": first + i,
         "offer_id": f"live-{i % 7}", "ts": at[i] + timedelta(days=2), "amount": 1.0}
        for first in (0, N) for i in np.flatnonzero(redeemed).tolist()
    ]  # fmt: skip
    url = f"sqlite:///{tmp_path / 'h.db'}"
    with InteractionStore(url) as store:
        store.record_decisions(decided)
        store.record_events(events)
    get_settings.cache_clear()
    yield url, good, bad, decided.with_columns(redeemed=pl.Series(np.r_[redeemed, redeemed]))
    get_settings.cache_clear()


def _holdout_scores(bundle: Bundle) -> np.ndarray:
    """Scores distributed as the reference's bins: each bin's share, uniform inside it."""
    reference = references_of(bundle.reference)["p_redeem"]
    rng = np.random.default_rng(1)
    edges = np.r_[0.0, reference.edges, max(reference.edges[-1] * 1.5, 0.01)]
    counts = np.round(np.asarray(reference.shares) * 20_000).astype(int)
    return np.concatenate(
        [rng.uniform(lo, hi, c) for lo, hi, c in zip(edges[:-1], edges[1:], counts, strict=True)]
    )


def test_monitor_alerts_on_the_shifted_version_and_logs_each(
    history: tuple[str, str, str, pl.DataFrame],
    synth_club: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(console, "width", 200)
    url, good, bad, decided = history
    result = runner.invoke(app, ["monitor", "--database-url", url, "--data", str(synth_club),
                                 "--plans", str(tmp_path / "none")])  # fmt: skip
    assert result.exit_code == EXIT_ALERT, result.output
    alerts = [line for line in result.output.splitlines() if line.startswith("ALERT")]
    assert any(line.startswith(f"ALERT {bad}: calibration") for line in alerts), result.output
    assert any(line.startswith(f"ALERT {bad}: drift: PSI of p_redeem") for line in alerts)
    assert not any(good in line for line in alerts), result.output

    client = MlflowClient()
    experiment = client.get_experiment_by_name(MONITOR_EXPERIMENT)
    assert experiment is not None
    runs = {r.data.tags["model_version"]: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {good, bad}
    reference = references_of(bundle_reference(bad))["p_redeem"]
    for version, run in runs.items():
        mine = decided.filter(pl.col("model_version") == version)
        settled = mine.filter(pl.col("decided_at") == T0)  # the young ones: 40 days later
        metrics = run.data.metrics
        assert metrics["decisions"] == N
        assert metrics["settled_decisions"] == N - YOUNG
        assert metrics["calibration_ratio"] == pytest.approx(
            float(settled["p_redeem"].sum()) / float(settled["redeemed"].sum())
        )
        assert metrics["psi_p_redeem"] == pytest.approx(psi(reference, mine["p_redeem"]))
        assert run.data.tags["alert"] == ("yes" if version == bad else "no")
    assert runs[good].data.metrics["psi_p_redeem"] < 0.1
    assert runs[bad].data.metrics["psi_p_redeem"] > 0.2
    assert runs[bad].data.metrics["calibration_ratio"] > 2


def test_monitor_of_a_healthy_model_exits_zero(
    history: tuple[str, str, str, pl.DataFrame], synth_club: Path, tmp_path: Path
) -> None:
    url, _, bad, _ = history
    with InteractionStore(url) as store, store.engine.begin() as connection:
        from nbo.history.schema import decisions

        connection.execute(decisions.delete().where(decisions.c.model_version == bad))
    result = runner.invoke(app, ["monitor", "--database-url", url, "--data", str(synth_club),
                                 "--plans", str(tmp_path / "none"), "--no-log"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "ALERT" not in result.output
    assert "logged to MLflow" not in result.output


def test_monitor_refuses_a_missing_dataset(
    history: tuple[str, str, str, pl.DataFrame], tmp_path: Path
) -> None:
    url = history[0]
    result = runner.invoke(app, ["monitor", "--database-url", url, "--data", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "no imported club dataset" in result.output


def test_a_bundle_without_reference_has_none(
    trained: Bundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trained.reference = None
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'other.db'}")
    configure()
    version = _log_bundle(trained)
    assert bundle_reference(version) is None
    assert bundle_reference("local") is None


def test_training_reference_scores_recent_campaigns_as_of_their_start(
    trained: Bundle, synth_club: Path
) -> None:
    club = ClubData(synth_club)
    pairs = reference_pairs(trained, club)
    assert pairs.height > 0
    # each campaign of the last weeks scored as of its start, none with data after training
    starts = club.campaigns.filter(pl.col("start_date") >= date(2024, 2, 5)).collect()
    expected = {min(datetime.combine(d, time()), trained.as_of) for d in starts["start_date"]}
    assert set(pairs["at"]) == expected
    assert all(at <= trained.as_of for at in pairs["at"])
    assert trained.reference is not None
    bins = references_of(trained.reference)
    assert set(bins) == {"p_redeem", "p_buy"}
    for reference in bins.values():
        assert reference.count == pairs.height
        assert sum(reference.shares) == pytest.approx(1.0)
        assert len(reference.edges) >= 5  # deciles, some merged where scores tie


def test_nbo_train_records_the_reference_in_the_bundle(
    registry: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry)
    configure()
    bundle = load_bundle("models:/nbo@champion")
    assert set(references_of(bundle.reference)) == {"p_redeem", "p_buy"}
    assert references_of(bundle_reference(bundle.version)) == references_of(bundle.reference)


def test_monitor_reads_the_drift_of_the_versions_plans(
    history: tuple[str, str, str, pl.DataFrame], synth_club: Path, tmp_path: Path
) -> None:
    url, good, _, _ = history
    plans = tmp_path / "plans"
    made = runner.invoke(app, [
        "plan", "--data", str(synth_club), "--day", "2024-04-01", "--out", str(plans),
        "--model", f"runs:/{good.removeprefix('run:')}/bundle",
        "--database-url", f"sqlite:///{tmp_path / 'plan.db'}",
    ])  # fmt: skip
    assert made.exit_code == 0, made.output
    drift = read_manifest(plans, date(2024, 4, 1))["drift"]["champion"]  # type: ignore[index]
    assert drift["version"] == good
    result = runner.invoke(app, ["monitor", "--database-url", url, "--data", str(synth_club),
                                 "--plans", str(plans)])  # fmt: skip
    client = MlflowClient()
    experiment = client.get_experiment_by_name(MONITOR_EXPERIMENT)
    assert experiment is not None
    runs = {r.data.tags["model_version"]: r for r in client.search_runs([experiment.experiment_id])}
    planned = runs[good].data.metrics["planned_psi_p_redeem"]
    assert planned == pytest.approx(drift["psi"]["p_redeem"])
    assert "planned_psi_p_redeem" not in runs[history[2]].data.metrics  # never planned
    alerted = f"ALERT {good}: drift: PSI of the plan's p_redeem" in result.output
    assert alerted == (planned > get_settings().monitor_max_psi), result.output
