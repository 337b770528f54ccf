"""Import a club's own CSV or Parquet export into the data contract, driven by a column mapping.

``nbo data import files SOURCE_DIR --mapping mapping.yaml OUT_DIR``. Every file is scanned
lazily, every value parsed to its contract type, and the tables are written into the temporary
directory of an atomic write and validated there, so a failed import leaves ``OUT_DIR`` as it was.
A bad export becomes a :class:`~nbo.errors.DataContractError` naming the file, the column and
the offending lines; a bad mapping a :class:`~nbo.errors.MappingError` naming the key.
"""

from __future__ import annotations

import difflib
import os
import shutil
import tempfile
from pathlib import Path

import polars as pl

from nbo.data.contract import TABLES, TableSpec
from nbo.data.file_errors import (
    FILE,
    LINE,
    RAW,
    Origin,
    bad_values,
    encoding_error,
    read_error,
    render,
)
from nbo.data.io import atomic_dataset_dir, write_manifest, write_table
from nbo.data.keys import KEYS_FILE, is_integer_key, keyed_member_ids, keyed_spec
from nbo.data.mapping import CsvOptions, Mapping, TableMapping, load_mapping, parse_values
from nbo.data.report import ImportReport
from nbo.data.validate import validate_dataset
from nbo.errors import DataContractError

__all__ = ["SOURCE", "import_files", "load_mapping"]

SOURCE = "files"
PARQUET_MAGIC = b"PAR1"


def import_files(
    source_dir: str | os.PathLike[str],
    mapping_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    overwrite: bool = False,
) -> ImportReport:
    """Import the export in ``source_dir`` described by ``mapping_path`` into ``out_dir``."""
    mapping = load_mapping(mapping_path)
    source = Path(source_dir)
    if not source.is_dir():
        raise DataContractError(f"{source}: no such source directory")
    report = ImportReport(SOURCE)
    origins: dict[str, Origin] = {}
    with (
        atomic_dataset_dir(out_dir, overwrite=overwrite) as tmp,
        tempfile.TemporaryDirectory(prefix=f"{tmp.name}-transcoded-", dir=tmp.parent) as scratch,
    ):
        keyed = _string_keys(mapping, source, Path(scratch))
        completed: dict[str, tuple[pl.LazyFrame, list[str]]] = {}
        for name, entry in mapping.tables.items():
            spec = keyed_spec(TABLES[name]) if keyed else TABLES[name]
            frame, origins[name] = _read_table(spec, entry, mapping, source, Path(scratch))
            completed[name] = _complete(spec, entry, frame)
        frames, pairs = keyed_member_ids({name: frame for name, (frame, _) in completed.items()})
        if pairs is not None:
            write_table(pairs, tmp / KEYS_FILE)
            report.transform(
                "members", pairs.height, "member numbers kept as the club's keys (member_keys)"
            )
        for name, (_, defaults) in completed.items():
            frame = frames[name]
            try:
                rows = report.rows[name] = write_table(frame, tmp / f"{name}.parquet")
            except pl.exceptions.PolarsError as exc:
                raise read_error(origins[name], mapping.csv_options(name), exc) from None
            if defaults and rows:
                report.transform(
                    name, rows, f"not in the export, set to the default: {', '.join(defaults)}"
                )
            for column, count in origins[name].empty.items():
                default = TABLES[name].column(column).default
                report.transform(name, count, f"{column} empty in the export, set to {default}")
        validation = validate_dataset(tmp)
        if not validation.ok:
            findings = "\n".join(render(f, origins, tmp) for f in validation.errors)
            raise DataContractError(
                f"{source}: the export does not meet the data contract, so nothing was written "
                f"to {out_dir}:\n{findings}"
            )
        write_manifest(
            tmp,
            SOURCE,
            report.rows,
            mapping=str(mapping_path),
            source_dir=str(source),
            notes=[note.__dict__ for note in report.notes],
            warnings=[render(f, origins, tmp) for f in validation.warnings],
        )
    return report


def _read_table(
    spec: TableSpec, entry: TableMapping, mapping: Mapping, source: Path, scratch: Path
) -> tuple[pl.LazyFrame, Origin]:
    """The mapped columns of every file of one table, parsed, checked, with their origin."""
    key = str(source / entry.file)
    files = sorted(  # hidden files are skipped: they include nbo's own temporary directories
        p
        for p in source.glob(entry.file)
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(source).parts)
    )
    if not files:
        raise DataContractError(f"{key}: no file matches (tables.{spec.name}.file in the mapping)")
    options = mapping.csv_options(spec.name)
    csv = options if entry.file_format == "csv" else None
    parts = [_read_file(spec, entry, csv, path, i, scratch) for i, path in enumerate(files)]
    frame = pl.concat(parts, how="vertical")
    bad = {c: pl.col(RAW + c).is_not_null() & pl.col(c).is_null() for c in entry.columns}
    fillable = [c for c in entry.columns if spec.column(c).default is not None]
    first = 1 if csv is None else 2
    try:
        stats = (
            frame.group_by(FILE)
            .agg(
                pl.len().alias("_rows"),
                *[cond.sum().alias(c) for c, cond in bad.items()],
                *[pl.col(RAW + c).is_null().sum().alias(RAW + c) for c in fillable],
            )
            .collect(engine="streaming")
        )
    except pl.exceptions.PolarsError as exc:
        raise read_error(Origin(key, files, [], {}, first), options, exc) from None
    counts = dict(zip(stats[FILE].to_list(), stats["_rows"].to_list(), strict=True))
    rows = [counts.get(i, 0) for i in range(len(files))]
    empty = {c: int(stats[RAW + c].sum()) for c in fillable if stats[RAW + c].sum()}
    origin = Origin(key, files, rows, dict(entry.columns), first, empty)
    if not sum(rows) and spec.required:
        raise DataContractError(f"{key}: no rows (only a header); table {spec.name} needs data")
    problems = [
        bad_values(spec, entry, origin, frame, column, cond, int(stats[column].sum()))
        for column, cond in bad.items()
        if stats[column].sum()
    ]
    if problems:
        raise DataContractError("\n".join(problems))
    return frame, origin


def _read_file(
    spec: TableSpec,
    entry: TableMapping,
    options: CsvOptions | None,
    path: Path,
    index: int,
    scratch: Path,
) -> pl.LazyFrame:
    """One file as a LazyFrame of helper columns, parsed contract columns and their raw text."""
    with path.open("rb") as fh:
        magic = fh.read(4)
    if not magic:
        raise DataContractError(f"{path}: file is empty (0 bytes); table {spec.name} reads it")
    if options is not None and magic == PARQUET_MAGIC:
        raise DataContractError(f"{path}: is a Parquet file; set 'format: parquet' for {spec.name}")
    if options is None and magic != PARQUET_MAGIC:
        raise DataContractError(
            f"{path}: is not a Parquet file; for a CSV export set 'format: csv' for {spec.name}"
        )
    try:
        if options is None:
            scan = pl.scan_parquet(path, row_index_name=LINE, row_index_offset=1)
        else:
            scan = pl.scan_csv(
                _transcoded(path, options.encoding, scratch, index),
                separator=options.separator,
                infer_schema=False,
                null_values=options.null_values or None,
                row_index_name=LINE,
                row_index_offset=2,
            )
        schema = scan.collect_schema()
    except pl.exceptions.PolarsError as exc:
        origin = Origin(str(path), [path], [0], {}, 1 if options is None else 2)
        raise read_error(origin, options or CsvOptions(), exc) from None
    _check_columns(spec, entry, options, path, schema)
    fmt, comma = entry.datetime_format, options is not None and options.decimal_comma
    return scan.select(
        pl.lit(index, dtype=pl.UInt32).alias(FILE),
        pl.col(LINE),
        *[
            parse_values(
                pl.col(src), schema[src], spec.column(c), fmt=fmt.get(c), decimal_comma=comma
            ).alias(c)
            for c, src in entry.columns.items()
        ],
        *[pl.col(src).cast(pl.String).alias(RAW + c) for c, src in entry.columns.items()],
    )


def _check_columns(
    spec: TableSpec, entry: TableMapping, options: CsvOptions | None, path: Path, schema: pl.Schema
) -> None:
    found = [name for name in schema if name != LINE]
    missing = [src for src in entry.columns.values() if src not in schema]
    if not missing:
        return
    if any("\ufffd" in name for name in found):  # polars reads a header that is not UTF-8 lossily
        raise encoding_error(path) or DataContractError(f"{path}: header is not valid UTF-8")
    lines = [
        f"{path}: column {src!r} (tables.{spec.name}.columns) is not in the file"
        + "".join(f"; did you mean {m!r}?" for m in difflib.get_close_matches(src, found, n=1))
        for src in dict.fromkeys(missing)
    ]
    lines.append(f"  columns found: {', '.join(found) or 'none'}")
    if options is not None and len(found) == 1:
        seps = [s for s in (";", ",", "\t", "|") if s in found[0] and s != options.separator]
        if seps:
            lines.append(
                f"  only one column was found: is the separator {seps[0]!r}? "
                f"(set 'separator: {seps[0]!r}' under csv:)"
            )
    raise DataContractError("\n".join(lines))


def _string_keys(mapping: Mapping, source: Path, scratch: Path) -> bool:
    """Whether member numbers are kept as text: ``member_keys``, or for ``auto`` the members."""
    if mapping.member_keys != "auto":
        return mapping.member_keys == "string"
    entry = mapping.tables.get("members")
    if entry is None or "member_id" not in entry.columns:
        return False
    frame, _ = _read_table(keyed_spec(TABLES["members"]), entry, mapping, source, scratch)
    keys = frame.select(pl.col("member_id").str.strip_chars())
    plain = keys.select(is_integer_key(pl.col("member_id")).all()).collect().item()
    return plain is False


def _complete(
    spec: TableSpec, entry: TableMapping, frame: pl.LazyFrame
) -> tuple[pl.LazyFrame, list[str]]:
    """Contract columns only: mapped ones, constants, defaults of unmapped optional ones."""
    exprs: list[pl.Expr] = []
    defaults: list[str] = []
    for col in spec.columns:
        if col.name in entry.columns:  # an empty cell of a column with a default gets it
            mapped = pl.col(col.name)
            exprs.append(mapped if col.default is None else mapped.fill_null(col.default))
        elif col.name in entry.constants:
            value = entry.constants[col.name]
            lit = (
                parse_values(pl.lit(value), pl.String(), col, fmt=None, decimal_comma=False)
                if isinstance(value, str)
                else pl.lit(value).cast(col.dtype)
            )
            exprs.append(lit.alias(col.name))
        else:
            exprs.append(pl.lit(col.default, dtype=col.dtype).alias(col.name))
            if col.default is not None:
                defaults.append(f"{col.name}={col.default}")
    return frame.select(exprs), defaults


def _transcoded(path: Path, encoding: str, scratch: Path, index: int) -> Path:
    """``path`` itself if it is meant to be UTF-8, else a UTF-8 copy in ``scratch``."""
    if encoding in ("utf8", "utf8-lossy"):
        return path
    target = scratch / f"{index:06d}-{path.name}"
    try:
        with (
            path.open(encoding=encoding, newline="") as src,
            target.open("w", encoding="utf-8", newline="") as dst,
        ):
            shutil.copyfileobj(src, dst, 1 << 20)
    except UnicodeDecodeError as exc:
        raise DataContractError(
            f"{path}: not valid {encoding} ({exc.reason} at byte {exc.start})"
        ) from None
    return target
