"""Decision commands: ``nbo decide`` (batch offers for campaign tools) and ``nbo history``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import polars as pl
import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from nbo.cli.common import EngineOpt, RayAddressOpt, console, fails_cleanly
from nbo.cli.models import (
    DEFAULT_MODEL,
    DataOpt,
    ModelOpt,
    OutOpt,
    _bundle,
    _club,
    _date,
    _write,
    priors,
)
from nbo.engine import Engine

if TYPE_CHECKING:
    from nbo.data.keys import MemberKeys
    from nbo.pipelines.decide import BatchDecisions
    from nbo.tracking.bundle import Bundle

__all__ = ["decide_cmd", "register"]

OUTPUT_COLUMNS = (
    "decision_id", "member_id", "offer_id", "campaign_id", "channel", "rank", "p_redeem",
    "p_buy", "uplift", "uplift_measured", "value", "cost", "incremental_value",
    "expected_value", "expected_cost", "send_at", "reason", "propensity", "explored", "track",
    "model_version",
)  # fmt: skip

history_app = typer.Typer(help="The interaction history store.", no_args_is_help=True)
DatabaseOpt = Annotated[
    str | None,
    typer.Option("--database-url", help="SQLAlchemy URL (default: NBO_DATABASE_URL or nbo.db)."),
]


def summary_table(summary: pl.DataFrame, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("campaign", "members", "offers", "exp. redemptions", "exp. cost",
                   "incremental value", "ROI", "uplift",
                   "if every redemption counted"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("campaign", "uplift") else "right")
    for row in summary.iter_rows(named=True):
        roi = "-" if row["roi"] is None else f"{row['roi']:.2f}"
        table.add_row(
            str(row["campaign_id"]),
            f"{row['members']:,}",
            f"{row['offers']:,}",
            f"{row['expected_redemptions']:,.1f}",
            f"{row['expected_cost']:,.2f}",
            f"{row['incremental_value']:,.2f}",
            roi,
            "measured" if row["uplift_measured"] else "assumed",
            f"{row['net_value']:,.2f}",
        )
    return table


def uplift_note(decisions: pl.DataFrame) -> str | None:
    """The line saying the uplift is an assumption, where any decision's is not measured."""
    assumed = decisions.filter(~pl.col("uplift_measured")).height
    if not assumed:
        return None
    return (
        f"uplift assumed, not measured, for {assumed:,} of {decisions.height:,} decisions: "
        "no randomized exposure to learn from, so uplift = p_redeem × (1 − p_buy) "
        "(docs/uplift.md); incremental values rest on that assumption"
    )


def print_decisions(
    batch: BatchDecisions, *, examples: int = 0, keys: MemberKeys | None = None
) -> None:
    """The per-campaign summary, the allocation's gap to its bound, and a few members' lists."""
    from nbo.pipelines.decide import campaign_summary

    decisions = batch.result.decisions
    console.print(summary_table(campaign_summary(decisions), "Decisions per campaign"))
    if (note := uplift_note(decisions)) is not None:
        console.print(note, style="yellow", markup=False)
    allocation = batch.result.allocation
    if allocation is not None:
        console.print(
            f"{decisions.height:,} decisions for {decisions['member_id'].n_unique():,} members "
            f"from {batch.candidates:,} scored candidates ({batch.offers} active offers); "
            f"allocation value {allocation.objective:,.2f} = {allocation.gap:.2%} of the "
            f"upper bound {allocation.bound:,.2f}",
            markup=False,
        )
    if examples and decisions.height:
        shown = decisions["member_id"].unique(maintain_order=True).head(examples)
        table = Table(title="Some members' offers", title_justify="left")
        for column in ("member", "rank", "offer", "p_redeem", "p_buy", "uplift", "send at"):
            # keys are copied whole; the figures may wrap on a narrow terminal, the reason last
            table.add_column(column, no_wrap=column in ("member", "rank", "offer"))
        table.add_column("reason")
        for row in decisions.filter(pl.col("member_id").is_in(shown.implode())).iter_rows(
            named=True
        ):
            table.add_row(
                str(keys.key_of(row["member_id"]) if keys else row["member_id"]),
                str(row["rank"]),
                row["offer_id"],
                f"{row['p_redeem']:.3f}",
                f"{row['p_buy']:.3f}",
                f"{row['uplift']:+.3f}",
                f"{row['send_at']:%Y-%m-%d %H:%M}",
                row["reason"],
            )
        console.print(table)


@fails_cleanly
def decide_cmd(
    data: DataOpt,
    at: Annotated[str, typer.Option("--at", help="Decide as of this date (YYYY-MM-DD).")],
    out: OutOpt,
    model: ModelOpt = DEFAULT_MODEL,
    policy: Annotated[
        Path | None, typer.Option("--policy", help="Policy YAML (default policy if omitted).")
    ] = None,
    campaign: Annotated[
        str | None, typer.Option("--campaign", help="Only this campaign's offers.")
    ] = None,
    channel: Annotated[str, typer.Option(help="Channel the offers go out on.")] = "email",
    record: Annotated[
        bool, typer.Option(help="Record the decisions in the interaction history.")
    ] = True,
    database_url: DatabaseOpt = None,
    examples: Annotated[int, typer.Option(help="Print this many members' lists.")] = 0,
    members_per_chunk: Annotated[
        int | None,
        typer.Option(
            help="Members scored per chunk (default 100,000): bounds a chunk's memory; with "
            "--engine ray, each chunk is one task.",
            min=1,
        ),
    ] = None,
    engine: EngineOpt = Engine.local,
    ray_address: RayAddressOpt = "",
) -> None:
    """Decide every member's offers within the policy and the campaign budgets. With --engine
    ray, each chunk of members is scored by a Ray task (same decisions as --engine local)."""
    from nbo.decisioning.policy import load_policy
    from nbo.engine import import_ray
    from nbo.history import InteractionStore
    from nbo.pipelines.candidates import MEMBERS_PER_CHUNK
    from nbo.pipelines.decide import decide_batch

    if engine is Engine.ray:
        import_ray()  # before any work: without the extra, a clear error now
    when = _date(at, "--at")
    rules = load_policy(policy)
    rules.check_channel(channel)
    club = _club(data)
    bundle = _bundle(model)
    store = InteractionStore(database_url)
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task("contact history", total=None)
        contacts = store.contact_state(when)
        batch = decide_batch(
            club, bundle, rules, at=when, channel=channel, campaign=campaign, contacts=contacts,
            stage=lambda name: progress.update(task, description=name),
            members_per_chunk=members_per_chunk or MEMBERS_PER_CHUNK, engine=engine,
            ray_address=ray_address, work_dir=out.resolve().parent,
        )  # fmt: skip
        decisions = batch.result.decisions
        recorded = 0
        if record:
            progress.update(task, description="recording decisions")
            recorded = store.record_decisions(decisions)
    store.close()
    _write(decisions.select(OUTPUT_COLUMNS), out, club.keys)
    if record:
        again = decisions.height - recorded
        console.print(
            f"recorded {recorded:,} decisions in {store!r}"
            + (f" ({again:,} already recorded by an earlier run for the day)" if again else ""),
            markup=False,
        )
    if batch.ray_tasks:
        nodes = len({scored.node_id for scored in batch.ray_tasks})
        console.print(
            f"scored {len(batch.ray_tasks)} member chunk(s) as Ray tasks on {nodes} node(s)",
            markup=False,
        )
    print_decisions(batch, examples=examples, keys=club.keys)
    for note in prior_notes(bundle):
        console.print(note, style="yellow", markup=False)


def prior_notes(bundle: Bundle) -> list[str]:
    """One line per pair model that learned nothing and predicts its documented prior."""
    return [
        f"{score} is the documented prior, not learned ({why}; docs/cold-start.md)"
        for _, score, why in priors(bundle)
    ]


@history_app.command("migrate")
@fails_cleanly
def migrate_cmd(database_url: DatabaseOpt = None) -> None:
    """Create or upgrade the interaction history tables (alembic upgrade head)."""
    from nbo.history import InteractionStore

    with InteractionStore(database_url) as store:
        console.print(f"interaction history ready: {store!r}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("decide")(decide_cmd)
    app.add_typer(history_app, name="history")
