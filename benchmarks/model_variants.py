"""Model variants on a real club: the committed visit-count and ranker models against changes.

Each date's frames are built once, the way the models build them, and only the model under
test is refitted, so a variant costs a fit, not a pipeline:

    .venv/bin/python benchmarks/model_variants.py visits data/completejourney
    .venv/bin/python benchmarks/model_variants.py ranker data/completejourney

``visits``: the median visit-count model of :class:`~nbo.models.timing.VisitTiming` (rounds
chosen on the latest training window, then refitted on all), scored as visit MAE over the next
28 days against the naive "previous 28 days" forecast, per ``--dates``. ``ranker``: the product
affinity rankers (five, each on every positive and its own 15 % of the negatives), scored as
recall@10 and NDCG@10 against P-TopFreq on the members who bought in the next 14 days. Both
print one row per variant with each date's ratio and their mean; the defaults are the earlier
dates the variants of BENCHMARKS.md were judged on.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import numpy as np
import polars as pl
from rich.console import Console
from rich.table import Table
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from nbo.data.io import ClubData
from nbo.evaluation.backtest import baseline_recommendations, product_truth
from nbo.evaluation.metrics import ranking_metrics
from nbo.features.history import History
from nbo.features.visits import (
    history_visits,
    member_visits,
    visit_features,
    visits_between,
    with_base_rate,
)
from nbo.models.affinity import FEATURES, ProductAffinity
from nbo.models.ranker_bag import bag_mask
from nbo.models.timing import VisitTiming
from nbo.models.visit_counts import MEAN_COLUMNS, MEDIAN_COLUMNS
from nbo.models.visit_windows import window_cutoffs, window_examples

console = Console(width=120)
HORIZON = 28
_BOOSTING = {
    "loss": "absolute_error",
    "max_iter": 300,
    "learning_rate": 0.1,
    "max_leaf_nodes": 15,
    "min_samples_leaf": 40,
    "l2_regularization": 1.0,
}  # VisitTiming's defaults


# -- visits -----------------------------------------------------------------------------------
def visit_frames(club: ClubData, as_of: str) -> tuple[pl.DataFrame, pl.DataFrame, list[date]]:
    """Training windows (as VisitTiming builds them) and every member's features and truth."""
    history = History.at(club, as_of)
    day = history.as_of_date
    sample = history.members.select("member_id").collect().sort("member_id")
    visits = history_visits(history, hours=False).collect().lazy()
    first = visits.select(pl.col("day").min()).collect().item()
    cutoffs = window_cutoffs(day, first, horizon_days=HORIZON, step_days=7, n_windows=26)
    train = window_examples(history, visits, sample, cutoffs, HORIZON)
    full = member_visits(club.transactions, hours=False).collect().lazy()
    test = (
        with_base_rate(visit_features(visits, history.members, day), HORIZON)
        .collect()
        .join(
            visits_between(full, day, HORIZON).collect().rename({"visits": "truth"}),
            on="member_id",
            how="left",
        )
        .join(
            visits_between(full, day - timedelta(days=HORIZON), HORIZON)
            .collect()
            .rename({"visits": "naive"}),
            on="member_id",
            how="left",
        )
        .with_columns(pl.col("truth", "naive").fill_null(0))
    )
    return train, test, cutoffs


def basket_shape(club: ClubData) -> Callable[[pl.DataFrame], pl.DataFrame]:
    """Adds, per row's member and cutoff, the shape of their baskets over the 91 days before."""
    baskets = (
        club.transactions.group_by("member_id", "basket_id")
        .agg(
            pl.col("ts").min().dt.date().alias("day"),
            pl.len().alias("lines"),
            pl.col("sales_value").sum().alias("sales"),
            pl.col("store_id").first().alias("store"),
            (pl.col("coupon_disc") > 0).any().alias("coupon"),
        )
        .collect()
    )
    cache: dict[date, pl.DataFrame] = {}

    def at(cutoff: date) -> pl.DataFrame:
        recent = baskets.filter(
            (pl.col("day") < cutoff) & (pl.col("day") >= cutoff - timedelta(days=91))
        )
        return (
            recent.group_by("member_id")
            .agg(
                pl.col("lines").mean().alias("b_lines_mean"),
                pl.col("sales").median().alias("b_sales_median"),
                (pl.col("lines") <= 3).mean().alias("b_small_share"),
                pl.col("store").n_unique().alias("b_stores"),
                (pl.col("store") == pl.col("store").mode().first()).mean().alias("b_top_store"),
                pl.col("coupon").mean().alias("b_coupon_share"),
            )
            .with_columns(pl.lit(cutoff).alias("cutoff"))
        )

    def add(frame: pl.DataFrame) -> pl.DataFrame:
        shapes = pl.concat([cache.setdefault(c, at(c)) for c in frame["cutoff"].unique()])
        return frame.join(shapes, on=["member_id", "cutoff"], how="left")

    return add


BASKET_COLUMNS = (
    "b_lines_mean", "b_sales_median", "b_small_share", "b_stores", "b_top_store", "b_coupon_share",
)  # fmt: skip


def _matrix(frame: pl.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    return frame.select(pl.col(*columns).cast(pl.Float64)).to_numpy()


def median_forecast(
    train: pl.DataFrame,
    test: pl.DataFrame,
    cutoffs: list[date],
    columns: tuple[str, ...],
    settings: dict[str, Any],
    log: bool = True,
) -> np.ndarray:
    """Whole-count median forecasts, rounds chosen on the latest window as CountModels does."""

    def to_label(visits: np.ndarray) -> np.ndarray:
        return np.log1p(visits) if log else visits

    def whole(prediction: np.ndarray) -> np.ndarray:
        counts = np.expm1(prediction) if log else prediction
        return np.asarray(np.rint(np.maximum(counts, 0.0)))

    params = _BOOSTING | settings
    held = train.filter(pl.col("cutoff") == cutoffs[0])
    earlier = train.filter(pl.col("cutoff") <= cutoffs[0] - timedelta(days=HORIZON))
    y_held = held["visits"].to_numpy().astype(float)
    validated = HistGradientBoostingRegressor(early_stopping=True, n_iter_no_change=20, **params)
    validated.fit(
        _matrix(earlier, columns),
        to_label(earlier["visits"].to_numpy().astype(float)),
        X_val=_matrix(held, columns),
        y_val=to_label(y_held),
    )
    errors = [
        np.mean(np.abs(y_held - whole(p))) for p in validated.staged_predict(_matrix(held, columns))
    ]
    rounds = int(np.argmin(errors)) + 1
    final = HistGradientBoostingRegressor(early_stopping=False, **(params | {"max_iter": rounds}))
    final.fit(_matrix(train, columns), to_label(train["visits"].to_numpy().astype(float)))
    result: np.ndarray = whole(final.predict(_matrix(test, columns)))
    return result


def run_visits(club: ClubData, dates: list[str]) -> Table:
    shape = basket_shape(club)
    median = tuple(MEDIAN_COLUMNS)
    variants: dict[str, Callable[[pl.DataFrame, pl.DataFrame, list[date]], np.ndarray]] = {
        "committed (median model)": lambda tr, te, c: median_forecast(tr, te, c, median, {}),
        "absolute error on the raw count": lambda tr, te, c: median_forecast(
            tr, te, c, median, {}, log=False
        ),
        "31 leaves": lambda tr, te, c: median_forecast(tr, te, c, median, {"max_leaf_nodes": 31}),
        "min leaf 200": lambda tr, te, c: median_forecast(
            tr, te, c, median, {"min_samples_leaf": 200}
        ),
        "all mean-model columns": lambda tr, te, c: median_forecast(
            tr, te, c, tuple(MEAN_COLUMNS), {}
        ),
        "+ basket shape (91 days)": lambda tr, te, c: median_forecast(
            shape(tr), shape(te), c, median + BASKET_COLUMNS, {}
        ),
        "0.9 committed + 0.1 naive": lambda tr, te, c: np.rint(
            0.9 * median_forecast(tr, te, c, median, {}) + 0.1 * te["naive"].to_numpy()
        ),
    }
    ratios: dict[str, list[float]] = {name: [] for name in variants}
    reference = []
    for as_of in dates:
        train, test, cutoffs = visit_frames(club, as_of)
        test = test.with_columns(pl.lit(date.fromisoformat(as_of)).alias("cutoff"))
        truth, naive = test["truth"].to_numpy(), test["naive"].to_numpy()
        for name, forecast in variants.items():
            error = np.mean(np.abs(truth - forecast(train, test, cutoffs)))
            ratios[name].append(float(error / np.mean(np.abs(truth - naive))))
        history = History.at(club, as_of)
        model = VisitTiming().fit(history).predict(history)
        joined = test.join(model.select("member_id", "likely_visits"), on="member_id")
        truth = joined["truth"].to_numpy()
        model_error = np.mean(np.abs(truth - joined["likely_visits"].to_numpy()))
        reference.append(float(model_error / np.mean(np.abs(truth - joined["naive"].to_numpy()))))
    ratios["VisitTiming itself (the pipeline's model)"] = reference
    return _table("visit MAE / naive (lower is better)", dates, ratios)


# -- ranker -----------------------------------------------------------------------------------
def ranker_frames(club: ClubData, as_of: str) -> dict[str, Any]:
    """The ranker's training frame, the candidates of the scored members, truth and P-TopFreq."""
    history = History.at(club, as_of)
    model = ProductAffinity()
    train = model._training_frame(history, np.random.default_rng(model.random_state))
    cf, item_repeat = model._fit_state(history)
    truth = product_truth(history, model.horizon_days)
    members = truth["member_id"].unique().sort().to_numpy()
    baskets = (
        history.transactions.group_by("member_id")
        .agg(pl.col("basket_id").n_unique().alias("baskets"))
        .collect()
    )
    warm = baskets.filter(pl.col("baskets") >= model.min_baskets)["member_id"].to_numpy()
    warm = np.intersect1d(members, warm)
    return {
        "train": train,
        "test": model._candidates(history, warm, cf, item_repeat),
        "truth": truth,
        "p_top": baseline_recommendations(history, members)["P-TopFreq"],
        "cold": np.setdiff1d(members, warm),
        "fallback": model._popular_by_segment(history),
    }


def _ratios(frames: dict[str, Any], score: np.ndarray, k: int = 10) -> tuple[float, float]:
    scored = frames["test"].select("member_id", "product_id").with_columns(score=pl.Series(score))
    top = (
        scored.sort(["member_id", "score", "product_id"], descending=[False, True, False])
        .group_by("member_id", maintain_order=True)
        .head(k)
        .select("member_id", "product_id")
    )
    cold = pl.DataFrame({"member_id": frames["cold"]}, schema={"member_id": pl.Int64}).join(
        frames["fallback"].head(k).select("product_id"), how="cross"
    )
    recs = pl.concat([top, cold], how="vertical_relaxed").with_columns(
        rank=pl.int_range(1, pl.len() + 1).over("member_id")
    )
    ours = ranking_metrics(recs, frames["truth"], k)
    base = ranking_metrics(frames["p_top"], frames["truth"], k)
    return ours["recall@10"] / base["recall@10"], ours["ndcg@10"] / base["ndcg@10"]


def bag_scores(train: pl.DataFrame, test: pl.DataFrame, **settings: Any) -> np.ndarray:
    """Five rankers, each on every positive and its own 15 % of the negatives, averaged."""
    params = {
        "max_iter": 100, "learning_rate": 0.08, "max_leaf_nodes": 31, "early_stopping": False,
        "random_state": 0,
    } | settings  # fmt: skip
    x, y = train.select(FEATURES).to_numpy(), train["label"].to_numpy()
    draw = train["_draw"].to_numpy()
    x_test = test.select(FEATURES).to_numpy()
    scores = []
    for k in range(5):
        rows = bag_mask(y, draw, k, 0.15)
        ranker = HistGradientBoostingClassifier(**params).fit(x[rows], y[rows])
        scores.append(ranker.predict_proba(x_test)[:, 1])
    result: np.ndarray = np.mean(scores, axis=0)
    return result


def _bought_in_window(train: pl.DataFrame) -> pl.DataFrame:
    """Rows of members with a purchase in their cut's label window (the evaluated members)."""
    cut = pl.struct("member_id", "member_baskets", "member_tenure_days")  # one per member and cut
    return train.filter(pl.col("label").sum().over(cut) > 0)


def run_ranker(club: ClubData, dates: list[str]) -> Table:
    variants: dict[str, Callable[[pl.DataFrame, pl.DataFrame], np.ndarray]] = {
        "committed (five rankers)": lambda tr, te: bag_scores(tr, te),
        "members who bought in the label window": lambda tr, te: bag_scores(
            _bought_in_window(tr), te
        ),
        "that, 200 rounds at 0.05": lambda tr, te: bag_scores(
            _bought_in_window(tr), te, max_iter=200, learning_rate=0.05
        ),
        "that, min leaf 100, L2 1.0": lambda tr, te: bag_scores(
            _bought_in_window(tr), te, min_samples_leaf=100, l2_regularization=1.0
        ),
    }
    recall: dict[str, list[float]] = {name: [] for name in variants}
    ndcg: dict[str, list[float]] = {name: [] for name in variants}
    for as_of in dates:
        frames = ranker_frames(club, as_of)
        for name, scores in variants.items():
            r, n = _ratios(frames, scores(frames["train"], frames["test"]))
            recall[name].append(r)
            ndcg[name].append(n)
    extra = {name: f"{np.mean(values):.4f}" for name, values in ndcg.items()}
    return _table(
        "recall@10 / P-TopFreq (higher is better)", dates, recall, ("mean NDCG ratio", extra)
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
    parser.add_argument("model", choices=["visits", "ranker"])
    parser.add_argument("club", help="dataset directory, e.g. data/completejourney")
    parser.add_argument("--dates", nargs="+", help="as-of dates (default: the earlier Mondays)")
    args = parser.parse_args()
    club = ClubData(args.club)
    if args.model == "visits":
        console.print(run_visits(club, args.dates or ["2017-06-12", "2017-07-10", "2017-08-07"]))
    else:
        console.print(run_ranker(club, args.dates or ["2017-07-03", "2017-07-31", "2017-08-14"]))


if __name__ == "__main__":
    main()
