"""The training configuration: generated from the estimators, strict, errors name the field."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from nbo.cli import app
from nbo.models.cf import CollaborativeFilter
from nbo.pipelines.config import (
    ESTIMATORS,
    TrainConfig,
    TrainConfigError,
    example_yaml,
    flatten,
    load_config,
)
from nbo.pipelines.train import CONFIG_ARTIFACT

EXAMPLE = Path(__file__).parents[2] / "docs" / "train.example.yaml"
runner = CliRunner()


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "train.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_the_estimators_own() -> None:
    config = TrainConfig()
    for name, estimator in ESTIMATORS.items():
        built = config.estimator(name)  # type: ignore[arg-type]
        assert type(built) is estimator
        for parameter, value in inspect.signature(estimator).parameters.items():
            if parameter != "cf":
                assert built.get_params()[parameter] == value.default, (name, parameter)
    assert config.estimator("affinity").cf.get_params() == CollaborativeFilter().get_params()
    assert config.evaluation.windows_days == [14, 28]
    assert config.evaluation.max_members == 50_000


def test_a_file_sets_only_what_it_names(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "affinity:\n  n_rankers: 3\n  cf:\n    factors: 16\ntiming:\n  n_threads: 1\n"
        "evaluation:\n  windows_days: [7]\n  max_members: null\n",
    )
    config = load_config(path)
    affinity = config.estimator("affinity")
    assert affinity.n_rankers == 3 and affinity.cf.factors == 16
    assert affinity.negative_share == TrainConfig().estimator("affinity").negative_share
    assert config.estimator("timing").n_threads == 1
    assert config.evaluation.windows_days == [7] and config.evaluation.max_members is None


def test_an_empty_file_is_the_defaults(tmp_path: Path) -> None:
    assert load_config(_write(tmp_path, "")) == TrainConfig()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("affinity:\n  n_rankers: '5'\n", "affinity.n_rankers: Input should be a valid integer"),
        ("affinity:\n  n_rankers: 5.0\n", "affinity.n_rankers: Input should be a valid integer"),
        ("response:\n  batchsize: 10\n", "response.batchsize: Extra inputs are not permitted"),
        ("affinity:\n  cf:\n    factor: 8\n", "affinity.cf.factor: Extra inputs are not permitted"),
        ("uplift:\n  include_running: 'yes'\n", "uplift.include_running: Input should be a valid"),
        ("affinity:\n  n_rankers: 0\n", "affinity.n_rankers: Input should be greater than 0"),
        ("affinity:\n  negative_share: 1.5\n", "negative_share: Input should be less than or"),
        ("timing:\n  max_leaf_nodes: 1\n", "timing.max_leaf_nodes: Input should be greater"),
        ("evaluation:\n  windows_days: [0]\n", "windows_days.0: Input should be greater"),
        ("evaluation:\n  windows_days: []\n", "evaluation.windows_days: List should have at least"),
        ("promotion: {}\n", "promotion: Extra inputs are not permitted"),
        ("- affinity\n", "expected a mapping of sections"),
        ("affinity: [\n", "not valid YAML: line 2"),
    ],
)
def test_a_bad_file_names_the_file_and_the_field(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(TrainConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


def test_overrides_by_dotted_path() -> None:
    config = TrainConfig().with_overrides({"affinity.cf.factors": 16, "timing.n_threads": 1})
    assert config.estimator("affinity").cf.factors == 16
    assert config.estimator("timing").n_threads == 1
    assert config.affinity.n_rankers == TrainConfig().affinity.n_rankers
    with pytest.raises(TrainConfigError, match=r"^variant: affinity.n_rankers: Input should be"):
        TrainConfig().with_overrides({"affinity.n_rankers": "3"}, "variant")
    with pytest.raises(TrainConfigError, match=r"affinity\.n_rankerz: Extra inputs"):
        TrainConfig().with_overrides({"affinity.n_rankerz": 3})
    with pytest.raises(TrainConfigError, match="no section 'afinity'"):
        TrainConfig().with_overrides({"afinity.n_rankers": 3})


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(TrainConfigError, match="no such training configuration"):
        load_config(tmp_path / "absent.yaml")


def test_yaml_round_trip_and_flat_params(tmp_path: Path) -> None:
    config = TrainConfig.model_validate({"purchase": {"max_iter": 7}})
    assert load_config(_write(tmp_path, config.to_yaml())) == config
    flat = flatten(config)
    assert flat["purchase.max_iter"] == 7
    assert flat["affinity.cf.factors"] == CollaborativeFilter().factors
    assert flat["evaluation.windows_days"] == [14, 28]
    sections = {key.split(".")[0] for key in flat}
    assert sections == {*ESTIMATORS, "evaluation"}


def test_the_example_file_is_every_parameter_with_its_default() -> None:
    assert EXAMPLE.read_text(encoding="utf-8") == example_yaml(), (
        "docs/train.example.yaml is out of date: python -m nbo.pipelines.config > "
        "docs/train.example.yaml"
    )
    config = load_config(EXAMPLE)
    assert config == TrainConfig()
    listed = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    assert set(flatten(config)) == set(_flat_keys(listed))  # nothing left out, nothing extra
    assert "# Rankers averaged" in EXAMPLE.read_text(encoding="utf-8")  # with descriptions


def _flat_keys(document: dict[str, object], prefix: str = "") -> list[str]:
    keys = []
    for name, value in document.items():
        if isinstance(value, dict):
            keys += _flat_keys(value, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An MLflow store of this test alone."""
    import mlflow

    previous = mlflow.get_tracking_uri()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    yield uri
    mlflow.set_tracking_uri(previous)


def test_nbo_train_with_a_bad_config_exits_2_naming_the_field(
    store: str, synth_club: Path, tmp_path: Path
) -> None:
    path = _write(tmp_path, "affinity:\n  n_rankers: five\n")
    result = runner.invoke(
        app, ["train", "--data", str(synth_club), "--as-of", "2024-04-01", "--config", str(path)]
    )
    assert result.exit_code == 2, result.output
    assert "affinity.n_rankers: Input should be a valid integer" in result.output
    assert "Traceback" not in result.output
    missing = runner.invoke(
        app,
        ["train", "--data", str(synth_club), "--as-of", "2024-04-01", "--config", "absent.yaml"],
    )
    assert missing.exit_code == 2 and "absent.yaml" in missing.output


def test_nbo_train_logs_the_config_as_params_and_train_yaml(
    store: str, synth_club: Path, tmp_path: Path
) -> None:
    import mlflow

    small = (
        "affinity:\n  n_rankers: 2\n  max_iter: 20\n  cf:\n    factors: 8\n"
        "timing:\n  n_windows: 6\n  max_iter: 30\n  n_threads: 1\n"
        "evaluation:\n  windows_days: [7, 14]\n  max_members: 100\n"
    )
    path = _write(tmp_path, small)
    result = runner.invoke(
        app,
        ["train", "--data", str(synth_club), "--as-of", "2024-04-01", "--config", str(path)],
    )
    assert result.exit_code == 0, result.output
    (run,) = mlflow.search_runs(experiment_names=["nbo"], output_format="list")
    params = run.data.params
    expected = flatten(load_config(path))
    assert {key: params[key] for key in expected} == {k: str(v) for k, v in expected.items()}
    assert params["affinity.n_rankers"] == "2" and params["affinity.cf.factors"] == "8"
    assert params["evaluation.windows_days"] == "[7, 14]"
    assert params["response.max_iter"] == str(TrainConfig().estimator("response").max_iter)
    figures = [a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "plots")]
    assert "plots/visit_reliability.png" in figures  # p_visit's, nbo's beside BG/NBD's
    logged = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/{CONFIG_ARTIFACT}")
    (tmp_path / "logged").mkdir()
    assert load_config(_write(tmp_path / "logged", logged)) == load_config(path)
