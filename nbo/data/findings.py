"""What validation reports: findings naming the file, column and a few offending rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Literal

__all__ = ["MAX_EXAMPLES", "ROW", "Finding", "Severity", "ValidationReport"]

Severity = Literal["error", "warning"]
MAX_EXAMPLES = 5
ROW = "_row"  # 1-based row number within the table, shown in examples


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
