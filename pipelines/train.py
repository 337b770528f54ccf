"""Batch job: train every model as of a date, evaluate on the time holdout, log to MLflow.

Run as ``nbo train --data DIR --as-of DATE`` or ``python -m nbo.pipelines.train DIR DATE``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from nbo.data.io import ClubData
from nbo.evaluation.backtest import evaluate_bundle
from nbo.features.history import History, as_datetime
from nbo.models.affinity import ProductAffinity
from nbo.models.purchase import OfferPurchase
from nbo.models.response import OfferResponse
from nbo.models.timing import VisitTiming
from nbo.models.uplift import OfferUplift
from nbo.tracking.bundle import Bundle

__all__ = ["STAGES", "TrainResult", "train", "train_bundle"]

STAGES = (
    "product affinity",
    "purchase propensity",
    "offer response",
    "offer uplift",
    "visit timing",
    "holdout evaluation",
    "MLflow logging",
)

OnStage = Callable[[str], None]


@dataclass
class TrainResult:
    bundle: Bundle
    metrics: dict[str, float]
    table: dict[str, dict[str, float]]
    seconds: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None
    version: str | None = None


def _params(models: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for prefix, model in models.items():
        for key, value in vars(model).items():
            if not key.endswith("_") and not key.startswith("_"):
                params[f"{prefix}.{key}"] = value
    return params


def train_bundle(
    club: ClubData,
    as_of: datetime,
    *,
    on_stage: OnStage | None = None,
    seconds: dict[str, float] | None = None,
) -> Bundle:
    """Fit every model of the bundle on everything known strictly before ``as_of``."""
    history = History.at(club, as_of)
    timings = seconds if seconds is not None else {}

    def stage(name: str, fit: Callable[[], Any]) -> Any:
        if on_stage:
            on_stage(name)
        start = time.perf_counter()
        result = fit()
        timings[name] = time.perf_counter() - start
        return result

    affinity = stage("product affinity", lambda: ProductAffinity().fit(history))
    purchase = stage("purchase propensity", lambda: OfferPurchase().fit(history))
    response = stage("offer response", lambda: OfferResponse().fit(history))
    uplift = stage("offer uplift", lambda: OfferUplift().fit(history))
    timing = stage("visit timing", lambda: VisitTiming().fit(history))
    models = {
        "affinity": affinity,
        "purchase": purchase,
        "response": response,
        "uplift": uplift,
        "timing": timing,
    }
    return Bundle(
        as_of=history.as_of,
        affinity=affinity,
        purchase=purchase,
        response=response,
        timing=timing,
        uplift=uplift,
        params=_params(models)
        | {"uplift.measured": uplift.measured_, "uplift.reason": uplift.reason_},
    )


def train(
    club: ClubData,
    as_of: datetime,
    *,
    experiment: str = "nbo",
    log: bool = True,
    on_stage: OnStage | None = None,
    max_eval_members: int | None = 50_000,
) -> TrainResult:
    """Train, evaluate on the holdout after ``as_of`` and (with ``log``) register the bundle."""
    seconds: dict[str, float] = {}
    bundle = train_bundle(club, as_of, on_stage=on_stage, seconds=seconds)
    if on_stage:
        on_stage("holdout evaluation")
    start = time.perf_counter()
    evaluation = evaluate_bundle(bundle, club, max_members=max_eval_members)
    seconds["holdout evaluation"] = time.perf_counter() - start
    bundle.metrics = evaluation.metrics
    result = TrainResult(bundle, evaluation.metrics, evaluation.table, seconds)
    if log:
        from nbo.evaluation.plots import training_figures
        from nbo.tracking.registry import log_bundle

        if on_stage:
            on_stage("MLflow logging")
        start = time.perf_counter()
        params = bundle.params | {"as_of": bundle.as_of.date().isoformat(), "data": str(club.root)}
        result.run_id, result.version = log_bundle(
            bundle,
            experiment=experiment,
            params=params,
            metrics=evaluation.metrics
            | {f"seconds_{k.replace(' ', '_')}": v for k, v in seconds.items()},
            example=(
                str(club.root),
                evaluation.truth["member_id"].unique().sort().head(2).to_list(),
            ),
            figures=training_figures(bundle, evaluation),
        )
        seconds["MLflow logging"] = time.perf_counter() - start
    return result


if __name__ == "__main__":  # pragma: no cover - thin entry point
    from nbo.tracking.registry import configure

    if len(sys.argv) != 3:
        sys.exit("usage: python -m nbo.pipelines.train DATA_DIR AS_OF")
    configure()
    outcome = train(ClubData(sys.argv[1]), as_datetime(sys.argv[2]))
    print({k: round(v, 4) for k, v in outcome.metrics.items()})
