"""The column mapping of ``nbo data import files``: YAML validated by pydantic, plus value parsing.

A mapping says, per contract table, which file(s) of the club's export hold it and which source
column holds each contract column. ``docs/mapping.example.yaml`` is a commented example and
``docs/importing-your-data.md`` the guide. Every problem with a mapping is a
:class:`~nbo.errors.MappingError` naming the file, the key path and what is allowed there.
"""

from __future__ import annotations

import codecs
import os
from datetime import date, datetime
from pathlib import Path, PurePath
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from nbo.data.contract import TABLES, Column, TableSpec
from nbo.errors import MappingError
from nbo.yamlfile import read_yaml

__all__ = ["CsvOptions", "Mapping", "TableMapping", "load_mapping", "parse_values"]

Format = Literal["csv", "parquet"]
Constant = bool | int | float | str | datetime | date
FORMAT_BY_SUFFIX: dict[str, Format] = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
# Timestamps without a datetime_format: ISO 8601 with or without time, seconds and fraction.
ISO_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
)
BOOLEANS = {
    "true": True,
    "false": False,
    "t": True,
    "f": False,
    "1": True,
    "0": False,
    "yes": True,
    "no": False,
    "y": True,
    "n": False,
    "ja": True,
    "nej": False,
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CsvOptions(_Strict):
    """How to read a CSV export; set once under ``csv:`` and override per table."""

    separator: str = ","
    encoding: str = "utf8"
    decimal_comma: bool = False
    null_values: list[str] = Field(default_factory=list)

    @field_validator("separator")
    @classmethod
    def _one_character(cls, value: str) -> str:
        if len(value.encode()) != 1:
            raise ValueError(
                f"must be one single-byte character such as ',' ';' or '\\t', got {value!r}"
            )
        return value

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            name = codecs.lookup(value).name
        except LookupError:
            raise ValueError(
                f"unknown encoding {value!r}; use utf8 (the default), latin-1 or cp1252"
            ) from None
        return "utf8" if name == "utf-8" else name

    def merged(self, override: CsvOptions | None) -> CsvOptions:
        """These options with the ones ``override`` sets explicitly taking precedence."""
        if override is None:
            return self
        return self.model_copy(update={k: getattr(override, k) for k in override.model_fields_set})


class TableMapping(_Strict):
    """Where one contract table comes from in the export."""

    file: str  # path or glob relative to SOURCE_DIR, e.g. receipts/*.csv
    format: Format | None = None  # inferred from the file extension when left out
    csv: CsvOptions | None = None
    columns: dict[str, str]  # contract column -> source column
    constants: dict[str, Constant] = Field(default_factory=dict)  # contract column -> value
    datetime_format: dict[str, str] = Field(default_factory=dict)  # contract column -> strptime

    @field_validator("file")
    @classmethod
    def _relative(cls, value: str) -> str:
        if not value.strip() or PurePath(value).is_absolute():
            raise ValueError(f"must be a path or glob relative to SOURCE_DIR, got {value!r}")
        return value

    @property
    def file_format(self) -> Format | None:
        """The declared format, else the one the file extension implies (None if neither)."""
        return self.format or FORMAT_BY_SUFFIX.get(PurePath(self.file).suffix.lower())


class Mapping(_Strict):
    """A whole mapping file: CSV defaults and one entry per contract table the export holds."""

    csv: CsvOptions = CsvOptions()
    # How member numbers are read: "auto" keeps them as text when any has letters or leading
    # zeros (see nbo.data.keys), "string" always, "integer" never (a non-number is an error).
    member_keys: Literal["auto", "integer", "string"] = "auto"
    tables: dict[str, TableMapping]

    def csv_options(self, table: str) -> CsvOptions:
        """The CSV options in force for ``table`` (a ``.tsv`` file defaults to tabs)."""
        entry = self.tables[table]
        options = self.csv.merged(entry.csv)
        explicit = "separator" in self.csv.model_fields_set or (
            entry.csv is not None and "separator" in entry.csv.model_fields_set
        )
        if not explicit and PurePath(entry.file).suffix.lower() == ".tsv":
            options = options.model_copy(update={"separator": "\t"})
        return options


def parse_values(
    raw: pl.Expr, source: pl.DataType, column: Column, *, fmt: str | None, decimal_comma: bool
) -> pl.Expr:
    """Convert a source column to ``column``'s contract type; unparseable values become null."""
    want = column.dtype
    if source != pl.String:
        if want == pl.Boolean and source.is_numeric():  # 1/0 only: a 2 is a typo, not "true"
            return pl.when(raw == 1).then(True).when(raw == 0).then(False).otherwise(None)
        if isinstance(source, pl.Datetime) and source.time_zone is not None:
            raw = raw.dt.replace_time_zone(None)  # keep the wall-clock time the export shows
        return raw.cast(want, strict=False)
    text = raw.str.strip_chars()
    if isinstance(want, pl.Datetime | pl.Date):
        parsed = pl.coalesce(
            [
                text.str.strptime(pl.Datetime("us"), f, strict=False)
                for f in ((fmt,) if fmt else ISO_FORMATS)
            ]
        )
        if fmt and ("%z" in fmt or "%Z" in fmt):
            parsed = parsed.dt.replace_time_zone(None)  # offsets are converted to UTC
        return parsed.dt.date() if isinstance(want, pl.Date) else parsed
    if want == pl.Boolean:
        return text.str.to_lowercase().replace_strict(
            BOOLEANS, default=None, return_dtype=pl.Boolean
        )
    if want == pl.Float64 and decimal_comma:
        text = text.str.replace(",", ".", literal=True)
    return raw if want == pl.String else text.cast(want, strict=False)


def load_mapping(path: str | os.PathLike[str]) -> Mapping:
    """Read and check a mapping YAML; any problem is a :class:`MappingError` naming the key."""
    path = Path(path)
    data = read_yaml(path, MappingError, "mapping file")
    if not isinstance(data, dict):
        raise MappingError(f"{path}: expected a mapping with a 'tables:' key at the top level")
    try:
        mapping = Mapping.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(error) for error in exc.errors()]
        raise MappingError(_message(path, problems)) from None
    problems = _check_contract(mapping)
    if problems:
        raise MappingError(_message(path, problems))
    return mapping


def _message(path: Path, problems: list[str]) -> str:
    if len(problems) == 1:
        return f"{path}: {problems[0]}"
    return f"{path}: {len(problems)} problems\n" + "\n".join(f"  {p}" for p in problems)


def _describe(error: Any) -> str:
    loc = tuple(error["loc"])
    key = ".".join(str(part) for part in loc) or "(top level)"
    if error["type"] == "extra_forbidden":
        allowed = ", ".join(_model_at(loc[:-1]).model_fields)
        return f"{key}: unknown key (allowed here: {allowed})"
    return f"{key}: {error['msg']}"


def _model_at(parent: tuple[Any, ...]) -> type[BaseModel]:
    """The model class a key path points into (for listing its allowed keys)."""
    if parent and parent[-1] == "csv":
        return CsvOptions
    if len(parent) == 2 and parent[0] == "tables":
        return TableMapping
    return Mapping


def _check_contract(mapping: Mapping) -> list[str]:
    """Problems a schema cannot see: names and coverage against the data contract."""
    problems = [
        f"tables.{name}: unknown table (the contract has: {', '.join(TABLES)})"
        for name in mapping.tables
        if name not in TABLES
    ]
    missing = [s.name for s in TABLES.values() if s.required and s.name not in mapping.tables]
    if missing:
        problems.append(f"tables: missing required table(s) {', '.join(missing)}")
    for name, entry in mapping.tables.items():
        if name in TABLES:
            problems += _check_table(TABLES[name], entry, f"tables.{name}")
    return problems


def _check_table(spec: TableSpec, entry: TableMapping, key: str) -> list[str]:
    problems: list[str] = []
    valid = ", ".join(spec.schema)
    for section in ("columns", "constants", "datetime_format"):
        problems += [
            f"{key}.{section}.{column}: unknown column of {spec.name} (valid: {valid})"
            for column in getattr(entry, section)
            if column not in spec.schema
        ]
    both = sorted(set(entry.columns) & set(entry.constants))
    problems += [f"{key}.constants.{c}: also mapped under columns; keep one" for c in both]
    covered = set(entry.columns) | set(entry.constants)
    uncovered = [c for c in spec.required_columns if c not in covered]
    if uncovered:
        problems.append(
            f"{key}.columns: required column(s) {', '.join(uncovered)} not mapped "
            f"(map each to a source column, or give it under constants)"
        )
    for column, fmt in entry.datetime_format.items():
        if column not in spec.schema:
            continue
        if not isinstance(spec.schema[column], pl.Datetime | pl.Date):
            problems.append(f"{key}.datetime_format.{column}: {column} is not a date or timestamp")
        elif "%" not in fmt:
            problems.append(
                f"{key}.datetime_format.{column}: {fmt!r} is not a strptime format "
                "(e.g. '%Y-%m-%d %H:%M:%S' or '%d.%m.%Y')"
            )
    for column, value in entry.constants.items():
        if column in spec.schema and not _constant_ok(spec.column(column), value):
            problems.append(
                f"{key}.constants.{column}: {value!r} is not a valid {spec.schema[column]}"
            )
    if entry.file_format is None:
        problems.append(
            f"{key}.file: cannot tell the format from {entry.file!r}; add 'format: csv' or "
            "'format: parquet'"
        )
    return problems


def _constant_ok(column: Column, value: Constant) -> bool:
    if isinstance(value, str):
        expr = parse_values(pl.lit(value), pl.String(), column, fmt=None, decimal_comma=False)
    else:
        expr = pl.lit(value).cast(column.dtype, strict=False)
    try:
        return pl.select(expr).item() is not None
    except pl.exceptions.PolarsError:
        return False
