"""Validation: a valid club passes; each kind of bad input is named by file, column and row."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import polars as pl
import pytest

from nbo.data.validate import Finding, validate_dataset
from tests.conftest import tiny_tables

MakeClub = Callable[..., Path]


def only_error(root: Path) -> Finding:
    report = validate_dataset(root)
    assert len(report.errors) == 1, report.render()
    return report.errors[0]


def test_tiny_club_is_valid(tiny_club: Path) -> None:
    report = validate_dataset(tiny_club)
    assert report.ok, report.render()
    assert report.findings == []
    assert report.rows["transactions"] == 5


def test_missing_table_is_named(tiny_club: Path) -> None:
    (tiny_club / "products.parquet").unlink()
    error = only_error(tiny_club)
    assert "missing table(s) products" in error.message


def test_missing_column(make_club: MakeClub) -> None:
    root = make_club(transactions=tiny_tables()["transactions"].drop("quantity"))
    error = only_error(root)
    assert error.file.endswith("transactions.parquet")
    assert error.column == "quantity"
    assert "required column is missing" in error.message


def test_wrong_dtype(make_club: MakeClub) -> None:
    lines = tiny_tables()["transactions"].with_columns(pl.col("quantity").cast(pl.String))
    error = only_error(make_club(transactions=lines))
    assert (error.column, error.table) == ("quantity", "transactions")
    assert "has type String, expected Float64" in error.message


def test_narrower_integer_ids_are_accepted(make_club: MakeClub) -> None:
    members = tiny_tables()["members"].with_columns(pl.col("member_id").cast(pl.Int32))
    assert validate_dataset(make_club(members=members)).ok


def test_dangling_foreign_key_names_rows(make_club: MakeClub) -> None:
    lines = tiny_tables()["transactions"]
    stray = lines.head(1).with_columns(member_id=pl.lit(99, dtype=pl.Int64))
    error = only_error(make_club(transactions=pl.concat([lines, stray])))
    assert error.column == "member_id"
    assert "members.parquet" in error.message
    assert error.rows == 1
    assert error.examples == ({"_row": 6, "member_id": 99},)
    assert "row 6: member_id=99" in error.render()


def test_duplicate_primary_key(make_club: MakeClub) -> None:
    products = tiny_tables()["products"]
    error = only_error(make_club(products=pl.concat([products, products.tail(1)])))
    assert error.column == "product_id"
    assert "duplicate primary key" in error.message
    assert error.examples[0]["product_id"] == 13


def test_duplicate_redemption_rows(make_club: MakeClub) -> None:
    redemptions = tiny_tables()["redemptions"]
    error = only_error(make_club(redemptions=pl.concat([redemptions, redemptions])))
    assert error.message == "duplicate rows" and error.rows == 2


def test_campaign_dates_out_of_order(make_club: MakeClub) -> None:
    campaigns = tiny_tables()["campaigns"].with_columns(end_date=pl.lit(date(2024, 2, 1)))
    report = validate_dataset(make_club(campaigns=campaigns))
    messages = [f.message for f in report.errors]
    assert "start_date is after end_date" in messages
    # the redemption on 2024-03-11 now falls outside the window: a warning, not an error
    assert any("outside the campaign" in w.message for w in report.warnings)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("quantity", -1.0, "quantity must be > 0"),
        ("sales_value", -2.0, "sales_value must be >= 0"),
        ("retail_disc", -0.5, "retail_disc must be >= 0"),
        ("sales_value", float("nan"), "not a finite number"),
    ],
)
def test_value_sanity(make_club: MakeClub, column: str, value: float, message: str) -> None:
    lines = tiny_tables()["transactions"].with_columns(
        pl.when(pl.col("basket_id") == 200).then(value).otherwise(pl.col(column)).alias(column)
    )
    error = only_error(make_club(transactions=lines))
    assert error.column == column and message in error.message
    assert error.examples[0]["_row"] == 4


def test_null_in_required_column(make_club: MakeClub) -> None:
    lines = tiny_tables()["transactions"].with_columns(
        pl.when(pl.col("basket_id") == 300)
        .then(None)
        .otherwise(pl.col("store_id"))
        .alias("store_id")
    )
    error = only_error(make_club(transactions=lines))
    assert (error.column, error.message, error.rows) == ("store_id", "null values", 1)


def test_timestamp_out_of_range(make_club: MakeClub) -> None:
    lines = tiny_tables()["transactions"].with_columns(
        pl.when(pl.col("basket_id") == 300)
        .then(datetime(1970, 1, 1))
        .otherwise(pl.col("ts"))
        .alias("ts")
    )
    assert "timestamp outside" in only_error(make_club(transactions=lines)).message


def test_empty_required_table(make_club: MakeClub) -> None:
    error = only_error(make_club(transactions=tiny_tables()["transactions"].clear()))
    assert error.message == "table is empty"


def test_empty_file_is_not_a_traceback(tiny_club: Path) -> None:
    (tiny_club / "offers.parquet").write_bytes(b"")
    report = validate_dataset(tiny_club)
    assert not report.ok
    assert any(
        "cannot be read as Parquet" in f.message and f.table == "offers" for f in report.errors
    )


def test_receipts_before_joining_warns(make_club: MakeClub) -> None:
    members = tiny_tables()["members"].with_columns(joined_at=pl.lit(datetime(2024, 3, 10)))
    report = validate_dataset(make_club(members=members))
    assert report.ok
    assert [w.column for w in report.warnings] == ["joined_at"]


def test_part_folder_tables(tiny_club: Path) -> None:
    lines = pl.read_parquet(tiny_club / "transactions.parquet")
    (tiny_club / "transactions.parquet").unlink()
    (tiny_club / "transactions").mkdir()
    lines.head(2).write_parquet(tiny_club / "transactions" / "part-00000.parquet")
    lines.tail(3).write_parquet(tiny_club / "transactions" / "part-00001.parquet")
    report = validate_dataset(tiny_club)
    assert report.ok and report.rows["transactions"] == 5


def test_child_table_without_its_parent(tiny_club: Path) -> None:
    (tiny_club / "offers.parquet").unlink()
    report = validate_dataset(tiny_club)
    tables = sorted(f.table for f in report.errors)
    assert tables == ["offer_products", "redemptions"], report.render()
    assert all("'offers', which is not in the dataset" in f.message for f in report.errors)


def test_campaign_tables_are_optional(tiny_club: Path) -> None:
    for name in ("redemptions", "offer_products", "offers", "campaign_audience", "campaigns"):
        (tiny_club / f"{name}.parquet").unlink()
    assert validate_dataset(tiny_club).ok
