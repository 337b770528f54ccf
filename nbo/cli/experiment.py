"""Experiment commands: ``nbo experiment report`` (arms against the holdout) and
``nbo experiment evaluate-policy`` (a candidate policy, off-policy, before launch)."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from nbo.cli.common import console, fails_cleanly
from nbo.cli.decide import DatabaseOpt
from nbo.errors import NboError

if TYPE_CHECKING:
    import polars as pl

__all__ = ["experiment_app", "register", "report_cmd"]

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


@experiment_app.command("report")
@fails_cleanly
def report_cmd(database_url: DatabaseOpt = None, since: SinceOpt = None) -> None:
    """Redemption rate and spend per arm, and per campaign what each arm adds to the holdout,
    with 95% confidence intervals, from the history."""
    from nbo.evaluation.experiment import arm_report, incremental_report
    from nbo.history import InteractionStore
    from nbo.history.logs import redemption_events

    start = parse_since(since)
    with InteractionStore(database_url) as store:
        frames = store.experiment_frames(start)
        redemptions = redemption_events(
            store.engine, None if start is None else datetime.combine(start, time())
        )
    report = arm_report(frames)
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
    console.print(incremental_table(incremental_report(frames.assignments, redemptions)))


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


def register(app: typer.Typer) -> None:
    app.add_typer(experiment_app, name="experiment")
