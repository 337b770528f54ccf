"""Findings name the file, the column, the rows affected and a few examples."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

from nbo.data.findings import ROW, Finding, ValidationReport


def test_a_finding_names_file_column_count_and_examples() -> None:
    finding = Finding(
        "error", "members", "members.parquet", "joined_at", "in the future", 2,
        ({ROW: 3, "member_id": 7, "joined_at": datetime(2031, 1, 2, 3, 4)},
         {ROW: 9, "member_id": 8, "joined_at": date(2031, 5, 6)}),
    )  # fmt: skip
    assert finding.render().splitlines() == [
        "error: members.parquet, column 'joined_at': in the future (2 rows)",
        "    e.g. row 3: member_id=7, joined_at=2031-01-02 03:04:00",
        "    e.g. row 9: member_id=8, joined_at=2031-05-06",
    ]


def test_a_finding_without_a_file_or_rows_is_its_message() -> None:
    assert Finding("error", "*", "", None, "no such directory").render() == (
        "error: no such directory"
    )
    assert Finding("warning", "t", "t.parquet", None, "odd", 1).render() == (
        "warning: t.parquet: odd (1 row)"
    )


def test_a_report_is_ok_with_warnings_but_not_with_an_error() -> None:
    report = ValidationReport(Path("club"))
    report.findings.append(Finding("warning", "t", "t.parquet", None, "odd"))
    assert report.ok and len(report.warnings) == 1 and not report.errors
    report.findings.append(Finding("error", "t", "t.parquet", None, "bad"))
    assert not report.ok and report.render().splitlines() == [
        "warning: t.parquet: odd",
        "error: t.parquet: bad",
    ]
