"""The ``nbo`` command line (typer + rich)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from nbo.cli import decide, experiment, models, monitor, plan, retrain, scoring, serve
from nbo.cli.common import console, fails_cleanly
from nbo.cli.data import data_app, describe_cmd, import_completejourney_cmd, validate_cmd

__all__ = ["app", "main", "thread_defaults"]

# Threading defaults for the numeric libraries, read once when they load (so they are set here,
# before any command imports scikit-learn or implicit). implicit wants single-threaded BLAS.
# OpenMP threads spin for a while before they sleep, which keeps gradient boosting fast on free
# cores (Complete Journey's affinity fit: 21 s spinning, 32 s with PASSIVE on a quiet 2-core
# machine) but slows it down when the cores are shared (50 s against 36 s beside one busy
# process). The long-running commands that share their cores with their own workers or scoring
# threads get PASSIVE; the batch jobs keep OpenMP's default. A user's own settings win.
THREAD_DEFAULTS = {"OPENBLAS_NUM_THREADS": "1"}
SHARED_CORE_DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE"}
SHARED_CORE_COMMANDS = frozenset({"serve", "decide"})

DEMO_AS_OF = "2017-09-04"

app = typer.Typer(
    name="nbo",
    help="Next-best-offer for loyalty clubs: club data, models, decisions, serving.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data_app, name="data")
models.register(app)
scoring.register(app)
retrain.register(app)
decide.register(app)
plan.register(app)
serve.register(app)
experiment.register(app)
monitor.register(app)


@app.command("demo")
@fails_cleanly
def demo_cmd(
    data_dir: Annotated[Path, typer.Option(help="Where the demo dataset lives.")] = Path(
        "data/completejourney"
    ),
    as_of: Annotated[str, typer.Option(help="Train on data before this date.")] = DEMO_AS_OF,
    port: Annotated[int, typer.Option(help="Port of the offer service it ends with.")] = 8000,
    serve: Annotated[bool, typer.Option(help="End with the offer service running.")] = True,
) -> None:
    """The main job on the embedded default: import Complete Journey, validate, describe, train,
    promote, evaluate, decide every member's offers, and plan the day the service serves."""
    if not (data_dir / "manifest.json").is_file():
        import_completejourney_cmd(data_dir, overwrite=False)
    else:
        console.print(f"using the dataset already imported at {data_dir}", markup=False)
    validate_cmd(data_dir)
    describe_cmd(data_dir)
    models.train_cmd(data_dir, as_of)
    try:
        retrain.promote_cmd()
    except typer.Exit:
        console.print("the new candidate did not pass the gate; the champion is unchanged")
    models.evaluate_cmd(data_dir, as_of, model=models.DEFAULT_MODEL)
    decide.decide_cmd(
        data_dir, as_of, Path("data/decisions.parquet"), model=models.DEFAULT_MODEL, examples=3
    )
    plan.plan_cmd(data_dir, as_of, DEMO_PLANS, model=models.DEFAULT_MODEL)
    console.print(
        "\nOpen the MLflow UI on the local store:\n"
        f"  .venv/bin/mlflow ui --backend-store-uri sqlite:///{Path.cwd() / 'mlflow.db'}",
        markup=False,
    )
    if serve:
        _serve_demo(data_dir, as_of, port)


DEMO_KEY = "demo-key"
DEMO_PLANS = Path("data/plans")


def _serve_demo(data_dir: Path, as_of: str, port: int) -> None:
    """End the demo with the offer service on the champion, and curl lines that work on it."""
    import polars as pl

    from nbo.cli import serve

    os.environ.setdefault("NBO_API_KEYS", f'{{"{DEMO_KEY}": "admin"}}')
    os.environ.setdefault("NBO_TODAY", as_of)
    decided = pl.read_parquet("data/decisions.parquet", columns=["member_id", "offer_id"])
    member, offer = (
        (int(decided["member_id"][0]), decided["offer_id"][0]) if decided.height else (1, "x")
    )
    base = f"http://127.0.0.1:{port}/v1"
    key = f"-H 'X-API-Key: {DEMO_KEY}'"
    console.print(
        f"\nStarting the offer service on the plan for {as_of} (Ctrl-C stops it). Once it prints "
        "'ready', try:\n"
        f"  curl {base}/readyz\n"
        f"  curl {key} {base}/members/{member}/offers\n"
        f"  curl {key} '{base}/members/{member}/offers?channel=app&limit=2'\n"
        f"  curl {key} {base}/members/99999999/offers        # unknown member: cold start\n"
        f"  curl {key} '{base}/members/{member}/recommendations?k=5'\n"
        f"  curl {key} {base}/offers\n"
        f"  curl {key} -X POST {base}/offers/batch -H 'Content-Type: application/json' "
        f'-d \'{{"member_ids": [{member}, 99999999], "limit": 2}}\'\n'
        f"  curl {key} -X POST {base}/events -H 'Content-Type: application/json' -d "
        f'\'{{"events": [{{"event_id": "demo-1", "event_type": "exposure", '
        f'"member_id": {member}, "offer_id": "{offer}", '
        f'"ts": "{as_of}T12:00:00Z"}}]}}\'\n'
        f"  curl {key} {base}/metrics\n"
        f"  curl {key} -X POST {base}/admin/reload\n"
        "  .venv/bin/nbo experiment report",
        markup=False,
        soft_wrap=True,
    )
    serve.serve_cmd(port=port, plans=DEMO_PLANS, data=data_dir)


def thread_defaults(args: list[str]) -> dict[str, str]:
    """The threading variables ``nbo`` sets (unless already set) for these arguments."""
    command = next((a for a in args if not a.startswith("-")), None)
    if command in SHARED_CORE_COMMANDS:
        return THREAD_DEFAULTS | SHARED_CORE_DEFAULTS
    return dict(THREAD_DEFAULTS)


def main() -> None:
    """Console entry point: thread defaults, then the typer app."""
    for name, value in thread_defaults(sys.argv[1:]).items():
        os.environ.setdefault(name, value)
    app()
