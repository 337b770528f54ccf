"""Uplift learned from the service's holdout alone, against the truth of a synthetic club.

For each seed: a club with randomized campaigns and their truth (``generate_club(...,
counterfactuals=True)``). The club's data is then stripped of its controls (the control rows
and the ``treated`` column of ``campaign_audience`` go), so by the club's data alone nothing is
randomized, and the same randomization is written instead as the offer service would have
recorded it: per member one arm (a member's arm is its status in its first campaign; only its
campaigns with that status are kept, which is as random as the status itself), and for each kept
(campaign, member) ``--offers`` of the campaign's offers drawn at random, decided at the
campaign's start: delivered champion decisions for the treated, would-be holdout decisions
(``delivered`` false) for the controls, in a real interaction history (SQLite).

Three uplift models are fitted as of the start of the first of the last ``--campaigns``
campaigns: on the club with its own controls (the reference), on the stripped club alone (it
can only assume) and on the stripped club with the history (``--history-url``'s path). Each is
scored on every truth pair of the last campaigns: Spearman correlation of the predicted with the
true uplift (``p_buy_treated − p_buy_control``), the true uplift of the model's top 20 % of pairs
against the mean, and the Qini coefficient on the realized outcomes of those campaigns' own
randomized audiences (``nbo.evaluation.uplift``).

    .venv/bin/python benchmarks/holdout_uplift.py                      # seeds 0 1 2, 5,000 members
    .venv/bin/python benchmarks/holdout_uplift.py --seeds 0 --members 3000
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from rich.console import Console
from rich.table import Table
from scipy import stats

from nbo.data.io import ClubData, write_table
from nbo.data.synth import generate_club, read_truth
from nbo.evaluation.uplift import qini_coefficient
from nbo.features.history import History
from nbo.history import InteractionStore
from nbo.models.purchase import purchase_labels
from nbo.models.uplift import OfferUplift, randomized_pairs

SOURCES = ("club's own controls", "club without controls", "club without controls + history")


def service_decisions(
    truth: pl.DataFrame, campaigns: pl.DataFrame, offers: int, seed: int
) -> pl.DataFrame:
    """The randomization of ``truth`` as the service records it (module docstring)."""
    pairs = truth.join(campaigns.select("campaign_id", "start_date"), on="campaign_id")
    first = (
        pairs.sort("start_date", "campaign_id")
        .group_by("member_id", maintain_order=True)
        .agg(pl.col("treated").first().alias("arm_treated"))
    )
    kept = pairs.join(first, on="member_id").filter(pl.col("treated") == pl.col("arm_treated"))
    drawn = kept.with_columns(
        draw=pl.int_range(pl.len()).shuffle(seed=seed).over("campaign_id", "member_id")
    ).filter(pl.col("draw") < offers)
    return drawn.select(
        decision_id=pl.format("{}-{}-{}", "campaign_id", "member_id", "offer_id"),
        member_id="member_id",
        offer_id="offer_id",
        campaign_id="campaign_id",
        channel=pl.lit("email"),
        decided_at=pl.col("start_date").cast(pl.Datetime("us")) + pl.duration(hours=9),
        rank=(pl.col("draw") + 1).cast(pl.Int32),
        p_redeem=pl.lit(0.1),
        expected_value=pl.lit(1.0),
        propensity=pl.lit(1.0),
        explored=pl.lit(False),
        model_version=pl.lit("1"),
        arm=pl.when("treated").then(pl.lit("champion")).otherwise(pl.lit("holdout")),
        delivered="treated",
    )


def strip_controls(root: Path, out: Path) -> ClubData:
    """A copy of the club at ``root`` whose campaign_audience has no controls and no treated."""
    shutil.copytree(root, out)
    audience = ClubData(root).campaign_audience.filter(pl.col("treated")).drop("treated")
    shutil.rmtree(out / "campaign_audience", ignore_errors=True)
    write_table(audience.collect(), out / "campaign_audience.parquet")
    return ClubData(out)


def score(
    model: OfferUplift, club: ClubData, as_of: datetime, truth: pl.DataFrame,
    evaluation: pl.DataFrame,
) -> dict[str, float]:  # fmt: skip
    """Spearman with the true uplift, top-20 % true uplift / mean, realized Qini."""
    history = History.at(club, as_of)
    keys = truth.select("member_id", "offer_id").unique(maintain_order=True)
    placeholder = keys.with_columns(p_buy=pl.lit(0.5), p_redeem=pl.lit(0.5))
    predicted = model.predict(history, placeholder).select("member_id", "offer_id", "uplift")
    joined = truth.join(predicted, on=["member_id", "offer_id"])
    true = (joined["p_buy_treated"] - joined["p_buy_control"]).to_numpy()
    guess = joined["uplift"].to_numpy()
    top = guess >= np.quantile(guess, 0.8)
    labelled = evaluation.join(predicted, on=["member_id", "offer_id"])
    return {
        "spearman": float(stats.spearmanr(guess, true).statistic),
        "top20_ratio": float(true[top].mean() / true.mean()),
        "qini": qini_coefficient(
            labelled["uplift"].to_numpy(),
            labelled["treated"].to_numpy(),
            labelled["label"].to_numpy(),
        ),
        "true_mean": float(true.mean()),
    }


def run_seed(
    args: argparse.Namespace, seed: int, work: Path, console: Console
) -> list[dict[str, Any]]:
    started = time.perf_counter()
    root = work / f"club-s{seed}"
    with console.status(f"seed {seed}: generating {args.members:,} members"):
        generate_club(
            root, members=args.members, products=args.products, weeks=args.weeks, seed=seed,
            counterfactuals=True, control_share=args.control_share, overwrite=True,
        )  # fmt: skip
    club, truth = ClubData(root), read_truth(root)
    campaigns = club.campaigns.sort("start_date", "campaign_id").collect()
    chosen = campaigns.tail(args.campaigns)
    as_of = datetime.combine(chosen["start_date"][0], datetime.min.time())
    stripped = strip_controls(root, work / f"stripped-s{seed}")
    url = f"sqlite:///{work / f'history-s{seed}.db'}"
    with InteractionStore(url) as store:
        store.record_decisions(service_decisions(truth, campaigns, args.offers, seed))
        exposure = store.randomized_exposure(before=as_of)
    held = truth.filter(pl.col("campaign_id").is_in(chosen["campaign_id"].implode()))
    evaluation = purchase_labels(randomized_pairs(club, chosen), club.transactions, club)
    rows = []
    fits = [
        (SOURCES[0], club, None),
        (SOURCES[1], stripped, None),
        (SOURCES[2], stripped, exposure),
    ]
    for source, data, rows_from_history in fits:
        with console.status(f"seed {seed}: uplift from the {source}"):
            model = OfferUplift(random_state=seed).fit(History.at(data, as_of), rows_from_history)
            measured = model.measured_
            figures = score(model, data, as_of, held, evaluation) if measured else {}
        rows.append({"seed": seed, "source": source, "measured": measured,
                     "reason": model.reason_, **figures})  # fmt: skip
        console.print(f"seed {seed}, {source}: {model.reason_}", markup=False)
    console.print(
        f"seed {seed}: {exposure.height:,} history pairs "
        f"({int((~exposure['treated']).sum()):,} holdout) before {as_of:%Y-%m-%d}; "
        f"{time.perf_counter() - started:.0f}s",
        markup=False,
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--members", type=int, default=5_000)
    parser.add_argument("--products", type=int, default=2_000)
    parser.add_argument("--weeks", type=int, default=52)
    parser.add_argument("--campaigns", type=int, default=3, help="evaluated: the last ones")
    parser.add_argument("--control-share", type=float, default=0.2)
    parser.add_argument("--offers", type=int, default=5, help="decided per member and campaign")
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory(prefix="nbo-holdout-uplift-") as folder:
        rows = [r for s in args.seeds for r in run_seed(args, s, Path(folder), console)]
    table = Table(title="Uplift against the truth of the last campaigns, by what it learned from")
    for column in ("seed", "learned from", "measured", "Spearman", "top 20 % / mean", "Qini"):
        table.add_column(column, justify="left" if column == "learned from" else "right")
    for r in rows:
        figures = (
            (f"{r['spearman']:.3f}", f"{r['top20_ratio']:.2f}", f"{r['qini']:.4f}")
            if r["measured"] else ("-", "-", "-")
        )  # fmt: skip
        table.add_row(str(r["seed"]), r["source"], str(r["measured"]), *figures)
    console.print(table)


if __name__ == "__main__":
    main()
