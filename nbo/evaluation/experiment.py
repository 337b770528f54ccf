"""Champion / challenger / holdout: redemption rate and spend per arm, with confidence intervals.

Members are counted in the arm they were first served in (the history's ``assignments``); a
redemption counts for a member when its event is at or after the assignment. The holdout got no
offers, so its redemption rate is what the club sees without them and each arm's difference to
it is the offers' incremental effect. ``spend`` is the money on the members' redemption events
(``amount``: the discount the club paid), per member of the arm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl

__all__ = ["ExperimentFrames", "arm_report", "wilson"]

Z95 = 1.959963984540054


@dataclass(frozen=True)
class ExperimentFrames:
    """What the report reads: assignments (member_id, arm, assigned_at), decisions
    (member_id, decisions) and redemption events (member_id, ts, amount)."""

    assignments: pl.DataFrame
    decisions: pl.DataFrame
    redemptions: pl.DataFrame


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def arm_report(frames: ExperimentFrames) -> pl.DataFrame:
    """One row per arm: members, served, decisions, redeemers, rate and CI, spend and CI, lift."""
    redeemed = (
        frames.assignments.join(frames.redemptions, on="member_id")
        .filter(pl.col("ts") >= pl.col("assigned_at"))
        .group_by("member_id")
        .agg(spend=pl.col("amount").fill_null(0.0).sum(), redemptions=pl.len())
    )
    members = (
        frames.assignments.join(frames.decisions, on="member_id", how="left")
        .join(redeemed, on="member_id", how="left")
        .with_columns(
            pl.col("decisions").fill_null(0),
            pl.col("spend").fill_null(0.0),
            pl.col("redemptions").fill_null(0),
        )
    )
    per_arm = (
        members.group_by("arm")
        .agg(
            members=pl.len(),
            served=(pl.col("decisions") > 0).sum(),
            decisions=pl.col("decisions").sum(),
            redeemers=(pl.col("redemptions") > 0).sum(),
            spend_per_member=pl.col("spend").mean(),
            spend_sd=pl.col("spend").std(),
        )
        .sort("arm")
    )
    rows = []
    for row in per_arm.iter_rows(named=True):
        n, k = int(row["members"]), int(row["redeemers"])
        low, high = wilson(k, n)
        sd = row["spend_sd"] if row["spend_sd"] is not None else 0.0
        half = Z95 * sd / math.sqrt(n) if n else 0.0
        rows.append(
            row
            | {
                "redemption_rate": k / n if n else 0.0,
                "rate_low": low,
                "rate_high": high,
                "spend_low": row["spend_per_member"] - half,
                "spend_high": row["spend_per_member"] + half,
            }
        )
    report = (
        pl.DataFrame(rows)
        if rows
        else pl.DataFrame(
            schema={
                "arm": pl.String,
                "members": pl.UInt32,
                "served": pl.UInt32,
                "decisions": pl.Int64,
                "redeemers": pl.UInt32,
                "spend_per_member": pl.Float64,
                "spend_sd": pl.Float64,
                "redemption_rate": pl.Float64,
                "rate_low": pl.Float64,
                "rate_high": pl.Float64,
                "spend_low": pl.Float64,
                "spend_high": pl.Float64,
            }
        )
    )
    holdout = report.filter(pl.col("arm") == "holdout")["redemption_rate"]
    base = holdout[0] if holdout.len() else None
    return report.with_columns(
        rate_lift_vs_holdout=(pl.col("redemption_rate") - base)
        if base is not None
        else pl.lit(None, pl.Float64)
    ).drop("spend_sd")
