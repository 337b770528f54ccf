"""The bundle as one MLflow pyfunc model, so any MLflow tool can load and call it.

The club data is an input, not part of the model: ``params["data"]`` names a dataset directory
and ``params["task"]`` picks what to compute for the members (or pairs) in the input frame.
Members are given as nbo's ``member_id`` or, for a club whose keys are text (card numbers with
leading zeros, letters), as the club's own ``member_key``; a keyed club's answers carry both.

The logged model is self-contained: it carries nbo's own source as MLflow ``code_paths`` (the
``nbo`` package directory, copied with its ``models``/``pipelines``/``serving`` links resolved to
real folders, put on ``sys.path`` by MLflow when the model loads) and nbo's runtime dependencies
pinned to the versions that trained it. A fresh environment made from the model's
``requirements.txt`` and ``python_env.yaml`` alone loads and calls it, and so does
``mlflow models serve``.

Why ``code_paths`` rather than nbo's own wheel as an artifact: the model then holds exactly the
source that trained it, from an editable checkout or an installed nbo alike, with no build step
(and no build tools or source tree) at training time; and ``requirements.txt`` stays a list of
plain PyPI pins that any ``pip``/``uv`` installs from any directory, where a wheel referenced
from it by a relative path only installs when run from inside the model's folder.
"""

from __future__ import annotations

from importlib.metadata import requires, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
from mlflow.models import ModelSignature
from mlflow.pyfunc.model import PythonModel
from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema
from packaging.requirements import Requirement

from nbo.data.io import ClubData
from nbo.features.history import as_datetime
from nbo.tracking.bundle import BUNDLE_FILE, Bundle

__all__ = ["SIGNATURE", "NboPyfunc", "code_paths", "input_example", "pip_requirements"]

TASKS = ("recommend", "score_offers", "forecast_visits")

SIGNATURE = ModelSignature(
    inputs=Schema(
        [
            ColSpec("long", "member_id", required=False),
            ColSpec("string", "member_key", required=False),  # the club's own keys, if text
            ColSpec("string", "offer_id", required=False),
        ]
    ),
    outputs=None,
    params=ParamSchema(
        [
            ParamSpec("task", "string", "recommend"),
            ParamSpec("data", "string", ""),
            ParamSpec("at", "string", ""),
            ParamSpec("k", "long", 10),
            ParamSpec("horizon_days", "long", 28),
        ]
    ),
)


def code_paths() -> list[str]:
    """nbo's package directory, for ``log_model(code_paths=...)``: the code the model runs."""
    return [str(Path(__file__).resolve().parents[1])]


def pip_requirements() -> list[str]:
    """nbo's runtime dependencies (its extras left out), pinned to the versions installed here.

    Read from nbo's installed metadata, so the model needs what ``pip install nbo`` needs and a
    new dependency reaches the model without a second list to keep. cloudpickle is added: MLflow
    writes the model's Python object with it.
    """
    pinned: dict[str, str] = {}
    for line in requires("nbo") or []:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue  # an extra's (dev) or another platform's dependency
        extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
        pinned[requirement.name] = f"{requirement.name}{extras}=={version(requirement.name)}"
    pinned.setdefault("cloudpickle", f"cloudpickle=={version('cloudpickle')}")
    return list(pinned.values())


def input_example(data: str, member_ids: list[int]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A real call: recommend 3 products to a few members of the training data.

    MLflow runs it when the model is logged, so a bundle that cannot serve is caught right away.
    """
    return pd.DataFrame({"member_id": member_ids}), {"task": "recommend", "data": data, "k": 3}


class NboPyfunc(PythonModel):
    """pyfunc wrapper around :class:`~nbo.tracking.bundle.Bundle`."""

    def load_context(self, context: Any) -> None:
        self.bundle = Bundle.load(context.artifacts[BUNDLE_FILE])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        params = params or {}
        task = params.get("task", "recommend")
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; one of {', '.join(TASKS)}")
        if not params.get("data"):
            raise ValueError("params['data'] must name a club dataset directory")
        club = ClubData(params["data"])
        at = as_datetime(params["at"]) if params.get("at") else self.bundle.as_of
        keys = club.keys
        if "member_key" in model_input.columns:  # the club's keys: the one rule maps them
            members = keys.ids(model_input["member_key"].tolist(), what="member_key")
        elif "member_id" in model_input.columns:
            members = np.asarray(model_input["member_id"], dtype=np.int64)
        else:
            raise ValueError("model_input needs a member_id or a member_key column")
        if task == "recommend":
            result = self.bundle.recommend(club, at, members, k=int(params.get("k", 10)))
        elif task == "forecast_visits":
            result = self.bundle.forecast_visits(club, at, int(params.get("horizon_days", 28)))
            result = result.filter(pl.col("member_id").is_in(members.tolist()))
        else:
            pairs = pl.DataFrame(
                {"member_id": members, "offer_id": model_input["offer_id"].astype(str).tolist()}
            )
            result = self.bundle.score_offers(club, pairs.with_columns(at=pl.lit(at)))
        if keys.keyed:  # beside the internal id, the member as the club knows them
            named = keys.to_keys(result.select("member_id"))["member_id"]
            result = result.with_columns(member_key=named)
        return result.to_pandas()
