"""Point-in-time member × offer features on the tiny hand-made club."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from nbo.data.io import ClubData
from nbo.features.history import History
from nbo.features.offers import (
    FEATURES,
    MEMBER_FEATURES,
    PAIR_FEATURES,
    offer_table,
    response_features,
)
from tests.conftest import conform_frame, tiny_tables

AS_OF = datetime(2024, 3, 20)


def pairs_of(*rows: tuple[int, str]) -> pl.LazyFrame:
    return pl.LazyFrame(rows, schema={"member_id": pl.Int64, "offer_id": pl.String}, orient="row")


def features(root: Path, pairs: pl.LazyFrame, as_of: datetime = AS_OF) -> pl.DataFrame:
    return response_features(History.at(ClubData(root), as_of), pairs).collect()


def test_counts_purchases_of_the_offers_products(tiny_club: Path) -> None:
    # Member 1 bought product 10 (offer C1-a) in baskets 100 and 101 and redeemed C1-a.
    frame = features(tiny_club, pairs_of((1, "C1-a"), (2, "C1-a"), (1, "C1-b")))
    first = frame.row(0, named=True)
    assert first["mo_baskets"] == 2
    assert first["mo_spend"] == pytest.approx(3.0)
    assert first["mo_products"] == 1
    assert first["mo_basket_share"] == 1.0  # both of member 1's baskets had product 10
    assert first["mo_cat_baskets"] == 2  # MILK
    assert first["m_redemptions"] == 1
    assert first["m_redeem_rate"] == pytest.approx(0.5)  # one of C1's two offers
    assert first["o_campaign_days"] == 31
    assert first["o_campaign_offers"] == 2
    assert first["o_products"] == 1
    # Member 2 never bought product 10; member 1 never bought 12 (C1-b).
    assert frame.row(1, named=True)["mo_baskets"] == 0
    assert frame.row(2, named=True)["mo_baskets"] == 0
    assert frame.row(2, named=True)["mo_cat_baskets"] == 0


def test_keeps_input_order_duplicates_and_extra_columns(tiny_club: Path) -> None:
    pairs = pairs_of((2, "C1-b"), (1, "C1-a"), (2, "C1-b")).with_columns(label=pl.lit(1))
    frame = features(tiny_club, pairs)
    assert frame.select("member_id", "offer_id").rows() == [(2, "C1-b"), (1, "C1-a"), (2, "C1-b")]
    assert frame["label"].to_list() == [1, 1, 1]
    assert frame.row(0) == frame.row(2)
    assert frame.columns[-len(FEATURES) :] == list(FEATURES)
    assert frame.select(FEATURES).null_count().sum_horizontal().item() == 0


def test_unknown_member_gets_zeros(tiny_club: Path) -> None:
    frame = features(tiny_club, pairs_of((999, "C1-a")))
    assert all(frame[name].item() == 0.0 for name in (*MEMBER_FEATURES, *PAIR_FEATURES))
    assert frame["o_products"].item() == 1  # the offer is still described


def test_cut_is_strictly_before_as_of(tiny_club: Path) -> None:
    # Basket 101 (product 10) and the redemption are at 2024-03-11 10:05.
    cut = datetime(2024, 3, 11, 10, 5)
    frame = features(tiny_club, pairs_of((1, "C1-a")), as_of=cut)
    assert frame["mo_baskets"].item() == 1
    assert frame["m_redemptions"].item() == 0


def test_data_after_as_of_changes_no_feature(make_club: Callable[..., Path]) -> None:
    base = tiny_tables()
    later = datetime(2024, 3, 25, 9, 0)
    added = pl.DataFrame(
        {
            "member_id": [2, 2, 3],
            "basket_id": [900, 900, 901],
            "product_id": [10, 12, 10],
            "store_id": [7, 7, 8],
            "ts": [later, later, AS_OF],
            "quantity": [1.0, 2.0, 1.0],
            "sales_value": [1.5, 6.4, 1.5],
            "retail_disc": [0.0, 0.0, 0.0],
            "coupon_disc": [0.5, 0.0, 0.5],
            "coupon_match_disc": [0.0, 0.0, 0.0],
        }
    )
    after_cut = pl.col("ts") >= AS_OF
    transactions = pl.concat(
        [base["transactions"], conform_frame("transactions", added)]
    ).with_columns(  # and change the quantities and spend of everything at or after as_of
        pl.when(after_cut).then(pl.col("quantity") * 3).otherwise(pl.col("quantity")),
        pl.when(after_cut).then(pl.col("sales_value") * 3).otherwise(pl.col("sales_value")),
    )
    redemptions = pl.concat(
        [
            base["redemptions"],
            conform_frame(
                "redemptions",
                pl.DataFrame(
                    {"member_id": [2, 1], "offer_id": ["C1-a", "C1-b"], "ts": [later, AS_OF]}
                ),
            ),
        ]
    )
    pairs = pairs_of((1, "C1-a"), (1, "C1-b"), (2, "C1-a"), (2, "C1-b"), (3, "C1-a"))
    before = features(make_club(), pairs)
    after = features(make_club(transactions=transactions, redemptions=redemptions), pairs)
    assert before.equals(after)
    # ... while the same additions one day earlier do change them.
    earlier = features(
        make_club(transactions=transactions, redemptions=redemptions),
        pairs,
        as_of=datetime(2024, 3, 26),
    )
    assert not before.equals(earlier)


@pytest.mark.parametrize("as_of", [AS_OF, datetime(2024, 3, 11, 10, 5), datetime(2024, 4, 30)])
def test_a_batch_chunk_gets_the_same_features(tiny_club: Path, as_of: datetime) -> None:
    # issue 4: a batch scorer passes its chunk's receipt lines (read once, group counts on
    # arrays) and a club-wide offer table; every feature must be the one of the plain path
    history = History.at(ClubData(tiny_club), as_of)
    members = [1, 2, 3, 999]
    offers = history.club.offers.select("offer_id").collect()["offer_id"].to_list()
    pairs = pairs_of(*((m, o) for m in members for o in offers))
    lines = history.transactions.filter(pl.col("member_id").is_in(members)).collect()
    plain = response_features(history, pairs).collect()
    table = offer_table(history, history.club.offers.select("offer_id")).collect()
    batch = response_features(history, pairs, receipts=lines.lazy(), offers=table.lazy())
    assert_frame_equal(batch.collect(), plain, check_exact=False, rel_tol=1e-12)
