"""Reading and atomic writing of datasets."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from nbo.data.contract import TABLES
from nbo.data.io import ClubData, atomic_dataset_dir, write_dataset
from nbo.errors import DataContractError, DatasetExistsError
from tests.conftest import tiny_tables


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.iterdir())}


def test_scan_conforms_to_contract(tiny_club: Path) -> None:
    club = ClubData(tiny_club)
    for name, spec in TABLES.items():
        frame = club.scan(name).collect()
        assert frame.schema == spec.schema, name
    # optional columns left out of the file come back with their defaults
    members = club.members.collect()
    assert members["age_band"].null_count() == 3


def test_scan_keeps_extra_club_columns(tiny_club: Path) -> None:
    products = tiny_tables()["products"].with_columns(organic=pl.Series([True, False, False, True]))
    products.write_parquet(tiny_club / "products.parquet")
    frame = ClubData(tiny_club).products.collect()
    assert frame.columns[-1] == "organic"
    assert frame.columns[: len(TABLES["products"].columns)] == TABLES["products"].schema.names()


def test_absent_optional_table_scans_empty(tiny_club: Path) -> None:
    (tiny_club / "redemptions.parquet").unlink()
    frame = ClubData(tiny_club).redemptions.collect()
    assert frame.height == 0 and frame.schema == TABLES["redemptions"].schema


def test_missing_directory() -> None:
    with pytest.raises(DataContractError, match="no such dataset directory"):
        ClubData("/nonexistent/club")


def test_manifest_records_rows(tiny_club: Path) -> None:
    manifest = json.loads((tiny_club / "manifest.json").read_text())
    assert manifest["source"] == "test"
    assert manifest["rows"]["transactions"] == 5
    assert ClubData(tiny_club).manifest == manifest


def test_existing_dataset_is_not_overwritten_by_default(tiny_club: Path) -> None:
    before = snapshot(tiny_club)
    with pytest.raises(DatasetExistsError, match="--overwrite"):
        write_dataset(tiny_tables(), tiny_club, source="again")
    assert snapshot(tiny_club) == before


def test_failed_write_leaves_existing_dataset_untouched(tiny_club: Path) -> None:
    before = snapshot(tiny_club)
    with pytest.raises(RuntimeError), atomic_dataset_dir(tiny_club, overwrite=True) as tmp:
        (tmp / "members.parquet").write_bytes(b"half a file")
        raise RuntimeError("disk full")
    assert snapshot(tiny_club) == before
    assert [p.name for p in tiny_club.parent.iterdir() if p.name.startswith(".")] == []


def test_failed_write_leaves_no_output(tmp_path: Path) -> None:
    out = tmp_path / "new"
    with pytest.raises(KeyboardInterrupt), atomic_dataset_dir(out) as tmp:
        (tmp / "x").write_text("partial")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_overwrite_replaces_whole_dataset(tiny_club: Path) -> None:
    (tiny_club / "stale.txt").write_text("from an older import")
    write_dataset(tiny_tables(), tiny_club, source="again", overwrite=True)
    assert not (tiny_club / "stale.txt").exists()
    assert ClubData(tiny_club).manifest["source"] == "again"
    assert [p.name for p in tiny_club.parent.iterdir() if p.name.startswith(".")] == []
