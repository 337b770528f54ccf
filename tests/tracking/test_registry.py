"""MLflow logging, the candidate → champion gate and loading bundles, on a temporary store."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from nbo.data.io import ClubData
from nbo.tracking.bundle import Bundle
from nbo.tracking.promotion import promote
from nbo.tracking.registry import (
    MODEL_NAME,
    RegistryError,
    load_bundle,
    log_bundle,
)
from tests.tracking.conftest import AS_OF

GOOD = {
    "holdout_recall_at_10": 0.30,
    "holdout_ndcg_at_10": 0.40,
    "holdout_offer_auc": 0.80,
    "holdout_visit_mae": 1.5,
}


def _log(bundle: Bundle, club: Path, metrics: dict[str, float]) -> str:
    _, version = log_bundle(
        bundle,
        experiment="test",
        params={"as_of": "2024-04-01"},
        metrics=metrics,
        example=(str(club), [1, 2]),
    )
    return version


def _alias(name: str) -> str:
    return str(MlflowClient().get_model_version_by_alias(MODEL_NAME, name).version)


def test_log_registers_candidate_and_gate_moves_champion(
    bundle: Bundle, synth_club: Path, store: Path
) -> None:
    first = _log(bundle, synth_club, GOOD)
    assert (store / "mlflow.db").is_file() and (store / "mlartifacts").is_dir()
    assert _alias("candidate") == first
    outcome = promote()
    assert outcome.promoted and _alias("champion") == first

    worse = _log(bundle, synth_club, GOOD | {"holdout_recall_at_10": 0.20})
    assert _alias("candidate") == worse
    refused = promote()
    assert not refused.promoted and _alias("champion") == first
    # both trained as of the same day: their holdouts are one window, compared as such
    assert any(
        "holdout after 2024-04-01 recall_at_10" in r and "worse" in r for r in refused.reasons
    )

    assert promote(tolerance=0.5).promoted  # 0.20 is within 50% of 0.30
    assert _alias("champion") == worse

    lower_mae_is_better = _log(bundle, synth_club, GOOD | {"holdout_visit_mae": 9.0})
    assert not promote().promoted
    assert promote(force=True).promoted and _alias("champion") == lower_mae_is_better


def test_run_has_params_metrics_and_plots(bundle: Bundle, synth_club: Path, store: Path) -> None:
    _log(bundle, synth_club, GOOD)
    version = MlflowClient().get_model_version_by_alias(MODEL_NAME, "candidate")
    run = MlflowClient().get_run(version.run_id)
    assert run.data.metrics["holdout_offer_auc"] == 0.80
    assert run.data.params["as_of"] == "2024-04-01"


def test_load_bundle_and_pyfunc_serve_the_same_recommendations(
    bundle: Bundle, synth_club: Path, store: Path
) -> None:
    _log(bundle, synth_club, GOOD)
    promote(force=True)
    loaded = load_bundle("models:/nbo@champion")
    club = ClubData(synth_club)
    expected = bundle.recommend(club, AS_OF, [1, 2, 3], k=3)  # type: ignore[arg-type]
    assert loaded.recommend(club, AS_OF, [1, 2, 3], k=3).equals(expected)  # type: ignore[arg-type]
    model = mlflow.pyfunc.load_model("models:/nbo@champion")
    out = model.predict(
        pd.DataFrame({"member_id": [1, 2, 3]}),
        params={"data": str(synth_club), "k": 3, "at": "2024-04-01"},
    )
    assert out["product_id"].tolist() == expected["product_id"].to_list()


def test_promote_without_candidate_is_a_clear_error(store: Path) -> None:
    with pytest.raises(RegistryError, match="run `nbo train` first"):
        promote()


def test_load_bundle_errors(store: Path) -> None:
    with pytest.raises(RegistryError, match="no such bundle"):
        load_bundle("/nonexistent/bundle.joblib")
    with pytest.raises(RegistryError, match="cannot load"):
        load_bundle("models:/nbo@champion")
