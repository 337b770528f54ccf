"""A bundle records the features its models read; code that reads others refuses it clearly."""

from __future__ import annotations

from pathlib import Path

import joblib
import pytest
from typer.testing import CliRunner

from nbo.cli import app
from nbo.tracking.bundle import Bundle, BundleError, feature_lists
from nbo.tracking.registry import configure, load_bundle


@pytest.fixture
def bundle(env: None) -> Bundle:
    """The registry fixture's champion, loaded afresh (a test may change it)."""
    configure()  # MLflow's URIs are process-wide: an earlier test may have pointed them elsewhere
    return load_bundle("models:/nbo@champion")


def test_a_bundle_records_the_features_of_the_code_that_trained_it(
    bundle: Bundle, tmp_path: Path
) -> None:
    assert bundle.features == feature_lists()
    assert all(bundle.features.values())
    assert Bundle.load(bundle.save(tmp_path)).features == feature_lists()


def test_a_bundle_whose_models_read_other_features_is_refused(
    bundle: Bundle, tmp_path: Path
) -> None:
    bundle.features = feature_lists() | {"response": feature_lists()["response"][:-1]}
    path = bundle.save(tmp_path / "changed")
    with pytest.raises(BundleError, match=r"other features than this version's \(response\)"):
        Bundle.load(path)
    del bundle.__dict__["features"]  # what a bundle of code before the record holds
    path = bundle.save(tmp_path / "older")
    with pytest.raises(BundleError, match="did not record its models' input columns"):
        Bundle.load(path)


def test_files_that_are_not_bundles_are_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.joblib"
    garbage.write_bytes(b"not a pickle at all")
    with pytest.raises(BundleError, match="not a bundle this nbo can read"):
        Bundle.load(garbage)
    other = tmp_path / "other.joblib"
    joblib.dump({"a": 1}, other)
    with pytest.raises(BundleError, match="does not hold an nbo Bundle"):
        Bundle.load(other)


def test_the_cli_says_why_and_exits_2(bundle: Bundle, synth_club: Path, tmp_path: Path) -> None:
    bundle.features = feature_lists() | {"affinity": ["something_else"]}
    path = bundle.save(tmp_path / "changed")
    result = CliRunner().invoke(
        app,
        ["recommend", "--data", str(synth_club), "--at", "2024-04-01", "--model", str(path),
         "--out", str(tmp_path / "recs.parquet")],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "other features than this version's (affinity)" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "recs.parquet").exists()
