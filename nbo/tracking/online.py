"""What happens live, in MLflow next to the training runs.

* ``nbo experiment report`` logs one run per report to the experiment :data:`ONLINE_EXPERIMENT`
  (``nbo-online``): per arm the members, decisions, redemptions, redemption rate and lift over
  the holdout with their 95 % intervals, spend per member, the model versions behind the arm,
  and the same over time (metric history, one step per period, and figures).
* ``nbo monitor`` logs one run per live model version to :data:`MONITOR_EXPERIMENT`
  (``nbo-monitor``): calibration, drift (PSI) and the alerts raised.

Frames and figures come from the caller (``nbo.evaluation`` computes them; tracking sits below
it and does not import it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import mlflow
import polars as pl
from mlflow.exceptions import MlflowException

from nbo.tracking.bundle import BUNDLE_FILE, Bundle, BundleError
from nbo.tracking.registry import RegistryError, configure, experiment_id, load_bundle

__all__ = [
    "MONITOR_EXPERIMENT",
    "ONLINE_EXPERIMENT",
    "REPORT_METRICS",
    "bundle_reference",
    "log_experiment_report",
    "log_model_health",
]

ONLINE_EXPERIMENT = "nbo-online"
MONITOR_EXPERIMENT = "nbo-monitor"

REPORT_METRICS = {
    "members": "members",
    "served": "served",
    "decisions": "decisions",
    "redeemers": "redeemers",
    "redemptions": "redemptions",
    "redemption_rate": "redemption_rate",
    "rate_low": "redemption_rate_ci_low",
    "rate_high": "redemption_rate_ci_high",
    "spend_per_member": "spend_per_member",
    "spend_low": "spend_per_member_ci_low",
    "spend_high": "spend_per_member_ci_high",
    "rate_lift_vs_holdout": "lift_over_holdout",
    "lift_low": "lift_over_holdout_ci_low",
    "lift_high": "lift_over_holdout_ci_high",
}
"""Report column -> MLflow metric name (prefixed by the arm: ``champion_redemption_rate``)."""


def _finite(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Numbers MLflow can store: None, NaN and infinities left out."""
    out = {}
    for name, value in metrics.items():
        if value is not None and math.isfinite(float(value)):
            out[name] = float(value)
    return out


def _table(frame: pl.DataFrame, path: str) -> None:
    if frame.height:
        mlflow.log_table(frame.to_pandas(), path)


def log_experiment_report(
    report: pl.DataFrame,
    *,
    arm_models: Mapping[str, list[str]],
    since: str | None,
    until: datetime | None,
    over_time: pl.DataFrame | None = None,
    incremental: pl.DataFrame | None = None,
    figures: Mapping[str, Any] | None = None,
) -> str:
    """One run in ``nbo-online`` for one experiment report; returns its run id.

    ``report`` is :func:`nbo.evaluation.experiment.arm_report`'s frame, ``over_time`` its
    :func:`~nbo.evaluation.experiment.arm_report_over_time` (logged as metric history, step =
    period, timestamp = the period's end), ``arm_models`` the model versions that decided for
    each arm.
    """
    configure()
    with mlflow.start_run(
        experiment_id=experiment_id(ONLINE_EXPERIMENT),
        run_name=f"experiment report {datetime.now():%Y-%m-%d %H:%M}",
    ) as run:
        params = {"since": since or "all", "until": until.isoformat() if until else "none"}
        for arm, versions in sorted(arm_models.items()):
            params[f"{arm}_model_versions"] = ",".join(versions)[:500]
        mlflow.log_params(params)
        mlflow.set_tags({"nbo.kind": "experiment-report", "arms": ",".join(report["arm"])})
        metrics: dict[str, Any] = {}
        for row in report.iter_rows(named=True):
            for column, name in REPORT_METRICS.items():
                metrics[f"{row['arm']}_{name}"] = row.get(column)
        mlflow.log_metrics(_finite(metrics))
        if over_time is not None and over_time.height:
            for step, ((end,), rows) in enumerate(
                over_time.sort("period_end").group_by("period_end", maintain_order=True)
            ):
                stamp = int(end.timestamp() * 1000)
                for row in rows.iter_rows(named=True):
                    values = {f"over_time/{row['arm']}_{name}": row.get(column)
                              for column, name in REPORT_METRICS.items()}  # fmt: skip
                    for name, value in _finite(values).items():
                        mlflow.log_metric(name, value, step=step, timestamp=stamp)
            _table(over_time, "tables/over_time.json")
        _table(report, "tables/arms.json")
        if incremental is not None:
            _table(incremental, "tables/incremental.json")
        for name, figure in (figures or {}).items():
            mlflow.log_figure(figure, f"plots/{name}.png")
        return str(run.info.run_id)


def log_model_health(
    model_version: str,
    *,
    metrics: Mapping[str, float],
    deciles: pl.DataFrame,
    alerts: list[str],
    params: Mapping[str, Any],
    figures: Mapping[str, Any] | None = None,
) -> str:
    """One run in ``nbo-monitor`` for one live model version; returns its run id."""
    configure()
    with mlflow.start_run(
        experiment_id=experiment_id(MONITOR_EXPERIMENT),
        run_name=f"monitor {model_version} {datetime.now():%Y-%m-%d %H:%M}",
    ) as run:
        mlflow.set_tags({"nbo.kind": "monitor", "model_version": model_version,
                         "alert": "yes" if alerts else "no"})  # fmt: skip
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow.log_metrics(_finite(metrics))
        _table(deciles, "tables/calibration_deciles.json")
        mlflow.log_dict({"alerts": alerts}, "alerts.json")
        for name, figure in (figures or {}).items():
            mlflow.log_figure(figure, f"plots/{name}.png")
        return str(run.info.run_id)


def bundle_reference(model_version: str) -> dict[str, Any] | None:
    """The training reference (score bins) recorded in the bundle of ``model_version`` (a
    registered bundle's version is ``run:<run id>``); None when the bundle has none or is not
    in the tracking store."""
    if not model_version.startswith("run:"):
        return None
    configure()
    run = f"runs:/{model_version.removeprefix('run:')}/bundle"
    try:  # the bundle file alone, not the model's copy of nbo's code beside it
        file = mlflow.artifacts.download_artifacts(artifact_uri=f"{run}/artifacts/{BUNDLE_FILE}")
        bundle = Bundle.load(file)
    except (MlflowException, OSError, BundleError):
        try:
            bundle = load_bundle(run)
        except (RegistryError, BundleError):
            return None
    reference: dict[str, Any] | None = getattr(bundle, "reference", None)
    return reference
