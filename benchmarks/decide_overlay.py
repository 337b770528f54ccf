"""A benchmark overlay of a club: the same data plus 200 offers active on one day.

The synthetic generator makes ~13 targeted campaigns over its year, so only a handful of offers
are live on any day. The overlay symlinks every table of the club except the four offer tables
(campaigns, offers, offer_products, campaign_audience), which it writes as the club's own rows
plus 10 campaigns × 20 offers valid from ``at`` − 7 to ``at`` + 21 days: half the campaigns
untargeted (everyone), half targeted to a random 30 % of the members. Each offer covers 1–3 of
the 10 most-bought products (last 13 weeks) of one subcategory, the subcategories drawn in
proportion to their receipt lines.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from nbo.data.contract import CONTRACT_VERSION, TABLES, table_spec
from nbo.data.io import ClubData, atomic_dataset_dir, read_manifest, table_path, write_table

__all__ = ["OFFER_TABLES", "build_overlay", "last_receipt_day"]

OFFER_TABLES = ("campaigns", "offers", "offer_products", "campaign_audience")
CAMPAIGNS = 10
OFFERS_PER_CAMPAIGN = 20
AUDIENCE_SHARE = 0.3
TOP_PRODUCTS = 10  # an offer's products come from its subcategory's most-bought ones


def last_receipt_day(root: Path) -> date:
    """The day of the club's last receipt."""
    last = ClubData(root).transactions.select(pl.col("ts").max()).collect().item()
    return last.date()  # type: ignore[no-any-return]


def _popular(club: ClubData, at: date) -> pl.DataFrame:
    """product_id, subcategory, lines: receipt lines per product in the 13 weeks before ``at``."""
    end = datetime.combine(at, datetime.min.time())
    return (
        club.transactions.filter(pl.col("ts").is_between(end - timedelta(weeks=13), end, "left"))
        .group_by("product_id")
        .agg(lines=pl.len())
        .join(club.products.select("product_id", "subcategory"), on="product_id")
        .drop_nulls("subcategory")
        .sort("lines", "product_id", descending=[True, False])
        .collect(engine="streaming")
    )


def _offer_rows(club: ClubData, at: date, rng: np.random.Generator) -> dict[str, pl.DataFrame]:
    """The extra rows of the four offer tables, in contract schemas."""
    popular = _popular(club, at)
    per_subcategory = (
        popular.group_by("subcategory")
        .agg(pl.col("lines").sum(), products=pl.col("product_id").head(TOP_PRODUCTS))
        .sort("subcategory")
    )
    n_offers = CAMPAIGNS * OFFERS_PER_CAMPAIGN
    weights = per_subcategory["lines"].to_numpy().astype(np.float64)
    picked = rng.choice(
        per_subcategory.height, n_offers, replace=per_subcategory.height < n_offers,
        p=weights / weights.sum(),
    )  # fmt: skip
    types = sorted(club.campaigns.select("campaign_type").unique().collect()["campaign_type"])
    faces = club.offers.select("discount_value").drop_nulls().collect()["discount_value"]
    members = club.members.select("member_id").collect()["member_id"].to_numpy()

    campaigns: list[dict[str, object]] = []
    offers: list[dict[str, object]] = []
    offer_products: list[dict[str, object]] = []
    audience: list[pl.DataFrame] = []
    for c in range(CAMPAIGNS):
        campaign_id = f"BENCH{c + 1:02d}"
        targeted = c % 2 == 1
        campaigns.append({
            "campaign_id": campaign_id,
            "campaign_type": str(rng.choice(types)) if types else "mass",
            "start_date": at - timedelta(days=7),
            "end_date": at + timedelta(days=21),
            "targeted": targeted,
            "name": f"Benchmark campaign {c + 1} ({'30 % audience' if targeted else 'everyone'})",
        })  # fmt: skip
        if targeted:
            chosen = members[rng.random(members.size) < AUDIENCE_SHARE]
            audience.append(
                pl.DataFrame({"member_id": chosen}).select(
                    pl.lit(campaign_id).alias("campaign_id"), "member_id"
                )
            )
        for o in range(OFFERS_PER_CAMPAIGN):
            offer_id = f"{campaign_id}-{o + 1:02d}"
            row = per_subcategory.row(int(picked[c * OFFERS_PER_CAMPAIGN + o]), named=True)
            candidates = np.asarray(row["products"])
            size = min(candidates.size, int(rng.integers(1, 4)))
            products = rng.choice(candidates, size, replace=False)
            face = float(rng.choice(faces.to_numpy())) if faces.len() else 1.0
            offers.append({
                "offer_id": offer_id,
                "campaign_id": campaign_id,
                "coupon_code": str(rng.integers(50_000_000_000, 60_000_000_000)),
                "discount_value": face,
                "description": f"{face:.2f} off {row['subcategory'].lower()}",
            })  # fmt: skip
            offer_products.extend({"offer_id": offer_id, "product_id": int(p)} for p in products)

    def frame(name: str, rows: list[dict[str, object]]) -> pl.DataFrame:
        return pl.DataFrame(rows, schema=table_spec(name).schema)

    spec = table_spec("campaign_audience").schema
    return {
        "campaigns": frame("campaigns", campaigns),
        "offers": frame("offers", offers),
        "offer_products": frame("offer_products", offer_products),
        "campaign_audience": (
            pl.concat(audience).with_columns(treated=True).cast(spec)
            if audience
            else spec.to_frame()
        ),
    }


def build_overlay(club_dir: Path, out: Path, at: date, *, seed: int = 0) -> dict[str, int]:
    """Write the overlay of ``club_dir`` for ``at`` to ``out`` atomically; rows per offer table."""
    club = ClubData(club_dir)
    extra = _offer_rows(club, at, np.random.default_rng(seed))
    base_rows = read_manifest(club.root).get("rows", {})
    rows: dict[str, int] = {}
    with atomic_dataset_dir(out) as tmp:
        for name in TABLES:
            if name in OFFER_TABLES:
                schema = table_spec(name).schema
                own = club.scan(name).select(schema.names()).collect()
                rows[name] = write_table(pl.concat([own, extra[name]]), tmp / f"{name}.parquet")
                continue
            source = table_path(club.root, name)
            if source is not None:  # symlinked as it is: same file or part folder
                (tmp / source.name).symlink_to(source.resolve())
                if name in base_rows:
                    rows[name] = int(base_rows[name])
        manifest = {
            "contract_version": CONTRACT_VERSION,
            "source": f"benchmarks/decide_overlay.py over {club.root.resolve()}",
            "at": at.isoformat(),
            "extra_campaigns": CAMPAIGNS,
            "extra_offers": CAMPAIGNS * OFFERS_PER_CAMPAIGN,
            "seed": seed,
            "rows": rows,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return rows
