"""Model commands: train, promote, evaluate, recommend, score-offers, forecast-visits."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import polars as pl
import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from nbo.cli.common import console, fails_cleanly
from nbo.errors import NboError

if TYPE_CHECKING:  # imported lazily at run time: `nbo --help` stays fast
    from nbo.data.io import ClubData
    from nbo.data.keys import MemberKeys
    from nbo.tracking.bundle import Bundle

__all__ = ["evaluate_cmd", "register", "train_cmd"]

DataOpt = Annotated[Path, typer.Option("--data", help="Club dataset directory.")]
ModelOpt = Annotated[
    str, typer.Option("--model", help="Registry URI (models:/nbo@champion), runs:/… or a path.")
]
OutOpt = Annotated[Path, typer.Option("--out", help="Parquet file to write.")]
DEFAULT_MODEL = "models:/nbo@champion"


def _date(value: str, option: str) -> datetime:
    try:
        return datetime.combine(date.fromisoformat(value), datetime.min.time())
    except ValueError:
        raise NboError(f"{option} {value!r} is not a date (YYYY-MM-DD)") from None


def _club(data: Path) -> ClubData:
    from nbo.data.io import ClubData

    return ClubData(data)


def _bundle(uri: str) -> Bundle:
    from nbo.tracking.registry import configure, load_bundle

    configure()
    return load_bundle(uri)


def _write(frame: pl.DataFrame, out: Path, keys: MemberKeys | None = None) -> None:
    """Write ``frame`` atomically; with ``keys``, its members under the club's own keys."""
    from nbo.data.io import write_table

    if keys is not None and "member_id" in frame.columns:
        frame = keys.to_keys(frame)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    write_table(frame, tmp)
    tmp.replace(out)
    console.print(f"wrote {frame.height:,} rows to {out}", markup=False)


def _with_interval(row: dict[str, float], key: str, digits: int = 3) -> str:
    """``key``'s value, with its 95 % interval (``key_low``–``key_high``) where the row has one."""
    value = f"{row[key]:.{digits}f}"
    low, high = row.get(f"{key}_low"), row.get(f"{key}_high")
    if low is not None and high is not None and low == low and high == high:
        value += f" ({low:.{digits}f}–{high:.{digits}f})"
    return value


def metrics_table(table: dict[str, dict[str, float]], title: str) -> Table:
    """Product metrics per method with the ratio to P-TopFreq where it is known."""
    out = Table(title=title, title_justify="left")
    for column in (
        "method",
        "recall@10",
        "NDCG@10",
        "recall@10 repeat",
        "recall@10 new",
        "recall ratio to P-TopFreq",
        "NDCG ratio to P-TopFreq",
    ):
        out.add_column(column, justify="left" if column == "method" else "right")
    for name, m in table.items():
        out.add_row(
            name,
            f"{m['recall_at_10']:.4f}",
            f"{m['ndcg_at_10']:.4f}",
            f"{m['recall_at_10_repeat']:.4f}",
            f"{m['recall_at_10_new']:.4f}",
            f"{m['recall_ratio']:.3f}" if "recall_ratio" in m else "-",
            f"{m['ndcg_ratio']:.3f}" if "ndcg_ratio" in m else "-",
        )
    return out


def ratio_table(table: dict[str, dict[str, float]]) -> Table | None:
    """The ratios to P-TopFreq with their 95 % intervals (None when there are none)."""
    rows = {name: m for name, m in table.items() if "recall_ratio_low" in m}
    if not rows:
        return None
    out = Table(
        title="Ratio to P-TopFreq, 95 % interval (holdout members resampled)",
        title_justify="left",
    )
    for column in ("method", "recall@10 ratio", "NDCG@10 ratio"):
        out.add_column(column, justify="left" if column == "method" else "right")
    for name, m in rows.items():
        out.add_row(name, _with_interval(m, "recall_ratio"), _with_interval(m, "ndcg_ratio"))
    return out


def summary_table(metrics: dict[str, float]) -> Table:
    out = Table(title="Offers and visits (holdout)", title_justify="left")
    out.add_column("metric")
    out.add_column("value (95 % interval)", justify="right")
    for key in (
        "holdout_offer_auc",
        "holdout_offer_hit_rate_at_3",
        "holdout_offer_pairs",
        "holdout_visit_mae",
        "holdout_visit_mae_naive",
        "holdout_visit_mae_ratio",
        "holdout_pbuy_auc",
        "holdout_pbuy_auc_naive",
        "holdout_pbuy_ece",
        "holdout_pbuy_ece_naive",
        "holdout_pbuy_mean",
        "holdout_pbuy_rate",
        "holdout_uplift_qini",
        "holdout_uplift_auuc",
    ):
        if key in metrics:
            out.add_row(key.removeprefix("holdout_"), _with_interval(metrics, key, 4))
    if metrics.get("holdout_uplift_measured") == 0.0:
        out.add_row("uplift", "assumed, not measured")
    return out


HistoryUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--history-url",
        help="Interaction history the service records in (its NBO_DATABASE_URL): the uplift "
        "model also learns from the champion's offers against the holdout's would-be ones "
        "decided before the training date (docs/uplift.md).",
    ),
]


def priors(bundle: Bundle) -> list[tuple[str, str, str]]:
    """(model, score, why) of each pair model that had nothing to learn from and predicts its
    documented prior; bundles from before the priors learned every model."""
    models = (("purchase propensity", "p_buy", bundle.purchase),
              ("offer response", "p_redeem", bundle.response))  # fmt: skip
    return [
        (name, score, model.reason_)
        for name, score, model in models
        if not getattr(model, "learned_", True)
    ]


def print_skipped(bundle: Bundle) -> None:
    """One line per pair model that had nothing to learn from and predicts its prior."""
    for name, _, why in priors(bundle):
        console.print(f"{name} skipped: {why}; it predicts the documented prior "
                      "(docs/cold-start.md)", style="yellow", markup=False)  # fmt: skip


def _exposure(url: str, as_of: datetime) -> pl.DataFrame:
    """The service's randomized exposure in the history at ``url``, counted on each side of
    ``as_of`` (the uplift model learns from what came before, the back-test holds out the
    rest)."""
    from nbo.history import InteractionStore

    with InteractionStore(url) as store:
        exposure = store.randomized_exposure(before=None)
        where = repr(store)
    before = pl.col("decided_at") < as_of
    for side, rows in (
        ("before", exposure.filter(before)),
        ("on or after", exposure.remove(before)),
    ):
        holdout = int((~rows["treated"]).sum())
        console.print(
            f"randomized exposure from {where}: {rows.height:,} pairs ({holdout:,} holdout) "
            f"{side} {as_of:%Y-%m-%d}",
            markup=False,
        )
    return exposure


@fails_cleanly
def train_cmd(
    data: DataOpt,
    as_of: Annotated[str, typer.Option("--as-of", help="Train on data strictly before this date.")],
    experiment: Annotated[str, typer.Option(help="MLflow experiment name.")] = "nbo",
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Training configuration YAML: models' hyperparameters and the evaluation "
            "(every value and its default: docs/train.example.yaml). Without it, the defaults.",
        ),
    ] = None,
    history_url: HistoryUrlOpt = None,
) -> None:
    """Train every model as of a date, evaluate on the holdout, register as nbo@candidate."""
    from nbo.pipelines.config import load_config
    from nbo.pipelines.train import STAGES, train
    from nbo.tracking.registry import configure

    when = _date(as_of, "--as-of")
    settings = load_config(config) if config is not None else None
    club = _club(data)
    exposure = _exposure(history_url, when) if history_url is not None else None
    uri = configure()
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task("starting", total=len(STAGES))
        result = train(
            club,
            when,
            experiment=experiment,
            on_stage=lambda name: progress.update(task, description=name, advance=1),
            config=settings,
            exposure=exposure,
        )
        progress.update(task, description="done", completed=len(STAGES))
    console.print(metrics_table(result.table, f"Products (holdout after {as_of})"))
    console.print(summary_table(result.metrics))
    print_skipped(result.bundle)
    uplift = result.bundle.uplift
    if uplift.measured_:
        console.print(f"uplift measured: {uplift.reason_}", markup=False)
    else:
        console.print(
            f"uplift assumed, not measured: {uplift.reason_}; decisions use p_redeem × "
            "(1 − p_buy), flagged uplift_measured = false (docs/uplift.md)",
            style="yellow", markup=False,
        )  # fmt: skip
    stages = ", ".join(f"{k} {v:.1f}s" for k, v in result.seconds.items())
    console.print(f"stages: {stages}", markup=False)
    console.print(
        f"registered nbo version {result.version} as candidate (run {result.run_id}) in {uri}"
        f"{f', configured by {config}' if config is not None else ''}",
        markup=False,
    )


@fails_cleanly
def evaluate_cmd(
    data: DataOpt,
    as_of: Annotated[str, typer.Option("--as-of", help="Backtest date.")],
    model: Annotated[
        str | None,
        typer.Option("--model", help="Evaluate this bundle instead of training a fresh one."),
    ] = None,
    experiment: Annotated[str, typer.Option(help="MLflow experiment name.")] = "nbo-evaluate",
) -> None:
    """Backtest as of a date: nbo against G-TopFreq, P-TopFreq, ALS and random.

    Then decides at the date with the default policy and, for comparison, the revenue
    objective, and reports the share of decisions on products the member bought in 4 or more
    of the last 8 weeks.
    """
    import mlflow

    from nbo.cli.evaluate_report import routine_by_objective, routine_metrics, routine_table
    from nbo.decisioning.policy import load_policy
    from nbo.evaluation.backtest import evaluate_bundle
    from nbo.pipelines.train import train_bundle
    from nbo.tracking.registry import configure, experiment_id

    when = _date(as_of, "--as-of")
    club = _club(data)
    configure()
    if model:
        bundle = _bundle(model)
        if bundle.as_of != when:
            raise NboError(f"{model} was trained as of {bundle.as_of:%Y-%m-%d}, not {as_of}")
    else:
        with console.status("training a fresh bundle for the backtest"):
            bundle = train_bundle(club, when)
    with console.status("backtesting"):
        evaluation = evaluate_bundle(bundle, club, baselines=True)
    console.print(metrics_table(evaluation.table, f"Products: 14 days after {as_of}"))
    if (ratios := ratio_table(evaluation.table)) is not None:
        console.print(ratios)
    console.print(summary_table(evaluation.metrics))
    with console.status("deciding at the backtest date"):
        routine = routine_by_objective(club, bundle, load_policy(None), when)
    console.print(routine_table(routine, as_of))
    with mlflow.start_run(experiment_id=experiment_id(experiment), run_name=f"backtest {as_of}"):
        mlflow.log_params({"as_of": as_of, "data": str(data), "model": model or "fresh"})
        mlflow.log_metrics(
            {
                f"{method}.{key}": value
                for method, row in evaluation.table.items()
                for key, value in row.items()
            }
        )
        mlflow.log_metrics({k: v for k, v in evaluation.metrics.items() if v == v})
        mlflow.log_metrics({k: v for k, v in routine_metrics(routine).items() if v == v})


def register(app: typer.Typer) -> None:
    app.command("train")(train_cmd)
    app.command("evaluate")(evaluate_cmd)
