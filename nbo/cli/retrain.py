"""Promotion commands: ``nbo promote`` (the like-for-like gate) and ``nbo retrain`` (the nightly
job: train on everything, compare, promote, plan the next day, tell the service). Exit codes
in docs/retraining.md: 0 promoted, 2 bad input, 3 kept the champion, 4 promoted but the
service was not updated (the plan or the reload failed)."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from nbo.cli.common import console, err_console, fails_cleanly
from nbo.cli.models import DataOpt, HistoryUrlOpt, _exposure, print_skipped
from nbo.errors import NboError

if TYPE_CHECKING:
    from nbo.pipelines.retrain import RetrainResult

__all__ = ["EXIT_KEPT", "EXIT_NOT_UPDATED", "promote_cmd", "register", "retrain_cmd"]

EXIT_KEPT = 3
EXIT_NOT_UPDATED = 4
ADMIN_KEY_ENV = "NBO_ADMIN_KEY"
CHALLENGER_ENV = "NBO_CHALLENGER_URI"

ToleranceOpt = Annotated[
    float, typer.Option(help="Relative slack, e.g. 0.01 = 1% worse is ok.", min=0.0)
]


def comparison_table(outcome: RetrainResult) -> Table:
    """Candidate against champion per window and metric, with the verdict."""
    promotion = outcome.promotion
    table = Table(
        title=f"Candidate {promotion.candidate} against champion {promotion.champion}",
        title_justify="left",
    )
    for column in ("window", "metric", "candidate", "champion", "verdict"):
        table.add_column(column, justify="right" if column in ("candidate", "champion") else "left")
    for check in promotion.checks:
        table.add_row(
            check.window,
            check.metric,
            f"{check.candidate:.4f}",
            f"{check.champion:.4f}",
            check.verdict,
        )
    notes = [
        f"{n.days}d: from {n.cut:%Y-%m-%d}, champion {n.champion_model}" for n in outcome.windows
    ]
    table.caption = "; ".join(notes) or None
    return table


def _report(outcome: RetrainResult) -> None:
    """Print the comparison and the verdict; exit 3 when the champion stays."""
    promotion = outcome.promotion
    if promotion.checks:
        console.print(comparison_table(outcome))
    else:
        for reason in promotion.reasons:
            console.print(f"  {reason}", markup=False)
    if outcome.seconds:
        console.print(
            "stages: " + ", ".join(f"{k} {v:.1f}s" for k, v in outcome.seconds.items()),
            markup=False,
        )
    if promotion.promoted:
        console.print(f"champion is now version {promotion.candidate}", markup=False)
        return
    for reason in promotion.reasons[len(promotion.checks) :]:
        console.print(f"  {reason}", markup=False)
    console.print(
        f"candidate {promotion.candidate} not promoted; champion stays "
        f"{promotion.champion} (use --force to override)",
        markup=False,
    )
    raise typer.Exit(EXIT_KEPT)


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
    )


@fails_cleanly
def promote_cmd(
    force: Annotated[
        bool, typer.Option("--force", help="Promote without the metric gate.")
    ] = False,
    tolerance: ToleranceOpt = 0.0,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data", help="Club data to compare on (default: what the candidate trained on)."
        ),
    ] = None,
) -> None:
    """Move alias champion to the candidate if it is no worse, like for like.

    Both are measured on the same recent windows (evaluation.windows_days), members and
    pairs; the numbers and the verdict go to the candidate's MLflow run. Exit code 3 when the
    champion stays.
    """
    from nbo.pipelines.retrain import promote_candidate
    from nbo.tracking.registry import configure

    configure()
    with _progress() as progress:
        task = progress.add_task("reading the registry", total=None)
        outcome = promote_candidate(
            data,
            force=force,
            tolerance=tolerance,
            on_stage=lambda name: progress.update(task, description=name),
        )
    _report(outcome)


@fails_cleanly
def retrain_cmd(
    data: DataOpt,
    config: Annotated[
        Path | None, typer.Option("--config", help="Training configuration YAML.")
    ] = None,
    service_url: Annotated[
        str | None,
        typer.Option(
            "--service-url",
            help=f"Offer service to reload after a promotion (admin key in ${ADMIN_KEY_ENV}).",
        ),
    ] = None,
    plans: Annotated[
        Path | None,
        typer.Option(
            "--plans",
            help="After a promotion, plan the day after the last receipt with the new "
            "champion into this plan directory (what nbo serve reads).",
        ),
    ] = None,
    policy: Annotated[
        Path | None, typer.Option("--policy", help="Policy YAML for --plans (default policy).")
    ] = None,
    tolerance: ToleranceOpt = 0.0,
    experiment: Annotated[str, typer.Option(help="MLflow experiment name.")] = "nbo",
    history_url: HistoryUrlOpt = None,
) -> None:
    """Train on all the data, compare like for like, promote if no worse, plan, reload.

    Exit codes: 0 promoted (and planned and reloaded when asked), 2 bad input, 3 kept the
    champion, 4 promoted but the service was not updated (the plan or the reload failed).
    """
    from nbo.data.io import ClubData
    from nbo.decisioning.policy import load_policy
    from nbo.pipelines.compare import data_end
    from nbo.pipelines.config import load_config
    from nbo.pipelines.retrain import ReloadError, reload_service, retrain
    from nbo.tracking.registry import configure

    settings = load_config(config) if config is not None else None
    if policy is not None:
        load_policy(policy)  # a bad policy fails now, not after an hour of training
    key = os.environ.get(ADMIN_KEY_ENV, "")
    if service_url is not None and not key:
        raise NboError(f"--service-url needs an admin API key in ${ADMIN_KEY_ENV}")
    club = ClubData(data)
    exposure = _exposure(history_url, data_end(club)) if history_url is not None else None
    uri = configure()
    with _progress() as progress:
        task = progress.add_task("starting", total=None)
        outcome = retrain(
            club,
            settings,
            experiment=experiment,
            tolerance=tolerance,
            on_stage=lambda name: progress.update(task, description=name),
            exposure=exposure,
        )
    trained = outcome.trained
    if trained is not None:
        console.print(
            f"trained as of {trained.bundle.as_of:%Y-%m-%d} on every receipt; registered nbo "
            f"version {trained.version} as candidate (run {trained.run_id}) in {uri}",
            markup=False,
        )
        print_skipped(trained.bundle)
    _report(outcome)
    if plans is not None and trained is not None:
        _plan(data, trained.bundle.as_of, plans, policy)
    if service_url is None:
        return
    try:
        models = reload_service(service_url, key)
    except ReloadError as exc:
        err_console.print(f"[bold red]reload failed:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_NOT_UPDATED) from None
    served = ", ".join(f"{arm} {model}" for arm, model in models.items())
    console.print(f"service reloaded: {served}", markup=False)


def _plan(data: Path, day: datetime, plans: Path, policy: Path | None) -> None:
    """Plan ``day`` with the new champion (and ``$NBO_CHALLENGER_URI``); exit 4 on failure."""
    from nbo.cli.plan import plan_cmd

    try:
        plan_cmd(
            data, f"{day:%Y-%m-%d}", plans, challenger=os.environ.get(CHALLENGER_ENV), policy=policy
        )
    except typer.Exit:
        err_console.print(
            f"[bold red]promoted, but the plan for {day:%Y-%m-%d} was not written[/]; the "
            "service still serves the old one",
            highlight=False,
        )
        raise typer.Exit(EXIT_NOT_UPDATED) from None


def register(app: typer.Typer) -> None:
    app.command("promote")(promote_cmd)
    app.command("retrain")(retrain_cmd)
