"""MLflow tracking and the model registry: log a training run, load bundles.

Alias ``candidate`` moves here (:func:`log_bundle`); ``champion`` in :mod:`nbo.tracking.promotion`.

Embedded default: a SQLite tracking store ``mlflow.db`` and artifacts in ``mlartifacts/`` in the
working directory. ``MLFLOW_TRACKING_URI`` points nbo at a team's tracking server instead.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from nbo.errors import NboError
from nbo.tracking.bundle import BUNDLE_FILE, Bundle

__all__ = [
    "MODEL_NAME",
    "configure",
    "experiment_id",
    "load_bundle",
    "log_bundle",
]

MODEL_NAME = "nbo"
MODEL_ARTIFACT = "bundle"


class RegistryError(NboError):
    """The registry cannot do what was asked (no such model, alias or version)."""


def configure(root: str | os.PathLike[str] | None = None) -> str:
    """Point MLflow at ``MLFLOW_TRACKING_URI`` or the embedded SQLite store under ``root``."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        base = Path(root or Path.cwd()).resolve()
        uri = f"sqlite:///{base / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def experiment_id(name: str) -> str:
    """The id of the experiment ``name`` in the configured store, created if missing.

    Runs name their experiment explicitly: MLflow's process-wide active experiment would
    follow a process (or a test session) from one tracking store into another.
    """
    client = MlflowClient()
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    location = None
    if mlflow.get_tracking_uri().startswith("sqlite:///"):
        db = Path(mlflow.get_tracking_uri().removeprefix("sqlite:///"))
        location = (db.parent / "mlartifacts").as_uri()
    return str(client.create_experiment(name, artifact_location=location))


def log_bundle(
    bundle: Bundle,
    *,
    experiment: str,
    params: dict[str, Any],
    metrics: dict[str, float],
    example: tuple[str, list[int]],
    figures: dict[str, Any] | None = None,
    tables: dict[str, Any] | None = None,
) -> tuple[str, str]:
    """Log one training run and register its bundle as ``nbo`` with alias ``candidate``.

    The registered model is self-contained (nbo's code and pinned requirements, see
    :mod:`nbo.tracking.pyfunc`). ``example`` is (dataset directory, member ids) for the logged
    input example. Returns (run_id, model version).
    """
    from nbo.tracking.pyfunc import (
        SIGNATURE,
        NboPyfunc,
        code_paths,
        input_example,
        pip_requirements,
    )

    experiment_run_in = experiment_id(experiment)
    with (
        mlflow.start_run(experiment_id=experiment_run_in) as run,
        tempfile.TemporaryDirectory() as tmp,
    ):
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v == v})  # drop NaN
        for name, figure in (figures or {}).items():
            mlflow.log_figure(figure, f"plots/{name}.png")
        for name, frame in (tables or {}).items():
            mlflow.log_table(frame, f"tables/{name}.json")
        bundle.version = f"run:{run.info.run_id}"
        path = bundle.save(tmp)
        info = mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT,
            python_model=NboPyfunc(),
            artifacts={BUNDLE_FILE: str(path)},
            code_paths=code_paths(),
            signature=SIGNATURE,
            input_example=input_example(*example),
            pip_requirements=pip_requirements(),
            registered_model_name=MODEL_NAME,
            await_registration_for=0,
        )
        version = str(info.registered_model_version)
        client = MlflowClient()
        client.set_registered_model_alias(MODEL_NAME, "candidate", version)
        client.set_model_version_tag(MODEL_NAME, version, "as_of", bundle.as_of.date().isoformat())
        return run.info.run_id, version


def load_bundle(uri: str) -> Bundle:
    """A bundle from ``models:/nbo@champion``, ``models:/nbo/3``, ``runs:/<id>/bundle``, a path."""
    if "://" not in uri and ":/" not in uri:
        path = Path(uri)
        if not path.exists():
            raise RegistryError(f"{uri}: no such bundle file or directory")
        return Bundle.load(path)
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    except (MlflowException, OSError) as exc:
        raise RegistryError(f"cannot load {uri}: {str(exc).splitlines()[0]}") from None
    found = sorted(local.rglob(BUNDLE_FILE))
    if not found:
        raise RegistryError(f"{uri} holds no {BUNDLE_FILE}; is it an nbo model?")
    return Bundle.load(found[0])
