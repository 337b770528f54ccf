"""Validation of a club dataset against the contract.

Checks types, primary keys, duplicate rows, referential integrity, dates and value sanity. Each
problem becomes a :class:`Finding` naming the file, the column and a few offending rows, so a data
team can fix its export without reading a traceback. Every check is a lazy polars query, so a
dataset of a hundred million receipt lines validates in streaming memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Literal

import polars as pl

from nbo.data.contract import TABLES, Column, TableSpec
from nbo.data.io import ClubData, conform

__all__ = ["Finding", "ValidationReport", "check_schema", "validate_dataset"]

Severity = Literal["error", "warning"]
MAX_EXAMPLES = 5
ROW = "_row"  # 1-based row number within the table, shown in examples
EARLIEST = datetime(1990, 1, 1)


@dataclass(frozen=True)
class Finding:
    """One problem found in one table (and column, where it is about one column)."""

    severity: Severity
    table: str
    file: str
    column: str | None
    message: str
    rows: int = 0  # how many rows are affected
    examples: tuple[dict[str, object], ...] = ()

    def render(self) -> str:
        where = self.file + (f", column {self.column!r}" if self.column else "")
        head = (
            f"{self.severity}: {where}: {self.message}"
            if where
            else f"{self.severity}: {self.message}"
        )
        if self.rows:
            head += f" ({self.rows:,} row{'s' if self.rows != 1 else ''})"
        lines = [head]
        lines += [f"    e.g. {_fmt_row(row)}" for row in self.examples]
        return "\n".join(lines)


def _fmt_value(value: object) -> str:
    if isinstance(value, date | datetime):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    return repr(value)


def _fmt_row(row: dict[str, object]) -> str:
    number = row.get(ROW)
    cells = ", ".join(f"{k}={_fmt_value(v)}" for k, v in row.items() if k != ROW)
    return f"row {number}: {cells}" if number is not None else cells


@dataclass
class ValidationReport:
    """All findings for one dataset; ``ok`` when there is no error (warnings allowed)."""

    root: Path
    findings: list[Finding] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def render(self) -> str:
        return "\n".join(f.render() for f in self.findings)


def _compatible(found: pl.DataType, col: Column) -> bool:
    """Whether a stored dtype can stand for the contract dtype without losing meaning."""
    want = col.dtype
    if found == want or found == pl.Null:
        return True
    if want == pl.Int64:
        return found.is_integer()
    if want == pl.Float64:
        return found.is_numeric()
    if want == pl.String:
        return found in (pl.String, pl.Categorical) or isinstance(found, pl.Enum)
    if isinstance(want, pl.Datetime):
        return isinstance(found, pl.Datetime) and found.time_zone is None
    return False


def check_schema(spec: TableSpec, schema: pl.Schema, file: str) -> list[Finding]:
    """Missing required columns and columns whose type cannot stand for the contract's."""
    findings: list[Finding] = []
    for col in spec.columns:
        if col.name not in schema:
            if col.required:
                findings.append(
                    Finding(
                        "error",
                        spec.name,
                        file,
                        col.name,
                        "required column is missing "
                        f"(columns found: {', '.join(schema) or 'none'})",
                    )
                )
        elif not _compatible(schema[col.name], col):
            findings.append(
                Finding(
                    "error",
                    spec.name,
                    file,
                    col.name,
                    f"has type {schema[col.name]}, expected {col.dtype}",
                )
            )
    return findings


def _examples(
    frame: pl.LazyFrame, condition: pl.Expr, columns: list[str]
) -> tuple[dict[str, object], ...]:
    rows = (
        frame.filter(condition).select(ROW, *columns).head(MAX_EXAMPLES).collect(engine="streaming")
    )
    return tuple(rows.to_dicts())


@dataclass(frozen=True)
class _RowCheck:
    column: str
    condition: pl.Expr  # true on an offending row
    message: str
    severity: Severity = "error"


def _row_checks(spec: TableSpec, present: set[str]) -> list[_RowCheck]:
    """Row-level checks (nulls, value sanity, dates) for the columns a table has."""
    checks: list[_RowCheck] = []
    for col in spec.columns:
        if col.name in present and not col.nullable:
            checks.append(_RowCheck(col.name, pl.col(col.name).is_null(), "null values"))
        if col.name in present and col.dtype == pl.Float64:
            checks.append(
                _RowCheck(
                    col.name, ~pl.col(col.name).is_finite(), "not a finite number (NaN or inf)"
                )
            )
    now = datetime.now()
    if spec.name == "transactions":
        checks += [
            _RowCheck(
                "quantity",
                pl.col("quantity") <= 0,
                "quantity must be > 0 (returns belong out of the dataset)",
            ),
            _RowCheck("sales_value", pl.col("sales_value") < 0, "sales_value must be >= 0"),
        ]
        checks += [
            _RowCheck(
                name, pl.col(name) < 0, f"{name} must be >= 0 (a discount is a positive amount)"
            )
            for name in ("retail_disc", "coupon_disc", "coupon_match_disc")
            if name in present
        ]
    if spec.name == "campaigns":
        checks.append(
            _RowCheck(
                "start_date",
                pl.col("start_date") > pl.col("end_date"),
                "start_date is after end_date",
            )
        )
    ts_cols = [
        c.name for c in spec.columns if isinstance(c.dtype, pl.Datetime) and c.name in present
    ]
    for name in ts_cols:
        checks.append(
            _RowCheck(
                name,
                (pl.col(name) < EARLIEST) | (pl.col(name) > now + timedelta(days=366)),
                f"timestamp outside {EARLIEST.year}..next year",
            )
        )
    return checks


def _check_rows(
    spec: TableSpec, frame: pl.LazyFrame, file: str, present: set[str]
) -> list[Finding]:
    checks = [c for c in _row_checks(spec, present) if c.column in present]
    if not checks:
        return []
    counts = (
        frame.select(
            [c.condition.fill_null(False).sum().alias(str(i)) for i, c in enumerate(checks)]
        )
        .collect(engine="streaming")
        .row(0)
    )
    findings = []
    for check, count in zip(checks, counts, strict=True):
        if count:
            columns = [check.column] + (["end_date"] if check.column == "start_date" else [])
            findings.append(
                Finding(
                    check.severity,
                    spec.name,
                    file,
                    check.column,
                    check.message,
                    int(count),
                    _examples(frame, check.condition.fill_null(False), columns),
                )
            )
    return findings


def _check_keys(spec: TableSpec, frame: pl.LazyFrame, file: str) -> list[Finding]:
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


def _check_foreign_keys(
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
        n = dangling.select(pl.len()).collect(engine="streaming").item()
        if n:
            examples = dangling.sort(ROW).head(MAX_EXAMPLES).select(ROW, *fk.columns).collect()
            ref = f"{files[fk.ref_table]} ({', '.join(fk.ref_columns)})"
            findings.append(
                Finding(
                    "error",
                    spec.name,
                    files[spec.name],
                    ", ".join(fk.columns),
                    f"refers to rows that are not in {ref}",
                    int(n),
                    tuple(examples.to_dicts()),
                )
            )
    return findings


def _check_redemption_windows(frames: dict[str, pl.LazyFrame], file: str) -> list[Finding]:
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
    n = outside.select(pl.len()).collect(engine="streaming").item()
    if not n:
        return []
    examples = (
        outside.sort(ROW)
        .head(MAX_EXAMPLES)
        .select(ROW, "member_id", "offer_id", "ts", "start_date", "end_date")
        .collect()
    )
    return [
        Finding(
            "warning",
            "redemptions",
            file,
            "ts",
            "redeemed outside the campaign's start_date..end_date",
            int(n),
            tuple(examples.to_dicts()),
        )
    ]


def validate_dataset(root: str | Path) -> ValidationReport:
    """Validate every table of the dataset at ``root``; never raises for bad data, only reports."""
    report = ValidationReport(Path(root))
    try:
        club = ClubData(root)
    except Exception as exc:  # a missing directory or table is a finding like any other
        report.findings.append(Finding("error", "*", "", None, str(exc)))
        return report

    frames: dict[str, pl.LazyFrame] = {}
    files: dict[str, str] = {}
    for spec in TABLES.values():
        path = club.path(spec.name)
        if path is None:
            continue  # required tables were checked by ClubData
        file = str(path)
        files[spec.name] = file
        try:
            raw = club.raw(spec.name)
            schema = raw.collect_schema()
            rows = raw.select(pl.len()).collect().item()
        except Exception as exc:  # unreadable Parquet: name the file, not a traceback
            report.findings.append(
                Finding(
                    "error", spec.name, file, None, f"cannot be read as Parquet ({_short(exc)})"
                )
            )
            continue
        report.rows[spec.name] = rows
        schema_findings = check_schema(spec, schema, file)
        report.findings += schema_findings
        if schema_findings:
            continue
        if rows == 0 and spec.name in ("members", "products", "transactions"):
            report.findings.append(Finding("error", spec.name, file, None, "table is empty"))
            continue
        frame = conform(raw, spec, schema).with_row_index(ROW, offset=1)
        present = set(schema)
        report.findings += _check_rows(spec, frame, file, present)
        report.findings += _check_keys(spec, frame, file)
        frames[spec.name] = frame

    for spec in TABLES.values():
        if spec.name in frames:
            report.findings += _check_foreign_keys(spec, frames, files)
    if "redemptions" in files:
        report.findings += _check_redemption_windows(frames, files["redemptions"])
    _check_period(report, frames, files)
    return report


def _check_period(
    report: ValidationReport, frames: dict[str, pl.LazyFrame], files: dict[str, str]
) -> None:
    """Members whose first receipt precedes the date they joined (warning: clocks, back-fills)."""
    if not {"members", "transactions"} <= frames.keys():
        return
    if "joined_at" not in frames["members"].collect_schema():
        return
    early = (
        frames["transactions"]
        .group_by("member_id")
        .agg(pl.col("ts").min().alias("first_ts"))
        .join(frames["members"].select("member_id", "joined_at", ROW), on="member_id")
        .filter(pl.col("first_ts") < pl.col("joined_at") - timedelta(days=1))
    )
    n = early.select(pl.len()).collect(engine="streaming").item()
    if n:
        examples = (
            early.sort(ROW)
            .head(MAX_EXAMPLES)
            .select(ROW, "member_id", "joined_at", "first_ts")
            .collect()
        )
        report.findings.append(
            Finding(
                "warning",
                "members",
                files["members"],
                "joined_at",
                "member has receipts from before joined_at",
                int(n),
                tuple(examples.to_dicts()),
            )
        )


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
