"""The registered model outside the project: a fresh virtualenv made from its requirements alone.

Issue 16 (a self-contained MLflow model). Slow: uv builds the virtualenv, from its cache when
warm (about a minute for the whole test on 2 cores), from PyPI on a first run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from mlflow.models import Model
from uv import find_uv_bin

from nbo.data.io import ClubData
from nbo.pipelines.train import train_bundle
from nbo.tracking.registry import MODEL_NAME, configure, log_bundle

AS_OF = datetime(2024, 4, 1)
CHAMPION = f"models:/{MODEL_NAME}@champion"

# Run with ``python -I`` in the new environment: nothing from the project's paths or PYTHON* vars.
SCRIPT = """
import importlib.util, json, platform, sys
from pathlib import Path

if importlib.util.find_spec("nbo") is not None:
    sys.exit("nbo is importable before the model is loaded: the environment is not clean")
import mlflow
import pandas as pd

calls = json.loads(Path(sys.argv[1]).read_text())
model = mlflow.pyfunc.load_model("models:/nbo@champion")
for call in calls:
    model.predict(pd.DataFrame(call["input"]), params=call["params"]).to_parquet(call["out"])
import nbo
facts = {"python": platform.python_version(), "nbo": nbo.__file__, "prefix": sys.prefix}
Path(sys.argv[2]).write_text(json.dumps(facts))
"""


def _calls(club: Path, out: Path) -> list[dict[str, Any]]:
    """One call per task: a few members (and member-offer pairs) of the training club."""
    data = ClubData(club)
    members = data.members.select("member_id").sort("member_id").head(6).collect()
    offers = data.offers.select("offer_id").sort("offer_id").head(3).collect()
    member_ids = [int(m) for m in members["member_id"]]
    pairs = [(m, str(o)) for m in member_ids[:3] for o in offers["offer_id"]]
    common = {"data": str(club)}
    return [
        {
            "input": {"member_id": member_ids},
            "params": common | {"task": "recommend", "k": 5},
            "out": str(out / "recommend.parquet"),
        },
        {
            "input": {"member_id": [m for m, _ in pairs], "offer_id": [o for _, o in pairs]},
            "params": common | {"task": "score_offers"},
            "out": str(out / "score_offers.parquet"),
        },
        {
            "input": {"member_id": member_ids},
            "params": common | {"task": "forecast_visits", "horizon_days": 14},
            "out": str(out / "forecast_visits.parquet"),
        },
    ]


def _clean_environment(model_dir: Path, root: Path, env: dict[str, str]) -> Path:
    """A virtualenv with the model's Python version and only its requirements.txt; its python."""
    python_version = str(yaml.safe_load((model_dir / "python_env.yaml").read_text())["python"])
    uv = find_uv_bin()
    # uv finds an interpreter of that version on PATH; the one running the tests comes first, so
    # nothing is downloaded when it matches
    env = env | {"PATH": f"{Path(sys.base_prefix) / 'bin'}{os.pathsep}{env.get('PATH', '')}"}
    venv = root / "venv"
    run = {"env": env, "cwd": root, "check": True, "capture_output": True, "text": True}
    subprocess.run([uv, "venv", "--no-python-downloads", "--python", python_version, venv], **run)
    python = venv / "bin" / "python"
    requirements = model_dir / "requirements.txt"
    subprocess.run([uv, "pip", "install", "--python", str(python), "-r", str(requirements)], **run)
    return python


@pytest.mark.slow
def test_champion_predicts_the_same_in_a_clean_virtualenv(
    synth_club: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    store = tmp_path / "store"
    store.mkdir()
    uri = configure(store)
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    ours.mkdir()
    theirs.mkdir()
    try:
        bundle = train_bundle(ClubData(synth_club), AS_OF)
        _, version = log_bundle(
            bundle, experiment="test", params={}, metrics={}, example=(str(synth_club), [1, 2])
        )
        MlflowClient().set_registered_model_alias(MODEL_NAME, "champion", version)
        model_dir = Path(
            mlflow.artifacts.download_artifacts(CHAMPION, dst_path=str(tmp_path / "model"))
        )
        calls = _calls(synth_club, theirs)
        model = mlflow.pyfunc.load_model(CHAMPION)
        for call in calls:
            result = model.predict(pd.DataFrame(call["input"]), params=call["params"])
            assert len(result) > 0, call["params"]["task"]
            result.to_parquet(ours / Path(call["out"]).name)
    finally:
        mlflow.set_tracking_uri(None)

    # the model carries nbo's code, with the symlinked folders as real files
    flavor = Model.load(model_dir / "MLmodel").flavors["python_function"]
    assert flavor["code"] == "code"
    affinity = model_dir / "code" / "nbo" / "models" / "affinity.py"
    assert affinity.is_file() and not affinity.parent.is_symlink()
    assert "nbo" not in (model_dir / "requirements.txt").read_text().split()

    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    python = _clean_environment(model_dir, tmp_path, env)
    (tmp_path / "calls.json").write_text(json.dumps(calls))
    (tmp_path / "load.py").write_text(SCRIPT)
    facts_file = tmp_path / "facts.json"
    loaded = subprocess.run(
        [python, "-I", tmp_path / "load.py", tmp_path / "calls.json", facts_file],
        env=env | {"MLFLOW_TRACKING_URI": uri},
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    facts = json.loads(facts_file.read_text())
    python_env = yaml.safe_load((model_dir / "python_env.yaml").read_text())
    assert facts["python"] == str(python_env["python"])
    assert Path(facts["prefix"]).resolve() == (tmp_path / "venv").resolve()
    # nbo came from the model's own copy of the code, not from the project
    assert not Path(facts["nbo"]).is_relative_to(Path(__file__).resolve().parents[2])
    assert Path(facts["nbo"]).parent.parent.name == "code"
    for call in calls:
        name = Path(call["out"]).name
        pd.testing.assert_frame_equal(pd.read_parquet(theirs / name), pd.read_parquet(ours / name))
