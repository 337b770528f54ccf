"""Routine purchases among decided offers on Complete Journey, per arbitration objective.

Issue 14: the share of decided offers going to members who bought the offer's products in ≥ 4
of the last 8 weeks falls from about 30 % to ≤ 10 % with the default policy. For each
``--dates`` date: the bundle is trained as of the date (``train_bundle``, what ``nbo train``
fits), then decides at it as ``nbo decide`` does (``decide_batch``: the offers active that day,
channel email, no contact history, a fixed run id so the exploration draws repeat) with the
default policy under each objective — incremental_margin (the default), revenue (the
arbitration before it) and redemptions. ``nbo.evaluation.routine`` counts per decision the
weeks of the last 8 with a purchase of the offer's products and gives the routine share with a
95 % interval (bootstrap over members, seeded) and the distribution 0 / 1–3 / 4 / 5–8 weeks.
Each table adds what the models expect of the decisions (expected redemptions, the expected
incremental value with the assumed uplift, mean p_buy). The last table pools the dates (a
member decided on several dates is resampled as one). Complete Journey first:
``nbo data import completejourney data/completejourney``. About 2–5 minutes per date on 2
cores (training is most of it).

    .venv/bin/python benchmarks/routine.py data/completejourney
    .venv/bin/python benchmarks/routine.py data/completejourney --dates 2017-09-04 --diagnose

``--diagnose`` adds, per date and objective, the decisions by weeks bucket with their mean
scores and economics and the share that bought the offer's products in the campaign-long window
from the date (these members got the coupons, so it bounds buying anyway from above); then
p_buy against what untreated pairs (members outside the active campaigns' audiences × the
campaigns' offers) bought in the same window, by weeks bucket, beside the naive weeks / 8.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time
from datetime import datetime

import numpy as np
import polars as pl
from rich.console import Console
from rich.table import Table

import nbo
from nbo.data.io import ClubData
from nbo.decisioning.policy import Objective, load_policy
from nbo.evaluation.routine import (
    RoutineSummary,
    routine_buckets,
    routine_summary,
    routine_weeks,
)
from nbo.features.history import History, as_datetime
from nbo.models.purchase import untreated_pairs
from nbo.pipelines.candidates import active_offers
from nbo.pipelines.decide import decide_batch
from nbo.pipelines.train import train_bundle
from nbo.tracking.bundle import Bundle

OBJECTIVES: tuple[Objective, ...] = ("incremental_margin", "revenue", "redemptions")
# the date and earlier ones, and the starts of the Type A campaigns (about 200 coupons
# each, most of the decisions); 2017-07-03 and 2017-08-07 have 14 and 28 offers only
DATES = ("2017-05-08", "2017-07-03", "2017-08-07", "2017-09-04", "2017-10-30", "2017-11-27")
TARGET = 0.10


def _bucket(weeks: pl.Expr) -> pl.Expr:
    """The distribution's week range of ``weeks`` as a label (0, 1–3, 4, 5–8)."""
    labels = {
        week: RoutineSummary.label(span)
        for span in routine_buckets()
        for week in range(span[0], span[1] + 1)
    }
    return weeks.replace_strict(labels, return_dtype=pl.String)


def _bought_after(club: ClubData, pairs: pl.DataFrame, at: datetime) -> pl.DataFrame:
    """``pairs`` with ``bought``: the member bought the offer's products in ``[at, at + L)``,
    L the length of the offer's campaign (the window p_buy is predicted for), cut at the data's
    last receipt (``window_days`` says how many days were seen)."""
    last = club.transactions.select(pl.col("ts").max()).collect().item()
    windows = club.campaigns.select(
        "campaign_id",
        window_days=pl.min_horizontal(
            ((pl.col("end_date") - pl.col("start_date")).dt.total_days() + 1).cast(pl.Int64),
            pl.lit((last - at).days + 1),
        ),
    )
    keyed = pairs.lazy().join(club.offers.select("offer_id", "campaign_id"), on="offer_id",
                              how="left", suffix="_offer")  # fmt: skip
    bought = (
        keyed.select("member_id", "offer_id", "campaign_id")
        .join(windows, on="campaign_id")
        .join(club.offer_products.select("offer_id", "product_id"), on="offer_id")
        .join(
            club.transactions.filter(pl.col("ts") >= at).select("member_id", "product_id", "ts"),
            on=["member_id", "product_id"],
        )
        .filter(pl.col("ts") < pl.lit(at) + pl.duration(days=pl.col("window_days")))
        .select("member_id", "offer_id")
        .unique()
        .with_columns(bought=pl.lit(1.0))
    )
    return (
        pairs.lazy()
        .join(bought, on=["member_id", "offer_id"], how="left", maintain_order="left")
        .with_columns(pl.col("bought").fill_null(0.0))
        .collect()
    )


def _by_bucket(frame: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    return (
        frame.with_columns(weeks=_bucket(pl.col("weeks_bought")))
        .group_by("weeks")
        .agg(n=pl.len(), **{c: pl.col(c).mean() for c in columns})
        .sort(pl.col("weeks").str.extract(r"^(\d+)").cast(pl.Int64))
    )


def _print_frame(console: Console, frame: pl.DataFrame, title: str) -> None:
    table = Table(title=title, title_justify="left")
    for column in frame.columns:
        table.add_column(column, justify="left" if column == "weeks" else "right")
    for row in frame.iter_rows():
        table.add_row(
            *(f"{v:,.3f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v)
              for v in row)
        )  # fmt: skip
    console.print(table)


def diagnose(
    console: Console,
    club: ClubData,
    bundle: Bundle,
    decided: dict[str, pl.DataFrame],
    at: datetime,
    *,
    per_bucket: int = 4000,
) -> None:
    """Per objective's decisions by weeks bucket; p_buy against untreated purchases."""
    history = History.at(club, at)
    economics = ["p_redeem", "p_buy", "uplift", "value", "cost", "incremental_value",
                 "priority", "bought"]  # fmt: skip
    for objective, frame in decided.items():
        _print_frame(
            console,
            _by_bucket(_bought_after(club, frame, at), economics),
            f"{at:%Y-%m-%d} {objective}: decisions by weeks bought (means; bought = bought the "
            "products in the campaign-long window from the date, coupon in hand)",
        )
    campaigns = active_offers(club, at).select("campaign_id").unique()
    untreated = untreated_pairs(
        club, club.campaigns.join(campaigns.lazy(), on="campaign_id", how="semi").collect(),
        members_at=at,
    )  # fmt: skip
    weeks = routine_weeks(untreated.select("member_id", "offer_id"), history)
    sample = pl.concat(
        group.sample(min(group.height, per_bucket), seed=0)
        for _, group in weeks.with_columns(weeks=_bucket(pl.col("weeks_bought")))
        .sort("weeks", "member_id", "offer_id")
        .group_by("weeks", maintain_order=True)
    )
    scored = sample.with_columns(
        p_buy=bundle.purchase.predict_proba(history, sample.select("member_id", "offer_id"))[
            "p_buy"
        ],
        naive=pl.col("weeks_bought") / 8,
    )
    counts = weeks.group_by(weeks=_bucket(pl.col("weeks_bought"))).agg(untreated_pairs=pl.len())
    _print_frame(
        console,
        _by_bucket(_bought_after(club, scored, at), ["p_buy", "naive", "bought"])
        .join(counts, on="weeks", maintain_order="left")
        .rename({"n": "scored"}),
        f"{at:%Y-%m-%d}: p_buy of untreated pairs (members outside the active campaigns' "
        f"audiences × their offers, ≤ {per_bucket:,} per bucket) against their purchases",
    )


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _table(title: str, rows: list[tuple[str, pl.DataFrame]], draws: int, seed: int) -> Table:
    """Per objective: the routine share and distribution of its decisions (routine_weeks'
    output), and what the models expect of them (incremental value with assumed uplift)."""
    table = Table(title=title, title_justify="left")
    summaries = [(name, routine_summary(frame, draws=draws, seed=seed)) for name, frame in rows]
    spans = list(summaries[0][1].distribution) if summaries else []
    for column in ("objective", "decisions", "members", "routine share (95 % interval)",
                   *(f"{RoutineSummary.label(span)} wk" for span in spans), "exp. redemptions",
                   "exp. incremental value", "mean p_buy"):  # fmt: skip
        table.add_column(column, justify="left" if column == "objective" else "right",
                         no_wrap=column == "objective")  # fmt: skip
    for (name, s), (_, frame) in zip(summaries, rows, strict=True):
        table.add_row(
            name, f"{s.decisions:,}", f"{s.members:,}",
            f"{s.share:.1%} ({s.share_low:.1%}–{s.share_high:.1%})",
            *(f"{s.distribution[span]:,} ({s.distribution[span] / max(s.decisions, 1):.0%})"
              for span in spans),
            f"{float(frame['p_redeem'].sum()):,.1f}",
            f"{float(frame['incremental_value'].sum()):,.1f}",
            f"{float(np.mean(frame['p_buy'].to_numpy())):.3f}",
        )  # fmt: skip
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="club dataset directory (Complete Journey import)")
    parser.add_argument("--dates", nargs="+", default=list(DATES), help="decision dates")
    parser.add_argument("--objectives", nargs="+", default=list(OBJECTIVES), choices=OBJECTIVES)
    parser.add_argument("--policy", default=None, help="policy YAML (default policy)")
    parser.add_argument("--draws", type=int, default=2000, help="bootstrap draws")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--diagnose", action="store_true", help="diagnose the default objective")
    args = parser.parse_args()

    console = Console(width=200)
    started = time.perf_counter()
    console.print(
        f"{datetime.now():%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.2f}, commit {_commit()}, nbo from "
        f"{os.path.dirname(nbo.__file__)}, data {args.data}",
        markup=False,
    )
    club = ClubData(args.data)
    policy = load_policy(args.policy)
    counted: dict[str, list[pl.DataFrame]] = {objective: [] for objective in args.objectives}
    for day in args.dates:
        at = as_datetime(day)
        clock = time.perf_counter()
        bundle = train_bundle(club, at)
        trained = time.perf_counter() - clock
        history = History.at(club, at)
        decided: dict[str, pl.DataFrame] = {}
        for objective in args.objectives:
            clock = time.perf_counter()
            batch = decide_batch(
                club, bundle, policy.with_objective(objective), at=at, channel="email",
                run_id=f"routine-{day}",
            )  # fmt: skip
            decided[objective] = routine_weeks(batch.result.decisions, history)
            counted[objective].append(decided[objective].with_columns(day=pl.lit(day)))
            console.print(
                f"{day} {objective}: {batch.offers} active offers, {batch.candidates:,} "
                f"candidates, decided in {time.perf_counter() - clock:.1f} s",
                markup=False,
            )
        title = f"{day} (trained in {trained:.0f} s)"
        console.print(_table(title, list(decided.items()), args.draws, args.seed))
        if args.diagnose:
            diagnose(console, club, bundle, decided, at)
    pooled = [(objective, pl.concat(frames)) for objective, frames in counted.items()]
    title = f"All dates pooled ({', '.join(args.dates)})"
    console.print(_table(title, pooled, args.draws, args.seed))
    for frame in counted.get(OBJECTIVES[0], []):
        share = float(np.mean(frame["weeks_bought"].to_numpy() >= 4))
        met = "yes" if share <= TARGET else "no"
        console.print(f"target ≤ {TARGET:.0%}, default objective, {frame['day'][0]}: "
                      f"{share:.1%} → {met}")  # fmt: skip
    console.print(f"{time.perf_counter() - started:.0f} s in all; load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
