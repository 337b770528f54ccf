"""The synthetic club generator: valid, deterministic, atomic, and shaped like a real club."""

from __future__ import annotations

import json
import math
import tempfile
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbo.data import synth
from nbo.data._synth_baskets import member_chunk
from nbo.data._synth_catalogue import Catalogue
from nbo.data.contract import TABLES
from nbo.data.io import ClubData, table_path
from nbo.data.synth import generate_club
from nbo.data.validate import validate_dataset
from nbo.errors import DatasetExistsError

START = date(2024, 1, 1)


def _files(root: Path) -> dict[str, bytes]:
    """Every Parquet file of a dataset by relative path (the manifest has a creation time)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.parquet"))}


def _written_schema(name: str) -> pl.Schema:
    """The contract schema of a table as the default mode writes it (no ``treated``)."""
    return pl.Schema({c: t for c, t in TABLES[name].schema.items() if c != "treated"})


@pytest.fixture(scope="module")
def club(tmp_path_factory: pytest.TempPathFactory) -> ClubData:
    """A small club: a quarter of shopping, enough for staples, joiners and campaigns."""
    root = tmp_path_factory.mktemp("synth") / "club"
    generate_club(root, members=400, products=300, weeks=13, seed=11, workers=1)
    return ClubData(root)


@pytest.fixture(scope="module")
def campaign_club(tmp_path_factory: pytest.TempPathFactory) -> ClubData:
    """Enough members and coupons to compare redemption rates."""
    root = tmp_path_factory.mktemp("synth") / "club"
    generate_club(root, members=4000, products=400, weeks=26, seed=5, workers=1)
    return ClubData(root)


def test_writes_a_valid_dataset_with_contract_types(club: ClubData) -> None:
    report = validate_dataset(club.root)
    assert report.findings == [], report.render()
    for name in TABLES:
        assert table_path(club.root, name) is not None, name
        assert club.raw(name).collect_schema() == _written_schema(name), name
    # without counterfactuals everyone in an audience was treated: the column is left out
    assert "treated" not in club.raw("campaign_audience").collect_schema()
    assert club.campaign_audience.select(pl.col("treated").all()).collect().item()
    assert (club.root / "transactions" / "part-00000.parquet").is_file()


def test_manifest_records_source_seed_and_rows(club: ClubData) -> None:
    manifest = json.loads((club.root / "manifest.json").read_text())
    assert manifest["source"] == "synth"
    assert (manifest["seed"], manifest["members"], manifest["weeks"]) == (11, 400, 13)
    assert manifest["rows"]["members"] == 400
    assert manifest["rows"]["transactions"] == club.transactions.select(pl.len()).collect().item()


def test_same_seed_same_bytes_and_other_seed_other_data(tmp_path: Path) -> None:
    def club(name: str, seed: int) -> dict[str, int]:
        return generate_club(tmp_path / name, members=120, products=80, weeks=6, seed=seed)

    rows_a, rows_b, _ = club("a", 3), club("b", 3), club("c", 4)
    assert rows_a == rows_b
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    a, c = (pl.read_parquet(tmp_path / d / "transactions") for d in ("a", "c"))
    assert not a.equals(c)


def test_worker_processes_do_not_change_the_data(tmp_path: Path) -> None:
    for workers in (1, 2):
        generate_club(
            tmp_path / str(workers),
            members=90,
            products=60,
            weeks=4,
            seed=8,
            chunk_members=40,
            workers=workers,
        )
    files = _files(tmp_path / "1")
    assert "transactions/part-00002.parquet" in files
    assert files == _files(tmp_path / "2")


def test_chunks_report_progress(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    generate_club(
        tmp_path / "club",
        members=120,
        products=50,
        weeks=2,
        seed=1,
        chunk_members=50,
        workers=1,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls == [(50, 120), (100, 120), (120, 120)]


def test_every_basket_is_one_visit(club: ClubData) -> None:
    baskets = (
        club.transactions.group_by("basket_id")
        .agg(
            pl.col("member_id", "store_id", "ts").n_unique(),
            pl.len(),
            pl.col("product_id").n_unique(),
        )
        .collect()
    )
    assert baskets.select(pl.col("member_id", "store_id", "ts").max()).row(0) == (1, 1, 1)
    assert (baskets["len"] == baskets["product_id"]).all()  # one line per product per basket


def test_members_join_during_the_period_and_never_shop_before_joining(club: ClubData) -> None:
    start = datetime(START.year, START.month, START.day)
    members = club.members.collect()
    assert members["joined_at"].null_count() == 0
    assert (members["joined_at"] >= start).sum() > 0  # some joined during the period
    first = club.transactions.group_by("member_id").agg(pl.col("ts").min().alias("first_ts"))
    early = first.join(club.members, on="member_id").filter(
        pl.col("first_ts") <= pl.col("joined_at")
    )
    assert early.select(pl.len()).collect().item() == 0


def test_some_members_lapse(club: ClubData) -> None:
    end = club.transactions.select(pl.col("ts").max()).collect().item()
    visits = club.transactions.group_by("member_id").agg(
        pl.col("basket_id").n_unique().alias("visits"),
        pl.col("ts").min().alias("first"),
        pl.col("ts").max().alias("last"),
    )
    # a regular shopper (every few days) who has not been back for months has lapsed
    lapsed = visits.filter(
        (pl.col("visits") >= 4)
        & (end - pl.col("last") > 5 * (pl.col("last") - pl.col("first")) / (pl.col("visits") - 1))
        & (end - pl.col("last") > timedelta(days=28))
    )
    assert lapsed.select(pl.len()).collect().item() > 0


def test_staples_are_repurchased_at_regular_intervals(club: ClubData) -> None:
    gaps = (
        club.transactions.select("member_id", "product_id", "ts")
        .sort("member_id", "product_id", "ts")
        .with_columns(
            pl.col("ts").diff().over("member_id", "product_id").dt.total_days().alias("gap")
        )
        .drop_nulls("gap")
        .group_by("member_id", "product_id")
        .agg(pl.len().alias("gaps"), (pl.col("gap").std() / pl.col("gap").mean()).alias("cv"))
        .filter(pl.col("gaps") >= 5)
        .collect()
    )
    # a Poisson shopper has a coefficient of variation near 1; staples are far more regular
    assert gaps.height >= 100
    assert (gaps["cv"] < 0.35).mean() > 0.2  # type: ignore[operator]


def test_redemptions_follow_affinity(campaign_club: ClubData) -> None:
    club = campaign_club
    pairs = club.campaign_audience.join(
        club.offers.select("offer_id", "campaign_id"), on="campaign_id"
    )
    bought = (
        club.transactions.filter(pl.col("coupon_disc") == 0)
        .join(club.offer_products, on="product_id")
        .group_by("member_id", "offer_id")
        .agg(pl.col("basket_id").n_unique().alias("times"))
    )
    redeemed = (
        club.redemptions.select("member_id", "offer_id")
        .unique()
        .with_columns(redeemed=pl.lit(True))
    )
    rates = (
        pairs.join(bought, on=["member_id", "offer_id"], how="left")
        .join(redeemed, on=["member_id", "offer_id"], how="left")
        .group_by(high=pl.col("times").fill_null(0) >= 3)
        .agg(pl.len().alias("n"), pl.col("redeemed").fill_null(False).mean().alias("rate"))
        .collect()
    )
    high, low = (rates.filter(pl.col("high") == flag).row(0, named=True) for flag in (True, False))
    assert high["n"] >= 500 and low["n"] >= 500
    # two-proportion z test: members who buy the coupon's products redeem it far more often
    pooled = (high["rate"] * high["n"] + low["rate"] * low["n"]) / (high["n"] + low["n"])
    z = (high["rate"] - low["rate"]) / math.sqrt(
        pooled * (1 - pooled) * (1 / high["n"] + 1 / low["n"])
    )
    assert high["rate"] > 3 * low["rate"] and z > 5, rates


def test_redemptions_are_coupon_lines_in_window_by_audience(campaign_club: ClubData) -> None:
    club = campaign_club
    redemptions = club.redemptions.join(
        club.offers.select("offer_id", "campaign_id"), on="offer_id"
    )
    assert redemptions.select(pl.len()).collect().item() > 0
    outside_audience = redemptions.join(
        club.campaign_audience, on=["campaign_id", "member_id"], how="anti"
    )
    assert outside_audience.select(pl.len()).collect().item() == 0
    outside_window = redemptions.join(club.campaigns, on="campaign_id").filter(
        ~pl.col("ts").dt.date().is_between(pl.col("start_date"), pl.col("end_date"))
    )
    assert outside_window.select(pl.len()).collect().item() == 0
    coupon_lines = (
        club.transactions.filter(pl.col("coupon_disc") > 0)
        .join(club.offer_products, on="product_id")
        .select("member_id", "ts", "offer_id")
        .unique()
    )
    unmatched = redemptions.join(coupon_lines, on=["member_id", "ts", "offer_id"], how="anti")
    assert unmatched.select(pl.len()).collect().item() == 0


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    members=st.integers(1, 60),
    products=st.integers(synth.MIN_PRODUCTS, 200),
    weeks=st.integers(1, 6),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_small_club_is_valid(members: int, products: int, weeks: int, seed: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rows = generate_club(
            Path(tmp) / "club",
            members=members,
            products=products,
            weeks=weeks,
            seed=seed,
            chunk_members=25,
            workers=1,
        )
        report = validate_dataset(Path(tmp) / "club")
    assert report.findings == [], report.render()
    assert rows["members"] == members and rows["products"] == products
    assert rows["transactions"] >= members  # every member shops at least once


def test_one_member_one_week_is_valid(tmp_path: Path) -> None:
    rows = generate_club(tmp_path / "club", members=1, products=synth.MIN_PRODUCTS, weeks=1, seed=0)
    assert validate_dataset(tmp_path / "club").findings == []
    assert rows["members"] == 1 and rows["campaigns"] >= 1
    club = ClubData(tmp_path / "club")
    for name in ("campaign_audience", "redemptions"):
        assert club.raw(name).collect_schema() == _written_schema(name)


def test_failure_midway_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = 0

    def second_chunk_fails(
        catalogue: Catalogue, seed: int, chunk: int, first_member_id: int, n: int
    ) -> dict[str, pl.DataFrame]:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("disk on fire")
        return member_chunk(catalogue, seed, chunk, first_member_id, n)

    monkeypatch.setattr("nbo.data.synth.member_chunk", second_chunk_fails)
    with pytest.raises(RuntimeError, match="disk on fire"):
        generate_club(
            tmp_path / "club", members=30, products=20, weeks=2, seed=1, chunk_members=10, workers=1
        )
    assert calls == 2
    assert list(tmp_path.iterdir()) == []


def test_failure_keeps_the_existing_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generate_club(tmp_path / "club", members=5, products=20, weeks=1, seed=1)
    before = _files(tmp_path / "club")

    def fails(*args: object) -> dict[str, pl.DataFrame]:
        raise RuntimeError("interrupted")

    monkeypatch.setattr("nbo.data.synth.member_chunk", fails)
    with pytest.raises(RuntimeError):
        generate_club(tmp_path / "club", members=5, products=20, weeks=1, seed=2, overwrite=True)
    assert _files(tmp_path / "club") == before
    assert [p.name for p in tmp_path.iterdir()] == ["club"]


def test_refuses_to_overwrite_without_being_asked(tmp_path: Path) -> None:
    generate_club(tmp_path / "club", members=3, products=20, weeks=1, seed=1)
    with pytest.raises(DatasetExistsError):
        generate_club(tmp_path / "club", members=3, products=20, weeks=1, seed=1)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"members": 0}, "members must be at least 1"),
        ({"products": synth.MIN_PRODUCTS - 1}, f"products must be at least {synth.MIN_PRODUCTS}"),
        ({"weeks": 0}, "weeks must be between 1"),
        ({"weeks": synth.MAX_WEEKS + 1}, "weeks must be between 1"),
        ({"seed": -1}, "seed must be a non-negative integer"),
        ({"chunk_members": 0}, "chunk_members must be at least 1"),
        ({"weeks": synth.MAX_WEEKS}, "receipts would lie in the future"),
    ],
)
def test_invalid_arguments_raise_value_error(
    tmp_path: Path, arguments: dict[str, int], message: str
) -> None:
    args = {"members": 10, "products": 50, "weeks": 2, "seed": 0, "chunk_members": 10, **arguments}
    with pytest.raises(ValueError, match=message):
        generate_club(
            tmp_path / "club",
            members=args["members"],
            products=args["products"],
            weeks=args["weeks"],
            seed=args["seed"],
            chunk_members=args["chunk_members"],
        )
    assert not (tmp_path / "club").exists()


def test_seasonality_moves_visits_toward_december(tmp_path: Path) -> None:
    """A yearly cycle peaking before Christmas: December busier than June, the year as a whole
    about as busy; without it the two months are alike."""

    def visits_by_month(seasonality: float) -> tuple[float, float, int]:
        root = tmp_path / f"season{seasonality}"
        generate_club(root, members=600, products=200, weeks=52, seed=4, seasonality=seasonality)
        baskets = (
            ClubData(root)
            .transactions.select(pl.col("basket_id"), pl.col("ts").dt.month().alias("month"))
            .unique()
            .collect()
        )
        months = baskets["month"]
        return float((months == 12).sum()), float((months == 6).sum()), baskets.height

    december, june, total = visits_by_month(0.5)
    flat_december, flat_june, flat_total = visits_by_month(0.0)
    assert december > 2 * june
    assert 0.7 < flat_december / flat_june < 1.3
    assert total == pytest.approx(flat_total, rel=0.1)
    with pytest.raises(ValueError, match="seasonality"):
        generate_club(tmp_path / "bad", members=5, products=20, weeks=2, seed=0, seasonality=1.5)
