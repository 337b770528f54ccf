"""Reading and writing club datasets: lazy scans in, atomic directory writes out."""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from nbo.data.contract import CONTRACT_VERSION, TABLES, TableSpec, table_spec
from nbo.data.keys import MemberKeys
from nbo.errors import DataContractError, DatasetExistsError

__all__ = [
    "MANIFEST",
    "ClubData",
    "atomic_dataset_dir",
    "read_manifest",
    "table_path",
    "write_dataset",
    "write_table",
]

MANIFEST = "manifest.json"


def table_path(root: Path, name: str) -> Path | None:
    """The file (``name.parquet``) or part folder (``name/``) of a table, or None if absent."""
    single = root / f"{name}.parquet"
    if single.is_file():
        return single
    folder = root / name
    if folder.is_dir() and any(folder.glob("*.parquet")):
        return folder
    return None


def _scan_source(path: Path) -> str:
    return str(path / "*.parquet") if path.is_dir() else str(path)


def conform(
    frame: pl.LazyFrame, spec: TableSpec, present: Mapping[str, pl.DataType]
) -> pl.LazyFrame:
    """Cast ``frame`` to the contract types and fill absent optional columns.

    Extra columns a club keeps beside the contract are carried along after the contract ones.
    """
    exprs: list[pl.Expr] = []
    for col in spec.columns:
        if col.name in present:
            exprs.append(pl.col(col.name).cast(col.dtype))
        elif not col.required:
            exprs.append(pl.lit(col.default, dtype=col.dtype).alias(col.name))
    extras = [pl.col(name) for name in present if name not in spec.schema]
    return frame.select(*exprs, *extras)


class ClubData:
    """A club dataset on disk: one Parquet file or part folder per contract table, scanned lazily.

    >>> club = ClubData("data/completejourney")      # doctest: +SKIP
    >>> club.transactions.filter(pl.col("ts") < as_of)  # a LazyFrame, nothing read yet
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataContractError(f"{self.root}: no such dataset directory")
        missing = [
            s.name for s in TABLES.values() if s.required and table_path(self.root, s.name) is None
        ]
        if missing:
            raise DataContractError(
                f"{self.root}: missing table(s) {', '.join(missing)} "
                f"(expected <table>.parquet or a <table>/ folder of .parquet parts)"
            )

    def path(self, name: str) -> Path | None:
        return table_path(self.root, name)

    def raw(self, name: str) -> pl.LazyFrame:
        """The table exactly as stored (no casts), for validation."""
        table_spec(name)
        path = self.path(name)
        if path is None:
            raise DataContractError(f"{self.root}: table {name!r} is not in this dataset")
        return pl.scan_parquet(_scan_source(path))

    def scan(self, name: str) -> pl.LazyFrame:
        """Table ``name`` conformed to the contract; an optional table that is absent is empty."""
        spec = table_spec(name)
        path = self.path(name)
        if path is None:
            return pl.LazyFrame(schema=spec.schema)
        frame = pl.scan_parquet(_scan_source(path))
        return conform(frame, spec, frame.collect_schema())

    @property
    def members(self) -> pl.LazyFrame:
        return self.scan("members")

    @property
    def products(self) -> pl.LazyFrame:
        return self.scan("products")

    @property
    def transactions(self) -> pl.LazyFrame:
        return self.scan("transactions")

    @property
    def campaigns(self) -> pl.LazyFrame:
        return self.scan("campaigns")

    @property
    def campaign_audience(self) -> pl.LazyFrame:
        return self.scan("campaign_audience")

    @property
    def offers(self) -> pl.LazyFrame:
        return self.scan("offers")

    @property
    def offer_products(self) -> pl.LazyFrame:
        return self.scan("offer_products")

    @property
    def redemptions(self) -> pl.LazyFrame:
        return self.scan("redemptions")

    @property
    def manifest(self) -> dict[str, Any]:
        return read_manifest(self.root)

    @functools.cached_property
    def keys(self) -> MemberKeys:
        """The club's own member keys (identity when its member numbers are integers)."""
        return MemberKeys.of(self.root)

    def __repr__(self) -> str:
        return f"ClubData({str(self.root)!r})"


def read_manifest(root: Path) -> dict[str, Any]:
    """The dataset's manifest (source, creation time, row counts), or {} if it has none."""
    path = root / MANIFEST
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataContractError(f"{path}: unreadable manifest ({exc})") from None
    return data if isinstance(data, dict) else {}


def write_table(frame: pl.DataFrame | pl.LazyFrame, path: Path) -> int:
    """Write one table as Parquet (zstd); returns the row count written."""
    if isinstance(frame, pl.LazyFrame):
        frame = frame.collect(engine="streaming")
    frame.write_parquet(path, compression="zstd", statistics=True)
    return frame.height


def write_manifest(root: Path, source: str, rows: Mapping[str, int], **extra: Any) -> None:
    manifest = {
        "contract_version": CONTRACT_VERSION,
        "source": source,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": dict(rows),
        **extra,
    }
    (root / MANIFEST).write_text(
        json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8"
    )


@contextmanager
def atomic_dataset_dir(
    out_dir: str | os.PathLike[str], *, overwrite: bool = False
) -> Iterator[Path]:
    """Yield a temporary directory beside ``out_dir`` that replaces it only if the block succeeds.

    A failure (or Ctrl-C) removes the temporary directory and leaves ``out_dir`` as it was. With
    ``overwrite`` an existing dataset is moved aside, the new one renamed in, then the old one
    deleted, so at no moment is there a half-written dataset at ``out_dir``.
    """
    out = Path(out_dir).resolve()
    if out.exists() and not out.is_dir():
        raise DatasetExistsError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise DatasetExistsError(f"{out}: already holds data; pass --overwrite to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the dataset gets ordinary permissions
    try:
        yield tmp
        _fsync_tree(tmp)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / "data")
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
        _fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            with open(os.path.join(dirpath, name), "rb") as fh:
                os.fsync(fh.fileno())
        _fsync_dir(Path(dirpath))


def write_dataset(
    tables: Mapping[str, pl.DataFrame | pl.LazyFrame],
    out_dir: str | os.PathLike[str],
    *,
    source: str,
    overwrite: bool = False,
    **manifest_extra: Any,
) -> dict[str, int]:
    """Write contract tables to ``out_dir`` atomically; returns rows written per table."""
    rows: dict[str, int] = {}
    with atomic_dataset_dir(out_dir, overwrite=overwrite) as tmp:
        for name, frame in tables.items():
            rows[name] = write_table(frame, tmp / f"{table_spec(name).name}.parquet")
        write_manifest(tmp, source, rows, **manifest_extra)
    return rows
