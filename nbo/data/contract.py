"""The club data contract: the tables nbo reads, their columns, types and keys.

Every dataset nbo works with is a directory holding one Parquet file (or a folder of Parquet
part files) per table below. ``docs/data-contract.md`` is the prose version of this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

__all__ = [
    "CONTRACT_VERSION",
    "TABLES",
    "Column",
    "ForeignKey",
    "TableSpec",
    "table_spec",
]

CONTRACT_VERSION = 1

# Timestamps are naive local store time at microsecond precision; dates are calendar days.
TS = pl.Datetime("us")


@dataclass(frozen=True)
class Column:
    """One column of a contract table."""

    name: str
    dtype: pl.DataType
    required: bool = True  # must be present in the file
    nullable: bool = False
    description: str = ""
    default: float | bool | None = None  # value of an optional column that a file leaves out


@dataclass(frozen=True)
class ForeignKey:
    """``columns`` of this table must exist as ``ref_columns`` of table ``ref_table``."""

    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]


@dataclass(frozen=True)
class TableSpec:
    """A contract table: its columns, primary key and foreign keys."""

    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()
    description: str = ""
    required: bool = True  # the table must be in every dataset (campaign tables are optional)
    unique_rows: bool = False  # rows must be unique even without a declared key

    @property
    def schema(self) -> pl.Schema:
        """The polars schema of every column this table can have, in contract order."""
        return pl.Schema({c.name: c.dtype for c in self.columns})

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"table {self.name!r} has no column {name!r}")


_DEMOGRAPHICS = (
    "age_band",
    "income_band",
    "home_ownership",
    "marital_status",
    "household_size",
    "household_comp",
    "kids_count",
)

TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TableSpec(
            "members",
            (
                Column("member_id", pl.Int64(), description="club member (household) id"),
                Column(
                    "joined_at",
                    TS,
                    required=False,
                    nullable=True,
                    description="when the member joined the club, where known",
                ),
                *(
                    Column(
                        name,
                        pl.String(),
                        required=False,
                        nullable=True,
                        description="demographic attribute (banded), where known",
                    )
                    for name in _DEMOGRAPHICS
                ),
            ),
            primary_key=("member_id",),
            description="one row per club member",
        ),
        TableSpec(
            "products",
            (
                Column("product_id", pl.Int64()),
                Column("department", pl.String(), description="top of the category tree"),
                Column("category", pl.String(), description="second level of the tree"),
                Column("subcategory", pl.String(), required=False, nullable=True),
                Column("brand", pl.String(), required=False, nullable=True),
                Column("manufacturer_id", pl.Int64(), required=False, nullable=True),
                Column("package_size", pl.String(), required=False, nullable=True),
            ),
            primary_key=("product_id",),
            description="the product catalogue with its category hierarchy",
        ),
        TableSpec(
            "transactions",
            (
                Column("member_id", pl.Int64()),
                Column("basket_id", pl.Int64(), description="one receipt (shopping trip)"),
                Column("product_id", pl.Int64()),
                Column("store_id", pl.Int64()),
                Column("ts", TS, description="time of the receipt, local store time"),
                Column("quantity", pl.Float64(), description="units or weight bought, > 0"),
                Column("sales_value", pl.Float64(), description="amount paid for the line, >= 0"),
                Column(
                    "retail_disc",
                    pl.Float64(),
                    required=False,
                    default=0.0,
                    description="store (loyalty price) discount, >= 0",
                ),
                Column(
                    "coupon_disc",
                    pl.Float64(),
                    required=False,
                    default=0.0,
                    description="manufacturer coupon discount, >= 0",
                ),
                Column(
                    "coupon_match_disc",
                    pl.Float64(),
                    required=False,
                    default=0.0,
                    description="store match of a coupon discount, >= 0",
                ),
            ),
            foreign_keys=(
                ForeignKey(("member_id",), "members", ("member_id",)),
                ForeignKey(("product_id",), "products", ("product_id",)),
            ),
            description="receipt lines: one row per product per basket",
        ),
        TableSpec(
            "campaigns",
            (
                Column("campaign_id", pl.String()),
                Column("campaign_type", pl.String()),
                Column("start_date", pl.Date(), description="first valid day"),
                Column("end_date", pl.Date(), description="last valid day (inclusive)"),
                Column(
                    "targeted",
                    pl.Boolean(),
                    required=False,
                    default=True,
                    description="true: only members in campaign_audience; false: everyone",
                ),
                Column("name", pl.String(), required=False, nullable=True),
            ),
            primary_key=("campaign_id",),
            description="marketing campaigns, each a validity window for its offers",
            required=False,
        ),
        TableSpec(
            "campaign_audience",
            (
                Column("campaign_id", pl.String()),
                Column("member_id", pl.Int64()),
                Column(
                    "treated",
                    pl.Boolean(),
                    required=False,
                    default=True,
                    description="false: an eligible member held out at random as a control "
                    "(no offer); absent: everyone in the audience was treated",
                ),
            ),
            primary_key=("campaign_id", "member_id"),
            foreign_keys=(
                ForeignKey(("campaign_id",), "campaigns", ("campaign_id",)),
                ForeignKey(("member_id",), "members", ("member_id",)),
            ),
            description="which members a targeted campaign was sent to (or held out from)",
            required=False,
        ),
        TableSpec(
            "offers",
            (
                Column("offer_id", pl.String()),
                Column("campaign_id", pl.String()),
                Column(
                    "coupon_code",
                    pl.String(),
                    required=False,
                    nullable=True,
                    description="the coupon's code (UPC) as printed",
                ),
                Column(
                    "discount_value",
                    pl.Float64(),
                    required=False,
                    nullable=True,
                    description="face value of the discount per redemption, where known",
                ),
                Column("description", pl.String(), required=False, nullable=True),
            ),
            primary_key=("offer_id",),
            foreign_keys=(ForeignKey(("campaign_id",), "campaigns", ("campaign_id",)),),
            description="offers (coupons); one offer belongs to one campaign",
            required=False,
        ),
        TableSpec(
            "offer_products",
            (Column("offer_id", pl.String()), Column("product_id", pl.Int64())),
            primary_key=("offer_id", "product_id"),
            foreign_keys=(
                ForeignKey(("offer_id",), "offers", ("offer_id",)),
                ForeignKey(("product_id",), "products", ("product_id",)),
            ),
            description="the products an offer applies to",
            required=False,
        ),
        TableSpec(
            "redemptions",
            (
                Column("member_id", pl.Int64()),
                Column("offer_id", pl.String()),
                Column("ts", TS, description="when the coupon was redeemed"),
            ),
            foreign_keys=(
                ForeignKey(("member_id",), "members", ("member_id",)),
                ForeignKey(("offer_id",), "offers", ("offer_id",)),
            ),
            unique_rows=True,
            description="coupon redemptions",
            required=False,
        ),
    )
}


def table_spec(name: str) -> TableSpec:
    """The spec of contract table ``name`` (a ``KeyError`` naming the known tables otherwise)."""
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; the contract has {', '.join(TABLES)}") from None
