"""Visit timing quality on a real club: the model against naive baselines, in one run.

Fits :class:`~nbo.models.timing.VisitTiming` on ``History.at(club, as_of)``, predicts the next
``horizon`` days for every member known at ``as_of`` and compares with the truth from the full
club (distinct baskets with ``ts`` in ``[as_of, as_of + horizon)``):

    .venv/bin/python benchmarks/visit_quality.py /tmp/cj --as-of 2017-09-04

Prints the MAE of the model's median (``likely_visits``) and mean (``expected_visits``) beside
"the last ``horizon`` days again" (naive) and "the last 13 weeks' pace"; the calibration of
``p_visit`` per day ahead and by decile; how often the next visit falls on or before
``next_visit_date``; what ``lapsing`` members did next; and fit/predict seconds.
"""

from __future__ import annotations

import argparse
import time
from datetime import date, timedelta

import numpy as np
import polars as pl
from rich.console import Console
from rich.table import Table

from nbo.data.io import ClubData
from nbo.evaluation.metrics import mae
from nbo.features.history import History
from nbo.features.visits import member_visits, visits_between
from nbo.models.timing import P_VISIT_DAYS, VisitTiming

console = Console()


def _table(title: str, columns: list[str], rows: list[list[str]]) -> Table:
    table = Table(title=title, title_justify="left")
    for i, name in enumerate(columns):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    return table


def count_table(frame: pl.DataFrame, horizon: int) -> Table:
    """MAE of the model's forecasts and the baselines, and their ratio to the naive MAE."""
    truth = frame["truth"].to_numpy()
    naive = mae(truth, frame["last"])
    forecasts = {
        "model median (likely_visits)": frame["likely_visits"],
        "model mean (expected_visits)": frame["expected_visits"],
        f"naive: last {horizon} days again": frame["last"],
        f"last 13 weeks' pace x {horizon} days": frame["last_13w"] * horizon / 91,
    }
    rows = [
        [name, f"{mae(truth, f):.4f}", f"{mae(truth, f) / naive:.3f}"]
        for name, f in forecasts.items()
    ]
    title = (
        f"Visits (baskets) in the next {horizon} days: {frame.height:,} members, "
        f"mean {truth.mean():.2f}"
    )
    return _table(title, ["forecast", "MAE", "vs naive"], rows)


def day_truth(frame: pl.DataFrame, visits: pl.LazyFrame, as_of: date) -> np.ndarray:
    """1 where the member of that row visited on day ``as_of + d`` (members × P_VISIT_DAYS)."""
    end = as_of + timedelta(P_VISIT_DAYS)
    days = (
        visits.filter((pl.col("day") >= as_of) & (pl.col("day") < end))
        .select("member_id", (pl.col("day") - pl.lit(as_of)).dt.total_days().alias("d"))
        .unique()
        .collect()
        .join(frame.select("member_id").with_row_index("row"), on="member_id")
    )
    visited = np.zeros((frame.height, P_VISIT_DAYS))
    visited[days["row"].to_numpy(), days["d"].to_numpy()] = 1.0
    return visited


def calibration_tables(p: np.ndarray, visited: np.ndarray, as_of: date) -> list[Table]:
    """Mean p_visit against the observed share visiting, per day ahead and per decile of p."""
    rows = []
    for d in range(P_VISIT_DAYS):
        day = as_of + timedelta(d)
        rows.append([f"{day} {day:%a}", f"{p[:, d].mean():.4f}", f"{visited[:, d].mean():.4f}"])
    rows.append(["all days", f"{p.mean():.4f}", f"{visited.mean():.4f}"])
    brier = float(np.mean((p - visited) ** 2))
    club_brier = float(np.mean((visited.mean(axis=0) - visited) ** 2))
    by_day = _table(
        f"p_visit by day: Brier {brier:.4f} (the day's club share as p: {club_brier:.4f})",
        ["day", "mean p_visit", "share visiting"],
        rows,
    )
    flat_p, flat_v = p.ravel(), visited.ravel()
    edges = np.quantile(flat_p, np.linspace(0, 1, 11))
    deciles = np.clip(np.searchsorted(edges, flat_p, side="right") - 1, 0, 9)
    rows = []
    for b in range(10):
        if (inside := deciles == b).any():
            span = f"{edges[b]:.3f}-{edges[b + 1]:.3f}"
            rows.append([span, f"{flat_p[inside].mean():.4f}", f"{flat_v[inside].mean():.4f}"])
    by_decile = _table(
        "p_visit by decile (member-days)", ["p_visit range", "mean p_visit", "share visiting"], rows
    )
    return [by_day, by_decile]


def lapsing_table(frame: pl.DataFrame, horizon: int) -> Table:
    """What lapsing and other members did in the next ``horizon`` days."""
    groups = (
        frame.group_by("lapsing")
        .agg(
            pl.len().alias("members"),
            (pl.col("truth") == 0).mean().alias("none"),
            pl.col("truth").mean().alias("visits"),
            pl.col("expected_visits").mean().alias("expected"),
        )
        .sort("lapsing")
    )
    rows = [
        [
            str(g["lapsing"]),
            f"{g['members']:,}",
            f"{g['none']:.3f}",
            f"{g['visits']:.2f}",
            f"{g['expected']:.2f}",
        ]
        for g in groups.iter_rows(named=True)
    ]
    columns = ["lapsing", "members", "share no visit", "mean visits", "mean expected"]
    return _table(f"lapsing members, next {horizon} days", columns, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("club", help="dataset directory, e.g. /tmp/cj")
    parser.add_argument("--as-of", default="2017-09-04")
    parser.add_argument("--horizon", type=int, default=28)
    parser.add_argument("--n-threads", type=int, default=None, help="OpenMP threads (all)")
    args = parser.parse_args()

    club = ClubData(args.club)
    history = History.at(club, args.as_of)
    as_of, h = history.as_of_date, args.horizon
    start = time.perf_counter()
    model = VisitTiming(horizon_days=h, n_threads=args.n_threads).fit(history)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    frame = model.predict(history)
    predict_s = time.perf_counter() - start

    visits = member_visits(club.transactions, hours=False).collect().lazy()  # the full club
    windows = {
        "truth": visits_between(visits, as_of, h),
        "last": visits_between(visits, as_of - timedelta(days=h), h),
        "last_13w": visits_between(visits, as_of - timedelta(days=91), 91),
        "first": visits.filter(pl.col("day") >= as_of)
        .group_by("member_id")
        .agg(pl.col("day").min().alias("first")),
    }
    for name, window in windows.items():
        counts = window.collect().rename({"visits": name}, strict=False)
        frame = frame.join(counts, on="member_id", how="left")
    frame = frame.with_columns(pl.col("truth", "last", "last_13w").fill_null(0))

    console.print(f"[bold]{club.root} as of {as_of}[/]")
    console.print(count_table(frame, h))
    p = np.stack(frame["p_visit"].to_list()) if frame.height else np.zeros((0, P_VISIT_DAYS))
    for table in calibration_tables(p, day_truth(frame, visits, as_of), as_of):
        console.print(table)
    console.print(lapsing_table(frame, h))
    on_time = (frame["first"] <= frame["next_visit_date"]).fill_null(False).to_numpy()
    by_date = float(on_time.mean()) if on_time.size else 0.0
    console.print(
        f"next visit on or before next_visit_date: {by_date:.3f} of members (it is a median)\n"
        f"cold start {int(frame['cold_start'].sum()):,} members; "
        f"training examples {model.n_train_examples_:,}, boosting rounds {model.n_iter_}, "
        f"NB alpha {model.alpha_:.3f}\n"
        f"fit {fit_s:.1f} s, predict {predict_s:.2f} s"
    )


if __name__ == "__main__":
    main()
