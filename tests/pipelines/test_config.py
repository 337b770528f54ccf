"""The training configuration: generated from the estimators, strict, errors name the field."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from nbo.models.cf import CollaborativeFilter
from nbo.pipelines.config import (
    ESTIMATORS,
    TrainConfig,
    TrainConfigError,
    flatten,
    load_config,
)


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
