"""Checks across rows and tables: keys, duplicates, references, windows, join dates, controls."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from nbo.data.contract import TableSpec
from nbo.data.findings import MAX_EXAMPLES, ROW, Finding, Severity

__all__ = [
    "check_controls_did_not_redeem",
    "check_foreign_keys",
    "check_joined_before_receipts",
    "check_keys",
    "check_redemption_windows",
]


def _offending(
    rows: pl.LazyFrame,
    shown: list[str],
    severity: Severity,
    table: str,
    file: str,
    column: str,
    message: str,
) -> list[Finding]:
    """One finding for the offending ``rows`` (their count, the first few by row), or none."""
    n = rows.select(pl.len()).collect(engine="streaming").item()
    if not n:
        return []
    examples = rows.sort(ROW).head(MAX_EXAMPLES).select(ROW, *shown).collect()
    return [Finding(severity, table, file, column, message, int(n), tuple(examples.to_dicts()))]


def check_keys(spec: TableSpec, frame: pl.LazyFrame, file: str) -> list[Finding]:
    findings = []
    key = list(spec.primary_key)
    if key:
        dup = (
            frame.group_by(key)
            .agg(pl.len().alias("copies"), pl.col(ROW).min().alias(ROW))
            .filter(pl.col("copies") > 1)
        )
        stats = dup.select(pl.len(), pl.col("copies").sum()).collect(engine="streaming").row(0)
        if stats[0]:
            examples = dup.sort(ROW).head(MAX_EXAMPLES).select(ROW, *key, "copies").collect()
            findings.append(
                Finding(
                    "error",
                    spec.name,
                    file,
                    ", ".join(key),
                    f"duplicate primary key: {stats[0]:,} key(s) appear more than once",
                    int(stats[1]),
                    tuple(examples.to_dicts()),
                )
            )
    elif spec.unique_rows:
        cols = [c.name for c in spec.columns]
        dup = (
            frame.group_by(cols)
            .agg(pl.len().alias("copies"), pl.col(ROW).min().alias(ROW))
            .filter(pl.col("copies") > 1)
        )
        n = dup.select(pl.col("copies").sum()).collect(engine="streaming").item()
        if n:
            examples = dup.sort(ROW).head(MAX_EXAMPLES).select(ROW, *cols, "copies").collect()
            findings.append(
                Finding(
                    "error",
                    spec.name,
                    file,
                    None,
                    "duplicate rows",
                    int(n),
                    tuple(examples.to_dicts()),
                )
            )
    return findings


def check_foreign_keys(
    spec: TableSpec, frames: dict[str, pl.LazyFrame], files: dict[str, str]
) -> list[Finding]:
    findings = []
    for fk in spec.foreign_keys:
        if fk.ref_table not in files:
            findings.append(
                Finding(
                    "error",
                    spec.name,
                    files[spec.name],
                    ", ".join(fk.columns),
                    f"refers to table {fk.ref_table!r}, which is not in the dataset",
                )
            )
            continue
        if fk.ref_table not in frames:
            continue  # the referenced table is unreadable; that is reported already
        child = frames[spec.name]
        parent = (
            frames[fk.ref_table]
            .select([pl.col(r).alias(c) for c, r in zip(fk.columns, fk.ref_columns, strict=True)])
            .unique()
        )
        dangling = child.join(parent, on=list(fk.columns), how="anti")
        ref = f"{files[fk.ref_table]} ({', '.join(fk.ref_columns)})"
        findings += _offending(
            dangling, list(fk.columns), "error", spec.name, files[spec.name],
            ", ".join(fk.columns), f"refers to rows that are not in {ref}",
        )  # fmt: skip
    return findings


def check_redemption_windows(frames: dict[str, pl.LazyFrame], file: str) -> list[Finding]:
    """Redemptions outside their campaign's window are suspicious, not fatal (late scans)."""
    if not {"redemptions", "offers", "campaigns"} <= frames.keys():
        return []
    windows = (
        frames["offers"]
        .select("offer_id", "campaign_id")
        .join(frames["campaigns"].select("campaign_id", "start_date", "end_date"), on="campaign_id")
    )
    outside = (
        frames["redemptions"]
        .join(windows, on="offer_id")
        .filter(
            (pl.col("ts").dt.date() < pl.col("start_date"))
            | (pl.col("ts").dt.date() > pl.col("end_date"))
        )
    )
    return _offending(
        outside, ["member_id", "offer_id", "ts", "start_date", "end_date"], "warning",
        "redemptions", file, "ts", "redeemed outside the campaign's start_date..end_date",
    )  # fmt: skip


def check_joined_before_receipts(
    frames: dict[str, pl.LazyFrame], files: dict[str, str]
) -> list[Finding]:
    """Members whose first receipt precedes the date they joined (warning: clocks, back-fills)."""
    if not {"members", "transactions"} <= frames.keys():
        return []
    if "joined_at" not in frames["members"].collect_schema():
        return []
    early = (
        frames["transactions"]
        .group_by("member_id")
        .agg(pl.col("ts").min().alias("first_ts"))
        .join(frames["members"].select("member_id", "joined_at", ROW), on="member_id")
        .filter(pl.col("first_ts") < pl.col("joined_at") - timedelta(days=1))
    )
    return _offending(
        early, ["member_id", "joined_at", "first_ts"], "warning", "members", files["members"],
        "joined_at", "member has receipts from before joined_at",
    )  # fmt: skip


def check_controls_did_not_redeem(
    frames: dict[str, pl.LazyFrame], files: dict[str, str]
) -> list[Finding]:
    """A control (``treated`` false) got no offer, so a redemption of one of its campaign's
    offers means the hold-out was not held out: the experiment would measure nothing."""
    if not {"campaign_audience", "offers", "redemptions"} <= frames.keys():
        return []
    redeemed = (
        frames["campaign_audience"]
        .filter(pl.col("treated").not_())
        .select(ROW, "campaign_id", "member_id")
        .join(frames["offers"].select("offer_id", "campaign_id"), on="campaign_id")
        .join(
            frames["redemptions"].select(
                "member_id", "offer_id", pl.col("ts").alias("redeemed_at")
            ),
            on=["member_id", "offer_id"],
        )
    )
    return _offending(
        redeemed, ["campaign_id", "member_id", "offer_id", "redeemed_at"], "error",
        "campaign_audience", files["campaign_audience"], "treated",
        "control member (treated = false) redeemed an offer of that campaign",
    )  # fmt: skip
