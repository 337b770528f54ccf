"""Champion / challenger / holdout: redemption rate and spend per arm, with confidence intervals.

Members are counted in the arm they were first served in (the history's ``assignments``); a
redemption counts for a member when its event is at or after the assignment. The holdout got no
offers, so its redemption rate is what the club sees without them and each arm's difference to
it is the offers' incremental effect. ``spend`` is the money on the members' redemption events
(``amount``: the discount the club paid), per member of the arm.

The frames come from the history (``nbo.history.logs.experiment_log``), handed over by the
caller: evaluation and history do not import each other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import polars as pl

__all__ = [
    "ALL_CAMPAIGNS",
    "ExperimentFrames",
    "arm_report",
    "arm_report_over_time",
    "difference_interval",
    "incremental_report",
    "wilson",
]

Z95 = 1.959963984540054


class ExperimentFrames(Protocol):
    """What the report reads: assignments (member_id, arm, assigned_at), decisions
    (member_id, decisions) and redemption events (member_id, ts, amount; more columns are
    ignored)."""

    @property
    def assignments(self) -> pl.DataFrame: ...

    @property
    def decisions(self) -> pl.DataFrame: ...

    @property
    def redemptions(self) -> pl.DataFrame: ...


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def difference_interval(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """95 % interval of the difference of two proportions ``k1/n1 - k2/n2`` (Newcombe's
    hybrid score interval from the two :func:`wilson` intervals; fair for small counts)."""
    p1, p2 = (k1 / n1 if n1 else 0.0), (k2 / n2 if n2 else 0.0)
    (l1, u1), (l2, u2) = wilson(k1, n1), wilson(k2, n2)
    diff = p1 - p2
    return (
        diff - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
        diff + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2),
    )


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
            redemptions=pl.col("redemptions").sum(),
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
                "redemptions": pl.UInt32,
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
    holdout = report.filter(pl.col("arm") == "holdout")
    if holdout.height == 0:
        none = pl.lit(None, pl.Float64)
        return report.with_columns(rate_lift_vs_holdout=none, lift_low=none, lift_high=none).drop(
            "spend_sd"
        )
    base_k, base_n = int(holdout["redeemers"][0]), int(holdout["members"][0])
    bounds = [
        difference_interval(int(k), int(n), base_k, base_n)
        for k, n in report.select("redeemers", "members").iter_rows()
    ]
    return report.with_columns(
        rate_lift_vs_holdout=pl.col("redemption_rate") - base_k / base_n,
        lift_low=pl.Series([b[0] for b in bounds], dtype=pl.Float64),
        lift_high=pl.Series([b[1] for b in bounds], dtype=pl.Float64),
    ).drop("spend_sd")


@dataclass(frozen=True)
class _Cut:
    assignments: pl.DataFrame
    decisions: pl.DataFrame
    redemptions: pl.DataFrame


def arm_report_over_time(frames: ExperimentFrames, every: timedelta) -> pl.DataFrame:
    """:func:`arm_report` as it stood at the end of each period of length ``every`` from the
    first assignment's day on (members assigned and redemptions seen before the period's end:
    what the report said then), one row per period and arm, with ``period_end``. Decision
    counts are the whole log's (the frames do not date them)."""
    first = frames.assignments["assigned_at"].min()
    if not isinstance(first, datetime):  # no member assigned yet
        return pl.DataFrame()
    seen = [frames.assignments["assigned_at"].max(), frames.redemptions["ts"].max()]
    latest = max(t for t in seen if isinstance(t, datetime))
    end = datetime.combine(first.date(), datetime.min.time()) + every
    reports = []
    while True:
        cut = _Cut(
            frames.assignments.filter(pl.col("assigned_at") < end),
            frames.decisions,
            frames.redemptions.filter(pl.col("ts") < end),
        )
        reports.append(arm_report(cut).with_columns(period_end=pl.lit(end)))
        if end > latest:
            break
        end += every
    return pl.concat(reports, how="vertical_relaxed")


ALL_CAMPAIGNS = "all"

INCREMENTAL_SCHEMA = pl.Schema(
    {
        "campaign_id": pl.String(),
        "arm": pl.String(),
        "members": pl.Int64(),
        "redemptions_per_member": pl.Float64(),
        "incremental_redemptions": pl.Float64(),
        "redemptions_low": pl.Float64(),
        "redemptions_high": pl.Float64(),
        "spend_per_member": pl.Float64(),
        "incremental_spend": pl.Float64(),
        "spend_low": pl.Float64(),
        "spend_high": pl.Float64(),
    }
)


def incremental_report(assignments: pl.DataFrame, redemptions: pl.DataFrame) -> pl.DataFrame:
    """Per campaign and treated arm: redemptions and spend per member minus the holdout's.

    ``assignments`` has (member_id, arm, assigned_at); ``redemptions`` has (member_id,
    campaign_id, ts, amount), one row per redemption event (campaign null when unknown: it
    counts in the ``"all"`` rows only). Every member of an arm is in its denominator, whether
    or not they redeemed. The 95 % interval of a difference of per-member means is the normal
    approximation, ``z * sqrt(var_arm / n_arm + var_holdout / n_holdout)``, fair for the
    thousands of members an arm has. Empty without holdout members.
    """
    counted = (
        assignments.join(redemptions, on="member_id")
        .filter(pl.col("ts") >= pl.col("assigned_at"))
        .with_columns(pl.col("amount").fill_null(0.0))
    )
    per_member = (
        pl.concat(
            [
                counted.drop_nulls("campaign_id"),
                counted.with_columns(campaign_id=pl.lit(ALL_CAMPAIGNS)),
            ]
        )
        .group_by("campaign_id", "arm", "member_id")
        .agg(redemptions=pl.len().cast(pl.Float64), spend=pl.col("amount").sum())
    )
    # members who redeemed nothing count as zeros: sums and sums of squares over the
    # redeemers, divided by the whole arm
    sums = per_member.group_by("campaign_id", "arm").agg(
        r_sum=pl.col("redemptions").sum(),
        r_sq=(pl.col("redemptions") ** 2).sum(),
        s_sum=pl.col("spend").sum(),
        s_sq=(pl.col("spend") ** 2).sum(),
    )
    sizes = assignments.group_by("arm").agg(members=pl.len().cast(pl.Int64))
    campaigns = sums.select("campaign_id").unique()
    grid = (
        campaigns.join(sizes, how="cross")
        .join(sums, on=["campaign_id", "arm"], how="left")
        .fill_null(0.0)
        .with_columns(
            r_mean=pl.col("r_sum") / pl.col("members"),
            s_mean=pl.col("s_sum") / pl.col("members"),
        )
        .with_columns(
            r_var=_variance("r_sq", "r_mean") / pl.col("members"),
            s_var=_variance("s_sq", "s_mean") / pl.col("members"),
        )
    )
    holdout = grid.filter(pl.col("arm") == "holdout").select(
        "campaign_id", h_r=pl.col("r_mean"), h_rv=pl.col("r_var"), h_s=pl.col("s_mean"),
        h_sv=pl.col("s_var"),
    )  # fmt: skip
    treated = grid.filter(pl.col("arm") != "holdout").join(holdout, on="campaign_id")
    r_half = Z95 * (pl.col("r_var") + pl.col("h_rv")).sqrt()
    s_half = Z95 * (pl.col("s_var") + pl.col("h_sv")).sqrt()
    r_diff = pl.col("r_mean") - pl.col("h_r")
    s_diff = pl.col("s_mean") - pl.col("h_s")
    return (
        treated.select(
            "campaign_id",
            "arm",
            "members",
            redemptions_per_member=pl.col("r_mean"),
            incremental_redemptions=r_diff,
            redemptions_low=r_diff - r_half,
            redemptions_high=r_diff + r_half,
            spend_per_member=pl.col("s_mean"),
            incremental_spend=s_diff,
            spend_low=s_diff - s_half,
            spend_high=s_diff + s_half,
        )
        .cast(INCREMENTAL_SCHEMA)
        .sort(pl.col("campaign_id") == ALL_CAMPAIGNS, "campaign_id", "arm")
    )


def _variance(squares: str, mean: str) -> pl.Expr:
    """Sample variance of per-member values from their sum of squares and mean (n >= 2)."""
    n = pl.col("members")
    return (
        pl.when(n > 1)
        .then(((pl.col(squares) - n * pl.col(mean) ** 2) / (n - 1)).clip(lower_bound=0.0))
        .otherwise(0.0)
    )
