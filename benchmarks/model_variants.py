"""Model variants on a club: the committed settings against variants, each a training config.

A variant is a :class:`~nbo.pipelines.config.TrainConfig`: overrides by dotted path (the names
of the MLflow params) or a ``train.yaml``. The model under test is built from it as ``nbo train
--config`` builds it, fitted at each date and scored there:

    .venv/bin/python benchmarks/model_variants.py visits data/completejourney
    .venv/bin/python benchmarks/model_variants.py ranker data/completejourney
    .venv/bin/python benchmarks/model_variants.py ranker DIR --dates 2024-04-01 \\
        --variant "two rankers: affinity.n_rankers=2, affinity.negative_share=0.3" \\
        --config mine.yaml

``visits``: :class:`~nbo.models.timing.VisitTiming`'s ``likely_visits``, scored as visit MAE
over its horizon against the naive "previous window" forecast. ``ranker``:
:class:`~nbo.models.affinity.ProductAffinity`'s top 10, scored as recall@10 and NDCG@10 against
P-TopFreq on the members who bought in the next ``horizon_days``. Each prints one row per
variant with each date's ratio and their mean; the default dates are the earlier Mondays the
variants of BENCHMARKS.md were judged on. A variant costs a fit of the whole model per date.
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from rich.console import Console
from rich.table import Table

from nbo.data.io import ClubData
from nbo.evaluation.backtest import baseline_recommendations, product_truth, ratios_to_baseline
from nbo.evaluation.metrics import mae
from nbo.features.history import History
from nbo.features.visits import member_visits, visits_between
from nbo.pipelines.config import TrainConfig, TrainConfigError, load_config

console = Console(width=120)

VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "visits": {
        "committed": {},
        "31 leaves": {"timing.max_leaf_nodes": 31},
        "min leaf 200": {"timing.min_samples_leaf": 200},
        "13 weekly windows": {"timing.n_windows": 13},
    },
    "ranker": {
        "committed": {},
        "200 rounds at 0.05": {"affinity.max_iter": 200, "affinity.learning_rate": 0.05},
        "three rankers on 25 %": {"affinity.n_rankers": 3, "affinity.negative_share": 0.25},
        "CF with 64 factors": {"affinity.cf.factors": 64},
    },
}
"""The built-in variants of each model: overrides of the committed configuration."""


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """``"name: path=value, path=value"`` as (name, overrides); values are read as YAML."""
    name, _, assignments = text.partition(":")
    overrides: dict[str, Any] = {}
    for assignment in filter(None, (a.strip() for a in assignments.split(","))):
        path, equals, value = assignment.partition("=")
        if not equals:
            raise SystemExit(f"--variant {text!r}: {assignment!r} is not path=value")
        overrides[path.strip()] = yaml.safe_load(value)
    return name.strip(), overrides


def visit_ratio(config: TrainConfig, club: ClubData, history: History) -> float:
    """Visit MAE of the configured timing model over its horizon / the naive forecast's."""
    model = config.estimator("timing").fit(history)
    days = model.horizon_days
    receipts = member_visits(club.transactions, hours=False).collect().lazy()
    day = history.as_of_date
    frame = (
        history.members.select("member_id")
        .collect()
        .join(visits_between(receipts, day, days).collect(), on="member_id", how="left")
        .join(
            visits_between(receipts, day - timedelta(days=days), days)
            .collect()
            .rename({"visits": "naive"}),
            on="member_id",
            how="left",
        )
        .join(model.predict(history).select("member_id", "likely_visits"), on="member_id")
        .fill_null(0)
    )
    naive = mae(frame["visits"], frame["naive"])
    return mae(frame["visits"], frame["likely_visits"]) / naive if naive else float("nan")


def ranker_ratios(config: TrainConfig, club: ClubData, history: History) -> tuple[float, float]:
    """recall@10 and NDCG@10 of the configured affinity model / P-TopFreq's."""
    model = config.estimator("affinity").fit(history)
    truth = product_truth(history, model.horizon_days)
    members = truth["member_id"].unique().sort().to_numpy()
    methods = {
        "nbo": model.recommend(history, members, k=10),
        "P-TopFreq": baseline_recommendations(history, members)["P-TopFreq"],
    }
    ours = ratios_to_baseline(methods, truth)["nbo"]
    return ours["recall_ratio"], ours["ndcg_ratio"]


def run(model: str, club: ClubData, dates: list[str], variants: dict[str, TrainConfig]) -> Table:
    """Each variant fitted and scored at each date: one table row per variant."""
    first: dict[str, list[float]] = {name: [] for name in variants}
    second: dict[str, list[float]] = {name: [] for name in variants}
    for as_of in dates:
        history = History.at(club, as_of)
        for name, config in variants.items():
            console.print(f"{as_of} {name}", style="dim", markup=False)
            if model == "visits":
                first[name].append(visit_ratio(config, club, history))
            else:
                recall, ndcg = ranker_ratios(config, club, history)
                first[name].append(recall)
                second[name].append(ndcg)
    if model == "visits":
        return _table("visit MAE / naive (lower is better)", dates, first)
    extra = {name: f"{np.mean(values):.4f}" for name, values in second.items()}
    return _table(
        "recall@10 / P-TopFreq (higher is better)", dates, first, ("mean NDCG ratio", extra)
    )


def _table(
    title: str,
    dates: list[str],
    ratios: dict[str, list[float]],
    extra: tuple[str, dict[str, str]] | None = None,
) -> Table:
    """One row per variant: its ratio at each date, their mean and an optional extra column."""
    table = Table(title=title, title_justify="left")
    table.add_column("variant")
    for as_of in dates:
        table.add_column(as_of, justify="right")
    table.add_column("mean", justify="right")
    if extra is not None:
        table.add_column(extra[0], justify="right")
    for name, values in ratios.items():
        cells = [*(f"{v:.4f}" for v in values), f"{np.mean(values):.4f}"]
        table.add_row(name, *cells, *([extra[1].get(name, "")] if extra else []))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("model", choices=sorted(VARIANTS))
    parser.add_argument("club", help="dataset directory, e.g. data/completejourney")
    parser.add_argument("--dates", nargs="+", help="as-of dates (default: the earlier Mondays)")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help='"name: path=value, …" (e.g. "deeper: timing.max_leaf_nodes=31"); repeatable',
    )
    parser.add_argument(
        "--config", action="append", default=[], type=Path, help="a train.yaml; repeatable"
    )
    parser.add_argument(
        "--only", action="store_true", help="only the given variants, not the built-in ones"
    )
    args = parser.parse_args()
    base = TrainConfig()
    given = dict(parse_variant(text) for text in args.variant)
    overrides = {} if args.only else dict(VARIANTS[args.model])
    try:
        variants = {
            name: base.with_overrides(changes, f"variant {name!r}")
            for name, changes in (overrides | given).items()
        } | {str(path): load_config(path) for path in args.config}
    except TrainConfigError as exc:
        raise SystemExit(f"error: {exc}") from None
    default_dates = {
        "visits": ["2017-06-12", "2017-07-10", "2017-08-07"],
        "ranker": ["2017-07-03", "2017-07-31", "2017-08-14"],
    }
    dates = args.dates or default_dates[args.model]
    console.print(run(args.model, ClubData(args.club), dates, variants))


if __name__ == "__main__":
    main()
