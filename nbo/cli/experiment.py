"""Experiment commands: ``nbo experiment report`` (arms against the holdout) and
``nbo experiment evaluate-policy`` (a candidate policy, off-policy, before launch)."""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from nbo.cli.common import console, fails_cleanly
from nbo.cli.decide import DatabaseOpt
from nbo.cli.models import DEFAULT_MODEL, ModelOpt
from nbo.errors import NboError

if TYPE_CHECKING:
    import polars as pl

    from nbo.evaluation.experiment import ExperimentFrames
    from nbo.pipelines.policy_eval import PolicyEvaluation

__all__ = [
    "OPE_EXPERIMENT",
    "evaluate_policy_cmd",
    "experiment_app",
    "log_report",
    "register",
    "report_cmd",
]

OPE_EXPERIMENT = "nbo-ope"
ONLINE = "nbo-online"  # nbo.tracking.online.ONLINE_EXPERIMENT, named here for --help

experiment_app = typer.Typer(
    help="Champion / challenger / holdout experiments and off-policy evaluation.",
    no_args_is_help=True,
)
SinceOpt = Annotated[
    str | None, typer.Option(help="Only members assigned on/after this date (YYYY-MM-DD).")
]


def parse_since(since: str | None) -> date | None:
    """``--since`` as a date, or a clear error."""
    if since is None:
        return None
    try:
        return date.fromisoformat(since)
    except ValueError:
        raise NboError(f"--since {since!r} is not a date (YYYY-MM-DD)") from None


LogOpt = Annotated[
    bool, typer.Option("--log/--no-log", help=f"Also log the report to MLflow ({ONLINE}).")
]
EveryOpt = Annotated[
    int, typer.Option(help="Days per period of the report over time (MLflow plots).", min=1)
]


@experiment_app.command("report")
@fails_cleanly
def report_cmd(
    database_url: DatabaseOpt = None, since: SinceOpt = None, log: LogOpt = True,
    every: EveryOpt = 7,
) -> None:  # fmt: skip
    """Redemption rate and spend per arm, and per campaign what each arm adds to the holdout,
    with 95% confidence intervals, from the history; logged as one run of the MLflow
    experiment nbo-online (per arm, over time, with the model versions behind each arm)."""
    from nbo.evaluation.experiment import arm_report, incremental_report
    from nbo.history import InteractionStore
    from nbo.history.logs import experiment_log, logged_decisions

    start = parse_since(since)
    begin = None if start is None else datetime.combine(start, time())
    with InteractionStore(database_url) as store:
        logged = experiment_log(store.engine, start)
        served = logged_decisions(store.engine, begin) if log else None
    report = arm_report(logged)
    # two narrow tables rather than one wide one: each fits an 80-column terminal
    reach = Table(title="Experiment arms: who was served", title_justify="left")
    effect = Table(title="Experiment arms: redemptions and spend (95% CI)", title_justify="left")
    for table, columns in (
        (reach, ("arm", "members", "served", "decisions", "redeemers")),
        (effect, ("arm", "redemption rate", "95% CI", "spend / member", "95% CI ", "lift")),
    ):
        for column in columns:
            table.add_column(column, justify="left" if column == "arm" else "right")
    for row in report.iter_rows(named=True):
        lift = row["rate_lift_vs_holdout"]
        reach.add_row(row["arm"], f"{row['members']:,}", f"{row['served']:,}",
                      f"{row['decisions']:,}", f"{row['redeemers']:,}")  # fmt: skip
        effect.add_row(
            row["arm"], f"{row['redemption_rate']:.4f}",
            f"{row['rate_low']:.4f}–{row['rate_high']:.4f}", f"{row['spend_per_member']:.3f}",
            f"{row['spend_low']:.3f}–{row['spend_high']:.3f}",
            "-" if lift is None else f"{lift:+.4f}",
        )  # fmt: skip
    console.print(reach)
    console.print(effect)
    console.print("lift: redemption rate minus the holdout's", markup=False)
    incremental = incremental_report(logged.assignments, logged.redemptions)
    console.print(incremental_table(incremental))
    if served is not None:
        run_id = log_report(logged, report, incremental, served, since=since, every=every)
        console.print(f"logged to MLflow experiment {ONLINE} (run {run_id})", markup=False)


def log_report(
    logged: ExperimentFrames,
    report: pl.DataFrame,
    incremental: pl.DataFrame,
    served: pl.DataFrame,
    *,
    since: str | None,
    every: int,
) -> str:
    """Log one report to MLflow (``nbo-online``): per arm, over time and its figures."""
    import polars as pl

    from nbo.evaluation.experiment import arm_report_over_time
    from nbo.evaluation.online_plots import experiment_figures
    from nbo.tracking.online import log_experiment_report

    over_time = arm_report_over_time(logged, timedelta(days=every))
    versions = served.drop_nulls("arm").group_by("arm").agg(pl.col("model_version").unique().sort())
    seen = [logged.assignments["assigned_at"].max(), logged.redemptions["ts"].max()]
    until = max((t for t in seen if isinstance(t, datetime)), default=None)
    return log_experiment_report(
        report,
        arm_models=dict(versions.iter_rows()),
        since=since,
        until=until,
        over_time=over_time,
        incremental=incremental,
        figures=experiment_figures(over_time),
    )


def incremental_table(incremental: pl.DataFrame) -> Table | str:
    """Per campaign and arm: incremental redemptions and spend per member, or why none."""
    if incremental.height == 0:
        return "incremental impact: no holdout members or no redemptions yet"
    table = Table(
        title="Incremental per member vs holdout (95% CI, normal approx.)", title_justify="left"
    )
    for column in ("campaign", "arm", "redemptions", "95% CI", "spend", "95% CI "):
        table.add_column(column, justify="left" if column in ("campaign", "arm") else "right")
    for row in incremental.iter_rows(named=True):
        table.add_row(
            row["campaign_id"], row["arm"], f"{row['incremental_redemptions']:+.4f}",
            f"{row['redemptions_low']:+.4f}–{row['redemptions_high']:+.4f}",
            f"{row['incremental_spend']:+.3f}",
            f"{row['spend_low']:+.3f}–{row['spend_high']:+.3f}",
        )  # fmt: skip
    return table


@experiment_app.command("evaluate-policy")
@fails_cleanly
def evaluate_policy_cmd(
    policy: Annotated[Path, typer.Option("--policy", help="The candidate policy (YAML).")],
    model: ModelOpt = DEFAULT_MODEL,
    since: Annotated[
        str | None, typer.Option(help="Only decisions made on/after this date (YYYY-MM-DD).")
    ] = None,
    data: Annotated[
        Path | None, typer.Option("--data", help="Club dataset (default NBO_DATA_DIR).")
    ] = None,
    database_url: DatabaseOpt = None,
    clip: Annotated[float, typer.Option(help="Cap on each importance weight.", min=1.0)] = 20.0,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap intervals.")] = 0,
) -> None:
    """Estimate a candidate policy's redemptions and incremental value from the logged
    decisions, their propensities and events (IPS, SNIPS, DR), before launching it."""
    from nbo.cli.models import _bundle
    from nbo.data.io import ClubData
    from nbo.decisioning.policy import load_policy
    from nbo.errors import EvaluationError
    from nbo.history import InteractionStore
    from nbo.history.logs import logged_decisions, redemption_events
    from nbo.pipelines.policy_eval import evaluate_policy, logged_outcomes, redecide
    from nbo.settings import get_settings

    rules = load_policy(policy)
    start = parse_since(since)
    root = data if data is not None else get_settings().data_dir
    if not (root / "manifest.json").is_file():
        raise NboError(f"--data {root}: no imported club dataset there")
    club = ClubData(root)
    begin = None if start is None else datetime.combine(start, time())
    with InteractionStore(database_url) as store:
        logged = logged_decisions(store.engine, begin)
        if logged.height == 0:
            raise EvaluationError(
                f"no logged decisions{'' if start is None else f' since {start}'} in {store!r}; "
                "nothing to evaluate the policy on"
            )
        redemptions = redemption_events(store.engine, begin)
        bundle = _bundle(model)
        with console.status("re-deciding the logged days with the candidate policy"):
            target = redecide(club, bundle, rules, logged, lambda day: store.contact_state(day))
    outcomes = logged_outcomes(logged, redemptions, club)
    result = evaluate_policy(outcomes, target, clip=clip, seed=seed)
    console.print(ope_table(result))
    if result.decisions_without_value:
        console.print(
            f"{result.decisions_without_value:,} of {result.decisions:,} logged decisions have "
            "no p_buy/value/cost (decided before they were recorded): their contexts count "
            "for redemptions only",
            markup=False,
        )
    digest = hashlib.sha256(rules.model_dump_json().encode()).hexdigest()[:12]
    log_evaluation(result, policy_digest=digest, model_version=bundle.version, since=since,
                   clip=clip)  # fmt: skip


def ope_table(result: PolicyEvaluation) -> Table:
    """Estimator x reward: estimate, 95% interval, ESS, clipped weights and coverage."""
    table = Table(
        title=f"Candidate policy, per member-day ({result.contexts:,} logged, "
        f"{result.decisions:,} decisions)",
        title_justify="left",
    )
    for column in ("reward", "estimator", "estimate", "95% CI", "ESS", "clipped", "coverage"):
        table.add_column(column, justify="left" if column in ("reward", "estimator") else "right")
    for reward, estimates, logged in (
        ("redemptions", result.redemptions, result.logged_redemptions),
        ("incr. value", result.incremental_value, result.logged_incremental_value),
    ):
        if estimates is None or logged is None:
            table.add_row(reward, "-", "no logged decision has p_buy/value/cost", *[""] * 4)
            continue
        table.add_row(reward, "logged", f"{logged:.4f}", "", "", "", "")
        for name, found in estimates.items():
            table.add_row(
                reward, name, f"{found.estimate:.4f}", f"{found.low:.4f}–{found.high:.4f}",
                f"{found.ess:,.0f}", f"{found.clipped:,}", f"{found.coverage:.0%}",
            )  # fmt: skip
    return table


def log_evaluation(
    result: PolicyEvaluation,
    *,
    policy_digest: str,
    model_version: str,
    since: str | None,
    clip: float,
) -> None:
    """One run in the MLflow experiment ``nbo-ope``: the parameters and every estimate."""
    import mlflow

    from nbo.tracking.registry import configure, experiment_id

    configure()
    with mlflow.start_run(experiment_id=experiment_id(OPE_EXPERIMENT)):
        mlflow.log_params({"policy_digest": policy_digest, "model_version": model_version,
                           "since": since or "all", "clip": clip})  # fmt: skip
        metrics = {"contexts": float(result.contexts), "decisions": float(result.decisions)}
        rows = []
        for reward, estimates in (
            ("redemptions", result.redemptions),
            ("incremental_value", result.incremental_value),
        ):
            for name, found in (estimates or {}).items():
                values = asdict(found)
                rows.append({"reward": reward} | values)
                for key in ("estimate", "low", "high", "ess", "clipped", "coverage"):
                    metrics[f"{reward}.{name}.{key}"] = float(values[key])
        mlflow.log_metrics(metrics)
        mlflow.log_dict({"estimates": rows}, "ope.json")


def register(app: typer.Typer) -> None:
    app.add_typer(experiment_app, name="experiment")
