"""Randomized pairs from the club's audiences and the service's exposure: two sources, one shape,
each its own randomization."""

from __future__ import annotations

import polars as pl

from nbo.data.audience import offered_audience, randomized_audience

OFFERS = pl.LazyFrame(
    {"offer_id": ["A-1", "A-2", "B-1", "C-1"], "campaign_id": ["A", "A", "B", "C"]}
)


def _pairs(
    audience: pl.LazyFrame, exposure: pl.LazyFrame | None = None
) -> list[tuple[object, ...]]:
    return (
        randomized_audience(audience, OFFERS, exposure)
        .sort("campaign_id", "member_id", "offer_id")
        .collect()
        .rows()
    )


def test_club_audiences_with_both_arms_give_each_member_every_offer_of_the_campaign() -> None:
    audience = pl.LazyFrame(
        {
            "campaign_id": ["A", "A", "B", "B"],
            "member_id": [1, 2, 1, 2],
            "treated": [True, False, True, None],  # B: null reads as treated, no control
        }
    )
    assert _pairs(audience) == [
        (1, "A-1", "A", True, False),
        (1, "A-2", "A", True, False),
        (2, "A-1", "A", False, False),
        (2, "A-2", "A", False, False),
    ]
    assert offered_audience(audience).collect()["member_id"].to_list() == [1, 1, 2]


def test_the_service_s_exposure_is_randomized_on_its_own_and_the_club_s_rows_come_first() -> None:
    # the club held nobody out: its treated rows alone randomize nothing
    audience = pl.LazyFrame({"campaign_id": ["B", "C", "C"], "member_id": [1, 1, 2]})
    exposure = pl.LazyFrame(
        {
            "member_id": [3, 4, 5, 1],
            "offer_id": ["B-1", "B-1", "C-1", "A-1"],
            "campaign_id": ["B", "B", "C", "A"],
            "treated": [True, False, False, False],
        }
    )
    # B: both arms in the history; C: a history control beside the club's treated is no
    # experiment (the club chose its audience, the hash did not); A: controls only
    assert _pairs(audience, exposure) == [(3, "B-1", "B", True, True), (4, "B-1", "B", False, True)]
    randomized_club = pl.LazyFrame(
        {"campaign_id": ["B", "B"], "member_id": [3, 9], "treated": [True, False]}
    )
    both = _pairs(randomized_club, exposure)
    # member 3's pair is the club's (not counted twice); member 4 comes from the history
    assert both == [
        (3, "B-1", "B", True, False),
        (4, "B-1", "B", False, True),
        (9, "B-1", "B", False, False),
    ]
