"""The bundle as one MLflow pyfunc model, so any MLflow tool can load and call it.

The club data is an input, not part of the model: ``params["data"]`` names a dataset directory
and ``params["task"]`` picks what to compute for the members (or pairs) in the input frame.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import polars as pl
from mlflow.models import ModelSignature
from mlflow.pyfunc.model import PythonModel
from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

from nbo.data.io import ClubData
from nbo.features.history import as_datetime
from nbo.tracking.bundle import BUNDLE_FILE, Bundle

__all__ = ["SIGNATURE", "NboPyfunc", "input_example"]

TASKS = ("recommend", "score_offers", "forecast_visits")

SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("long", "member_id"), ColSpec("string", "offer_id", required=False)]),
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
        members = np.asarray(model_input["member_id"], dtype=np.int64)
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
        return result.to_pandas()
