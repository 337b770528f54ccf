"""Model health: ``nbo monitor`` (calibration and drift of each live model version).

Exit codes, for a scheduler: 0 healthy (or nothing to judge yet), 2 bad input, 4 an alert
fired (thresholds: ``NBO_MONITOR_*`` settings).
"""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from nbo.cli.common import console, fails_cleanly
from nbo.cli.decide import DatabaseOpt
from nbo.cli.experiment import SinceOpt, parse_since
from nbo.errors import NboError

if TYPE_CHECKING:
    import polars as pl

    from nbo.evaluation.monitor import ModelHealth, Thresholds
    from nbo.plans import DayPlan
    from nbo.tracking.bundle import Bundle

__all__ = [
    "EXIT_ALERT",
    "health_table",
    "monitor_cmd",
    "planned_drift",
    "planned_psi",
    "register",
    "served_outcomes",
]

EXIT_ALERT = 4


def served_outcomes(
    logged: pl.DataFrame, redemptions: pl.DataFrame, data: Path, outcome_days: int
) -> pl.DataFrame:
    """The logged decisions with ``redeemed`` (the offer redeemed in its window, the rule of
    off-policy evaluation) and ``settled``: decided at least ``outcome_days`` before the
    newest decision or event in the history (the history's now, also for a replayed club)."""
    import polars as pl

    from nbo.data.io import ClubData
    from nbo.pipelines.policy_eval import logged_outcomes

    if not (data / "manifest.json").is_file():
        raise NboError(f"--data {data}: no imported club dataset there (it gives offer windows)")
    outcomes = logged_outcomes(logged, redemptions, ClubData(data))
    seen = [logged["decided_at"].max(), redemptions["ts"].max()]
    now = max(t for t in seen if isinstance(t, datetime))
    return outcomes.with_columns(settled=pl.col("decided_at") <= now - timedelta(days=outcome_days))


def planned_psi(plan_dir: Path, since: date | None) -> dict[str, dict[str, float]]:
    """Model version -> score -> PSI of the candidates of its latest day plan in ``plan_dir``
    (on/after ``since``), from the plans' manifests (:func:`planned_drift` wrote them)."""
    from nbo.plans import planned_days, read_manifest

    found: dict[str, dict[str, float]] = {}
    if not plan_dir.is_dir():
        return found
    for day in planned_days(plan_dir):  # oldest first: a later plan's numbers win
        if since is not None and day < since:
            continue
        for drift in ((read_manifest(plan_dir, day) or {}).get("drift") or {}).values():
            found[str(drift["version"])] = {k: float(v) for k, v in drift["psi"].items()}
    return found


def _ratio(value: float) -> str:
    return "-" if math.isnan(value) else "inf" if math.isinf(value) else f"{value:.2f}"


def _psi(value: float, thresholds: Thresholds) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:.3f}" + (" !" if value > thresholds.max_psi else "")


def health_table(healths: list[ModelHealth], thresholds: Thresholds) -> Table:
    """One row per live model version: calibration and PSI, marked where over a threshold."""
    table = Table(
        title=f"Model health (alert: calibration off by > {thresholds.max_calibration_ratio:g}x, "
        f"PSI > {thresholds.max_psi:g})",
        title_justify="left",
    )
    for column in ("model version", "decisions", "settled", "predicted", "observed (95% CI)",
                   "ratio", "PSI p_redeem", "PSI p_buy", "plan PSI p_redeem"):  # fmt: skip
        table.add_column(column, justify="left" if column == "model version" else "right")
    for health in healths:
        c = health.calibration
        psi = {name: _psi(v, thresholds) for name, v in health.psi.items()}
        planned = health.planned_psi.get("p_redeem", math.nan)
        calibrated = any(a.startswith("calibration") for a in health.alerts)
        table.add_row(
            health.model_version, f"{health.decisions:,}", f"{c.decisions:,}",
            "-" if not c.decisions else f"{c.predicted:.4f}",
            "-" if not c.decisions
            else f"{c.observed:.4f} ({c.observed_low:.4f}–{c.observed_high:.4f})",
            _ratio(c.ratio) + (" !" if calibrated else ""),
            psi.get("p_redeem", "-"), psi.get("p_buy", "-"), _psi(planned, thresholds),
        )  # fmt: skip
    table.caption = (
        "ratio: mean predicted p_redeem / observed redemption rate; PSI: served scores (the "
        "policy's choices) and the latest plan's candidates against training; ! = alert"
    )
    return table


@fails_cleanly
def monitor_cmd(
    database_url: DatabaseOpt = None,
    since: SinceOpt = None,
    data: Annotated[
        Path | None, typer.Option("--data", help="Club dataset (default NBO_DATA_DIR).")
    ] = None,
    plans: Annotated[
        Path | None,
        typer.Option("--plans", help="Plan directory: its plans' drift (default NBO_PLAN_DIR)."),
    ] = None,
    log: Annotated[
        bool, typer.Option("--log/--no-log", help="Also log to MLflow (nbo-monitor).")
    ] = True,
) -> None:
    """Per live model version: predicted against observed redemption rate by score decile
    (calibration) and the drift of the served scores from training (PSI), with alerts.
    Exit code 4 when an alert fired, 0 otherwise."""
    from nbo.evaluation.monitor import Thresholds, model_health
    from nbo.evaluation.reference import references_of
    from nbo.history import InteractionStore
    from nbo.history.logs import logged_decisions, redemption_events
    from nbo.settings import get_settings
    from nbo.tracking.online import bundle_reference

    settings = get_settings()
    start = parse_since(since)
    begin = None if start is None else datetime.combine(start, time())
    with InteractionStore(database_url) as store:
        logged = logged_decisions(store.engine, begin)
        redemptions = redemption_events(store.engine, begin)
    if logged.height == 0:
        console.print(f"no decisions{'' if start is None else f' since {start}'}: nothing to "
                      "monitor yet", markup=False)  # fmt: skip
        return
    root = data if data is not None else settings.data_dir
    outcomes = served_outcomes(logged, redemptions, root, settings.monitor_outcome_days)
    thresholds = Thresholds(
        max_calibration_ratio=settings.monitor_max_calibration_ratio,
        max_psi=settings.monitor_max_psi,
        min_decisions=settings.monitor_min_decisions,
    )
    versions = outcomes["model_version"].unique().sort().to_list()
    references = {v: references_of(bundle_reference(v)) for v in versions}
    planned = planned_psi(plans if plans is not None else settings.plan_dir, start)
    healths = model_health(outcomes, references, thresholds, planned)
    console.print(health_table(healths, thresholds))
    for health in healths:
        if not references[health.model_version]:
            console.print(f"{health.model_version}: no training reference (a bundle trained "
                          "before nbo recorded one, or without holdout pairs): PSI not "
                          "computed", markup=False)  # fmt: skip
        for alert in health.alerts:
            console.print(f"ALERT {health.model_version}: {alert}", markup=False)
    if log:
        _log(healths, thresholds, since=since, outcome_days=settings.monitor_outcome_days)
    if any(h.alerts for h in healths):
        raise typer.Exit(EXIT_ALERT)


def _log(
    healths: list[ModelHealth], thresholds: Thresholds, *, since: str | None, outcome_days: int
) -> None:
    from dataclasses import asdict

    from nbo.evaluation.online_plots import calibration_figure
    from nbo.tracking.online import MONITOR_EXPERIMENT, log_model_health

    for health in healths:
        log_model_health(
            health.model_version,
            metrics=health.metrics(),
            deciles=health.calibration.deciles,
            alerts=health.alerts,
            params=asdict(thresholds) | {"since": since or "all", "outcome_days": outcome_days},
            figures={
                "calibration": calibration_figure(
                    health.calibration, f"Calibration of {health.model_version}"
                )
            },
        )
    console.print(f"logged to MLflow experiment {MONITOR_EXPERIMENT}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("monitor")(monitor_cmd)


def planned_drift(plan: DayPlan, bundles: dict[str, Bundle]) -> dict[str, dict[str, Any]]:
    """Per arm of a day's plan: its model version and the PSI of the plan's candidate scores
    (one channel's rows: every channel plans the same candidates) against the bundle's
    training reference. ``nbo plan`` writes it into the plan's manifest; the service shows it
    as the gauge ``nbo_score_psi``. Arms whose bundle has no reference are left out."""
    import numpy as np

    from nbo.evaluation.monitor import SCORES, psi
    from nbo.evaluation.reference import references_of

    drift: dict[str, dict[str, Any]] = {}
    for arm, part in plan.arms.items():
        references = references_of(getattr(bundles.get(arm), "reference", None))
        if not references or not part.plans:
            continue
        rows = part.plans[sorted(part.plans)[0]]
        values = {
            name: psi(references[name], np.concatenate([p.columns[name] for p in rows]))
            for name in SCORES
            if name in references
        }
        drift[arm] = {
            "version": part.model.version,
            "psi": {name: value for name, value in values.items() if math.isfinite(value)},
        }
    return drift
