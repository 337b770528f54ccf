"""How an import of files names what is wrong: in the export's terms (files, columns, lines).

The written tables are validated like any dataset; :class:`Origin` maps their rows back to the
export's files and lines, and the functions here word read failures, bad values and
validation findings so that the user can find them in what the club exported.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import polars as pl

from nbo.data.contract import TableSpec
from nbo.data.findings import ROW, Finding
from nbo.data.mapping import CsvOptions, TableMapping
from nbo.errors import DataContractError

__all__ = [
    "FILE",
    "LINE",
    "RAW",
    "Origin",
    "bad_values",
    "encoding_error",
    "read_error",
    "render",
]

MAX_EXAMPLES = 5
FILE, LINE, RAW = "_file", "_line", "_raw_"  # helper columns, never written
NEWLINE = b"\n"


@dataclass(frozen=True)
class Origin:
    """Where a written table's rows came from, to point findings back at the export."""

    key: str  # what the mapping names, e.g. export/receipts/*.csv
    files: list[Path]
    rows: list[int]  # rows per file, in write order
    columns: dict[str, str]  # contract column -> source column
    first: int  # number of the first data row: line 2 of a CSV (after its header), row 1 of Parquet
    empty: dict[str, int] = field(default_factory=dict)  # empty cells of columns with a default

    @property
    def unit(self) -> str:
        return "row" if self.first == 1 else "line"

    def locate(self, row: int) -> str:
        """``file line N`` for the 1-based ``row`` of the written table."""
        for path, count in zip(self.files, self.rows, strict=True):
            if row <= count:
                return f"{path} {self.unit} {row - 1 + self.first}"
            row -= count
        return f"{self.key} row {row}"


def bad_values(
    spec: TableSpec,
    entry: TableMapping,
    origin: Origin,
    frame: pl.LazyFrame,
    column: str,
    condition: pl.Expr,
    count: int,
) -> str:
    """A message naming the column, the expected type and a few offending raw values."""
    examples = frame.filter(condition).select(FILE, LINE, RAW + column).head(MAX_EXAMPLES).collect()
    shown = [f"    {origin.files[f]} {origin.unit} {n}: {v!r}" for f, n, v in examples.iter_rows()]
    expected = _expected(spec, entry, column)
    if any("," in str(v) for v in examples[RAW + column]) and spec.schema[column] == pl.Float64:
        expected += " (decimal comma? set 'decimal_comma: true' under csv:)"
    if column == "member_id":
        expected += " (member numbers with letters? set 'member_keys: string' in the mapping)"
    return (
        f"{origin.key}, column {entry.columns[column]!r} ({spec.name}.{column}): "
        f"{count:,} value(s) are not a valid {expected}\n" + "\n".join(shown)
    )


def _expected(spec: TableSpec, entry: TableMapping, column: str) -> str:
    dtype = spec.schema[column]
    fmt = entry.datetime_format.get(column)
    if isinstance(dtype, pl.Datetime | pl.Date):
        kind = "timestamp" if isinstance(dtype, pl.Datetime) else "date"
        if fmt:
            return f"{kind} in format {fmt!r}"
        return f"{kind} (ISO, e.g. 2024-03-01 14:05:00; set datetime_format for other formats)"
    names = {pl.Int64: "whole number", pl.Float64: "number", pl.Boolean: "true/false"}
    return next((n for t, n in names.items() if dtype == t), str(dtype))


def read_error(
    origin: Origin, options: CsvOptions, exc: pl.exceptions.PolarsError
) -> DataContractError:
    """A polars read failure as a message naming the file (and the fix for a wrong encoding)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "utf-8" in text.lower() or "utf8" in text.lower():
        for path in origin.files:
            if error := encoding_error(path):
                return error
    kind = "Parquet" if origin.unit == "row" else f"CSV with separator {options.separator!r}"
    return DataContractError(f"{origin.key}: cannot be read as {kind} ({text[:200]})")


def encoding_error(path: Path) -> DataContractError | None:
    """Where ``path`` first stops being UTF-8, and the setting that reads it, or None."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with path.open("rb") as fh:
        while True:
            chunk = fh.read(1 << 20)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                bad = exc.object[exc.start : exc.end]
                line += exc.object[: exc.start].count(NEWLINE)
                return DataContractError(
                    f"{path}: not valid UTF-8 (line {line}, byte {bad!r}); the export is probably "
                    "latin-1 or Windows-1252: set 'encoding: cp1252' (or latin-1) under csv:"
                )
            if not chunk:
                return None
            line += chunk.count(NEWLINE)


def render(finding: Finding, origins: dict[str, Origin], tmp: Path) -> str:
    """A validation finding in the export's terms: source files, source columns, file lines."""
    origin = origins.get(finding.table)
    message = finding.message
    for name, other in origins.items():
        message = message.replace(str(tmp / f"{name}.parquet"), other.key)
    where = origin.key if origin else finding.file
    if finding.column:
        names = origin.columns if origin else {}
        sources = [f"{c} ({names[c]})" if c in names else c for c in finding.column.split(", ")]
        where += f", column {', '.join(sources)}"
    head = f"{finding.severity}: {where}: {message}"
    if finding.rows:
        head += f" ({finding.rows:,} row{'s' if finding.rows != 1 else ''})"
    lines = [head]
    for example in finding.examples:
        cells = ", ".join(f"{k}={_value(v)}" for k, v in example.items() if k != ROW)
        row = example.get(ROW)
        place = origin.locate(row) if origin and isinstance(row, int) else f"row {row}"
        lines.append(f"    e.g. {place}: {cells}")
    return "\n".join(lines)


def _value(value: object) -> str:
    return str(value) if isinstance(value, date) else repr(value)  # 2024-01-31, not date(...)
