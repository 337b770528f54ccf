"""Batch job: train every model as of a date, evaluate on the time holdout, log to MLflow.

Run as ``nbo train --data DIR --as-of DATE [--config train.yaml]`` or ``python -m
nbo.pipelines.train DIR DATE [train.yaml]``. The models' hyperparameters and the evaluation
settings come from a :class:`~nbo.pipelines.config.TrainConfig` (defaults without one); every
value is logged as an MLflow param and the whole configuration as the run's ``train.yaml``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Literal

import polars as pl

from nbo.data.io import ClubData
from nbo.evaluation.backtest import evaluate_bundle
from nbo.evaluation.reference import training_reference
from nbo.features.history import History, as_datetime
from nbo.models.affinity import ProductAffinity
from nbo.models.purchase import OfferPurchase
from nbo.models.response import OfferResponse
from nbo.models.timing import VisitTiming
from nbo.models.uplift import OfferUplift
from nbo.pipelines.config import TrainConfig, flatten, load_config
from nbo.tracking.bundle import Bundle

__all__ = ["CONFIG_ARTIFACT", "STAGES", "TrainResult", "train", "train_bundle"]

CONFIG_ARTIFACT = "train.yaml"
"""The run's artifact holding its whole configuration (:func:`load_config` reads it back)."""

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


class _From(Enum):
    CONFIG = "config"


@dataclass
class TrainResult:
    bundle: Bundle
    metrics: dict[str, float]
    table: dict[str, dict[str, float]]
    seconds: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None
    version: str | None = None


def train_bundle(
    club: ClubData,
    as_of: datetime,
    *,
    config: TrainConfig | None = None,
    on_stage: OnStage | None = None,
    seconds: dict[str, float] | None = None,
    exposure: pl.DataFrame | None = None,
) -> Bundle:
    """Fit every model of the bundle on everything known strictly before ``as_of``.

    Each model is built from its section of ``config`` (the defaults without one); the
    bundle's ``params`` are the whole configuration, flattened (``affinity.n_rankers``, …).
    ``exposure``: the service's randomized exposure for the uplift model
    (``InteractionStore.randomized_exposure``).
    """
    config = config if config is not None else TrainConfig()
    history = History.at(club, as_of)
    timings = seconds if seconds is not None else {}

    def stage(name: str, fit: Callable[[], Any]) -> Any:
        if on_stage:
            on_stage(name)
        start = time.perf_counter()
        result = fit()
        timings[name] = time.perf_counter() - start
        return result

    affinity: ProductAffinity = stage(
        "product affinity", lambda: config.estimator("affinity").fit(history)
    )
    purchase: OfferPurchase = stage(
        "purchase propensity", lambda: config.estimator("purchase").fit(history)
    )
    response: OfferResponse = stage(
        "offer response", lambda: config.estimator("response").fit(history)
    )
    uplift: OfferUplift = stage(
        "offer uplift", lambda: config.estimator("uplift").fit(history, exposure)
    )
    timing: VisitTiming = stage("visit timing", lambda: config.estimator("timing").fit(history))
    return Bundle(
        as_of=history.as_of,
        affinity=affinity,
        purchase=purchase,
        response=response,
        timing=timing,
        uplift=uplift,
        params=flatten(config)
        | {"uplift.measured": uplift.measured_, "uplift.reason": uplift.reason_}
        | {"purchase.learned": purchase.learned_, "purchase.reason": purchase.reason_}
        | {"response.learned": response.learned_, "response.reason": response.reason_},
    )


def train(
    club: ClubData,
    as_of: datetime,
    *,
    experiment: str = "nbo",
    log: bool = True,
    on_stage: OnStage | None = None,
    max_eval_members: int | Literal[_From.CONFIG] | None = _From.CONFIG,
    config: TrainConfig | None = None,
    exposure: pl.DataFrame | None = None,
) -> TrainResult:
    """Train, evaluate on the holdout after ``as_of`` and (with ``log``) register the bundle.

    ``config`` and ``exposure`` as in :func:`train_bundle` (the exposure decided on or after
    ``as_of`` is held-out randomized data for the uplift's Qini and AUUC);
    ``max_eval_members``, when given, replaces its ``evaluation.max_members`` (None: every
    member).
    """
    config = config if config is not None else TrainConfig()
    if max_eval_members is not _From.CONFIG:
        evaluation_config = config.evaluation.model_copy(update={"max_members": max_eval_members})
        config = config.model_copy(update={"evaluation": evaluation_config})
    seconds: dict[str, float] = {}
    bundle = train_bundle(
        club, as_of, config=config, on_stage=on_stage, seconds=seconds, exposure=exposure
    )
    if on_stage:
        on_stage("holdout evaluation")
    start = time.perf_counter()
    evaluation = evaluate_bundle(
        bundle, club, max_members=config.evaluation.max_members, exposure=exposure
    )
    seconds["holdout evaluation"] = time.perf_counter() - start
    bundle.metrics = evaluation.metrics
    bundle.reference = training_reference(bundle, club)  # what nbo monitor compares with
    result = TrainResult(bundle, evaluation.metrics, evaluation.table, seconds)
    if log:
        from mlflow.tracking import MlflowClient

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
                # trained on everything, the holdout is empty: members known before as_of
                evaluation.truth["member_id"].unique().sort().head(2).to_list()
                or History(club, as_of)
                .members.select(pl.col("member_id").sort().head(2))
                .collect()["member_id"]
                .to_list(),
            ),
            figures=training_figures(bundle, evaluation),
        )
        MlflowClient().log_text(result.run_id, config.to_yaml(), CONFIG_ARTIFACT)
        seconds["MLflow logging"] = time.perf_counter() - start
    return result


if __name__ == "__main__":  # pragma: no cover - thin entry point
    from nbo.tracking.registry import configure

    if len(sys.argv) not in (3, 4):
        sys.exit("usage: python -m nbo.pipelines.train DATA_DIR AS_OF [CONFIG_YAML]")
    configure()
    settings = load_config(sys.argv[3]) if len(sys.argv) == 4 else None
    outcome = train(ClubData(sys.argv[1]), as_datetime(sys.argv[2]), config=settings)
    print({k: round(v, 4) for k, v in outcome.metrics.items()})
