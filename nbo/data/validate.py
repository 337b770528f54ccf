"""Validation of a club dataset against the contract.

Checks types, primary keys, duplicate rows, referential integrity, dates and value sanity. Each
problem becomes a :class:`~nbo.data.findings.Finding` naming the file, the column and a few
offending rows, so a data team can fix its export without reading a traceback. Every check is
a lazy polars query, so a dataset of a hundred million receipt lines validates in streaming
memory. Checks across rows and tables live in :mod:`nbo.data.relations`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

from nbo.data.contract import TABLES, Column, TableSpec
from nbo.data.findings import MAX_EXAMPLES, ROW, Finding, Severity, ValidationReport
from nbo.data.io import ClubData, conform
from nbo.data.relations import (
    check_controls_did_not_redeem,
    check_foreign_keys,
    check_joined_before_receipts,
    check_keys,
    check_redemption_windows,
)

__all__ = ["Finding", "ValidationReport", "check_schema", "validate_dataset"]

EARLIEST = datetime(1990, 1, 1)


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


def _name_non_booleans(finding: Finding, spec: TableSpec, raw: pl.LazyFrame) -> Finding:
    """A Boolean column stored as text or numbers: count its rows, show each odd value once."""
    if finding.column is None or finding.column not in spec.schema:
        return finding
    if spec.column(finding.column).dtype != pl.Boolean or finding.rows:
        return finding
    values = (
        raw.select(pl.col(finding.column))
        .with_row_index(ROW, offset=1)
        .filter(pl.col(finding.column).is_not_null())
    )
    count = values.select(pl.len()).collect(engine="streaming").item()
    examples = (
        values.unique(finding.column, keep="first", maintain_order=True)
        .head(MAX_EXAMPLES)
        .collect(engine="streaming")
    )
    return Finding(
        finding.severity,
        finding.table,
        finding.file,
        finding.column,
        f"{finding.message}: values must be true or false (a Parquet Boolean), not text or numbers",
        int(count),
        tuple(examples.to_dicts()),
    )


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
        schema_findings = [
            _name_non_booleans(f, spec, raw) for f in check_schema(spec, schema, file)
        ]
        report.findings += schema_findings
        if schema_findings:
            continue
        if rows == 0 and spec.name in ("members", "products", "transactions"):
            report.findings.append(Finding("error", spec.name, file, None, "table is empty"))
            continue
        frame = conform(raw, spec, schema).with_row_index(ROW, offset=1)
        present = set(schema)
        report.findings += _check_rows(spec, frame, file, present)
        report.findings += check_keys(spec, frame, file)
        frames[spec.name] = frame

    for spec in TABLES.values():
        if spec.name in frames:
            report.findings += check_foreign_keys(spec, frames, files)
    if "redemptions" in files:
        report.findings += check_redemption_windows(frames, files["redemptions"])
    report.findings += check_joined_before_receipts(frames, files)
    report.findings += check_controls_did_not_redeem(frames, files)
    return report


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
