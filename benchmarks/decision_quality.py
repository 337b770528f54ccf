"""Decisions against the club's own targeting on Complete Journey (same campaigns, members).

Trains the models as of ``--as-of`` (``nbo train``'s bundle), then for every campaign
starting in the following ``--window-days`` decides each audience member's offers at the
campaign's start (:func:`nbo.pipelines.decision_backtest.decision_backtest`) and prints the
realised redemption rate of nbo's lists beside the club's "every coupon to every audience
member".
The club's data records redemptions, so the policy arbitrates on them here (objective
``redemptions``); the default objective is scored in ``benchmarks/incremental.py``:

    .venv/bin/python benchmarks/decision_quality.py data/completejourney --as-of 2017-09-04
"""

from __future__ import annotations

import argparse
import time

import polars as pl
from rich.console import Console
from rich.table import Table

from nbo.data.io import ClubData
from nbo.decisioning.policy import load_policy
from nbo.features.history import as_datetime
from nbo.pipelines.decision_backtest import decision_backtest
from nbo.pipelines.train import train_bundle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="club dataset directory (Complete Journey import)")
    parser.add_argument("--as-of", default="2017-09-04")
    parser.add_argument("--window-days", type=int, default=120)
    parser.add_argument("--policy", default=None, help="policy YAML (default policy)")
    args = parser.parse_args()

    club = ClubData(args.data)
    started = time.perf_counter()
    bundle = train_bundle(club, as_datetime(args.as_of))
    policy = load_policy(args.policy).with_objective("redemptions")
    rows = decision_backtest(
        club, bundle, bundle.timing, policy, args.as_of, window_days=args.window_days
    )
    totals = rows.select(
        pl.col("club_redeemed", "club_pairs", "decided_redeemed", "decided_pairs").sum()
    ).row(0, named=True)
    table = Table(title=f"Decisions vs the club's targeting, campaigns from {args.as_of}")
    for column in ("campaign", "audience", "coupons", "club rate", "nbo rate", "lift",
                   "captured"):  # fmt: skip
        table.add_column(column, justify="left" if column == "campaign" else "right")
    for row in rows.iter_rows(named=True):
        table.add_row(
            row["campaign_id"], f"{row['audience']:,}", f"{row['coupons']:,}",
            f"{row['club_rate']:.4f}", f"{row['decided_rate']:.4f}", f"{row['lift']:.2f}",
            f"{row['captured']:.2f}",
        )  # fmt: skip
    club_rate = totals["club_redeemed"] / totals["club_pairs"]
    nbo_rate = totals["decided_redeemed"] / totals["decided_pairs"]
    table.add_row(
        "all", "", f"{totals['club_pairs']:,} / {totals['decided_pairs']:,} pairs",
        f"{club_rate:.4f}", f"{nbo_rate:.4f}", f"{nbo_rate / club_rate:.2f}",
        f"{totals['decided_redeemed'] / totals['club_redeemed']:.2f}",
    )  # fmt: skip
    console = Console()
    console.print(table)
    console.print(f"{policy.slots} offers per member; {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
