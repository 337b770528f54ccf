"""The synthetic club's counterfactual mode: randomized hold-outs and a truth the data follow."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import polars as pl
import pytest

from nbo.data._synth_catalogue import Catalogue
from nbo.data.io import ClubData
from nbo.data.synth import generate_club, read_truth, truth_dir
from nbo.data.validate import validate_dataset
from nbo.errors import DataContractError

TRUTH_COLUMNS = [
    "campaign_id",
    "offer_id",
    "member_id",
    "treated",
    "response_type",
    "p_buy_control",
    "p_buy_treated",
    "p_redeem_treated",
    "value",
    "coupon_cost",
]
CONTROL_SHARE = 0.25


def _digest(root: Path) -> str:
    """One hash over every Parquet file of a dataset (names and bytes, in name order)."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.parquet")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def club(tmp_path_factory: pytest.TempPathFactory) -> ClubData:
    """2,000 members over 30 weeks in three chunks: enough pairs to check the calibration."""
    root = tmp_path_factory.mktemp("cf") / "club"
    generate_club(
        root, members=2000, products=300, weeks=30, seed=4, chunk_members=800, workers=1,
        counterfactuals=True, control_share=CONTROL_SHARE,
    )  # fmt: skip
    return ClubData(root)


@pytest.fixture(scope="module")
def outcomes(club: ClubData) -> pl.DataFrame:
    """The truth per pair with what the receipts show: bought any of the offer's products in
    the campaign window, and redeemed the offer."""
    truth = read_truth(club.root).lazy()
    bought = (
        truth.select("campaign_id", "offer_id", "member_id")
        .join(club.offer_products, on="offer_id")
        .join(club.campaigns.select("campaign_id", "start_date", "end_date"), on="campaign_id")
        .join(
            club.transactions.select("member_id", "product_id", "ts"),
            on=["member_id", "product_id"],
        )
        .filter(pl.col("ts").dt.date().is_between(pl.col("start_date"), pl.col("end_date")))
        .select("campaign_id", "offer_id", "member_id", bought=pl.lit(True))
        .unique()
    )
    redeemed = club.redemptions.select("member_id", "offer_id", redeemed=pl.lit(True)).unique()
    keys = ["campaign_id", "offer_id", "member_id"]
    return (
        truth.join(bought, on=keys, how="left")
        .join(redeemed, on=["member_id", "offer_id"], how="left")
        .with_columns(pl.col("bought", "redeemed").fill_null(False))
        .collect()
    )


def test_dataset_is_valid_and_holds_controls_out(club: ClubData) -> None:
    report = validate_dataset(club.root)
    assert report.findings == [], report.render()
    audience = club.raw("campaign_audience").collect()
    assert audience.schema["treated"] == pl.Boolean
    share = audience.select((~pl.col("treated")).mean()).item()
    assert abs(share - CONTROL_SHARE) < 4 * math.sqrt(CONTROL_SHARE * 0.75 / audience.height)
    assert json.loads((club.root / "manifest.json").read_text())["control_share"] == CONTROL_SHARE


def test_campaigns_leave_enough_to_learn_from(club: ClubData) -> None:
    offers = club.offers.group_by("campaign_id").len().collect()
    assert offers.height >= 5 and offers["len"].min() >= 20  # type: ignore[operator]
    campaigns = club.campaigns.sort("start_date").collect()
    # one after another: no campaign's offers change what another measures
    assert (campaigns["start_date"][1:] > campaigns["end_date"][:-1]).all()


def test_truth_has_one_row_per_audience_pair(club: ClubData) -> None:
    truth = read_truth(club.root)
    assert truth.columns == TRUTH_COLUMNS
    pairs = (
        club.campaign_audience.join(club.offers.select("offer_id", "campaign_id"), on="campaign_id")
        .select("campaign_id", "offer_id", "member_id", "treated")
        .collect()
    )
    keys = ["campaign_id", "offer_id", "member_id", "treated"]
    assert truth.select(keys).sort(keys).equals(pairs.sort(keys))
    assert truth.select(
        pl.col("p_buy_control", "p_buy_treated", "p_redeem_treated").is_between(0, 1).all()
    ).row(0) == (True, True, True)
    assert (truth["p_redeem_treated"] <= truth["p_buy_treated"]).all()
    discount = truth.join(club.offers.collect(), on="offer_id")
    assert (discount["coupon_cost"] == discount["discount_value"]).all()
    assert (truth["value"] > 0).all()


def test_response_types_move_the_purchase_probability_their_way(club: ClubData) -> None:
    truth = read_truth(club.root).filter(pl.col("p_buy_control").is_between(0.001, 0.99))
    lift = truth.group_by("response_type").agg(
        (pl.col("p_buy_treated") - pl.col("p_buy_control")).min().alias("lo"),
        (pl.col("p_buy_treated") - pl.col("p_buy_control")).max().alias("hi"),
        pl.len(),
    )
    by_type = {row["response_type"]: row for row in lift.to_dicts()}
    assert set(by_type) == {"persuadable", "sure_thing", "lost_cause", "do_not_disturb"}
    assert by_type["persuadable"]["lo"] > 0
    assert by_type["do_not_disturb"]["hi"] < 0
    for indifferent in ("sure_thing", "lost_cause"):
        assert by_type[indifferent]["lo"] == by_type[indifferent]["hi"] == 0
    members = (
        read_truth(club.root)
        .group_by("member_id")
        .agg(pl.col("response_type").replace({"sure_thing": "i", "lost_cause": "i"}).n_unique())
    )
    assert (members["response_type"] == 1).all()  # drawn once per member


@pytest.mark.parametrize(("treated", "column"), [(False, "p_buy_control"), (True, "p_buy_treated")])
def test_purchases_follow_the_truth(outcomes: pl.DataFrame, treated: bool, column: str) -> None:
    """In every decile of the true probability, the share of pairs that bought matches it."""
    bins = (
        outcomes.filter(pl.col("treated") == treated)
        .group_by((pl.col(column) * 10).floor().clip(0, 9).alias("decile"))
        .agg(pl.col(column).mean().alias("p"), pl.col("bought").mean().alias("rate"), pl.len())
        .filter(pl.col("len") >= 50)
    )
    assert bins.height >= 6
    for row in bins.to_dicts():
        tolerance = 4 * math.sqrt(row["p"] * (1 - row["p"]) / row["len"]) + 0.005
        assert abs(row["rate"] - row["p"]) < tolerance, row


def test_controls_never_redeem_and_treated_redeem_as_the_truth_says(
    outcomes: pl.DataFrame,
) -> None:
    controls = outcomes.filter(~pl.col("treated"))
    assert controls.height > 1000 and not controls["redeemed"].any()
    treated = outcomes.filter(pl.col("treated"))
    redeemed, expected = treated.select(pl.col("redeemed", "p_redeem_treated").sum()).row(0)
    assert abs(redeemed - expected) < 4 * math.sqrt(expected)
    assert not treated.filter(pl.col("redeemed") & ~pl.col("bought")).height  # on a purchase


def test_truth_is_beside_the_dataset_not_in_it(club: ClubData) -> None:
    truth = truth_dir(club.root)
    assert truth == club.root.with_name("club.truth") and truth.is_dir()
    manifest = json.loads((truth / "manifest.json").read_text())
    assert manifest["margin_share"] > 0 and set(manifest["columns"]) == set(TRUTH_COLUMNS)
    inside = {p.name for p in club.root.rglob("*")}
    assert not inside & {"pairs", "club.truth", "p_buy_control"}
    for path in club.root.rglob("*.parquet"):
        assert "p_buy_control" not in pl.read_parquet_schema(path)


def test_same_arguments_same_bytes_and_workers_do_not_matter(tmp_path: Path) -> None:
    def make(name: str, workers: int) -> Path:
        root = tmp_path / name
        generate_club(
            root, members=90, products=60, weeks=8, seed=8, chunk_members=40, workers=workers,
            counterfactuals=True,
        )  # fmt: skip
        return root

    a, b, c = make("a", 1), make("b", 1), make("c", 2)
    assert _digest(a) == _digest(b) == _digest(c)
    assert _digest(truth_dir(a)) == _digest(truth_dir(b)) == _digest(truth_dir(c))
    assert (truth_dir(a) / "pairs" / "part-00002.parquet").is_file()


def test_default_mode_is_unchanged(tmp_path: Path) -> None:
    """Without counterfactuals the tables are the ones the generator wrote before the mode
    existed: this hash was taken from the code before it (commit e453f7c)."""
    root = tmp_path / "club"
    generate_club(root, members=300, products=120, weeks=20, seed=3, chunk_members=100, workers=1)
    assert _digest(root) == "84576af6fed654c74736b57bd38a9f8c04f6e3c807005e616bb56e29fdea451c"
    assert "treated" not in ClubData(root).raw("campaign_audience").collect_schema()
    assert not truth_dir(root).exists()
    with pytest.raises(DataContractError, match="no counterfactual truth"):
        read_truth(root)


def test_overwrite_replaces_or_removes_the_truth(tmp_path: Path) -> None:
    root = tmp_path / "club"
    generate_club(root, members=40, products=40, weeks=6, seed=1, counterfactuals=True)
    first = read_truth(root)
    generate_club(
        root, members=40, products=40, weeks=6, seed=2, counterfactuals=True, overwrite=True
    )
    assert not read_truth(root).equals(first)
    generate_club(root, members=40, products=40, weeks=6, seed=2, overwrite=True)
    assert not truth_dir(root).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["club"]


def test_failure_leaves_neither_dataset_nor_truth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fails(catalogue: Catalogue, *args: object, **kwargs: object) -> dict[str, pl.DataFrame]:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("nbo.data.synth.member_chunk", fails)
    with pytest.raises(RuntimeError, match="disk on fire"):
        generate_club(
            tmp_path / "club", members=20, products=20, weeks=2, seed=1, counterfactuals=True
        )
    assert list(tmp_path.iterdir()) == []


def test_invalid_control_share_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="control_share must be between 0 and 1"):
        generate_club(
            tmp_path / "c", members=5, products=20, weeks=1, seed=0, counterfactuals=True,
            control_share=1.0,
        )  # fmt: skip


def test_cli_writes_the_truth_beside_the_dataset(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from nbo.cli import app

    out = tmp_path / "club"
    args = ["data", "synth", "--members", "30", "--products", "40", "--weeks", "6"]
    result = CliRunner().invoke(
        app, [*args, "--counterfactuals", "--control-share", "0.5", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert read_truth(out)["treated"].n_unique() == 2
    bad = CliRunner().invoke(
        app, [*args, "--counterfactuals", "--control-share", "2", str(tmp_path / "x")]
    )
    assert bad.exit_code == 2 and "control_share" in bad.output and "Traceback" not in bad.output
