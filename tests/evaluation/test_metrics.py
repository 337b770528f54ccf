"""Offline metrics: per-member ranking scores and the bootstrap interval of a ratio."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from nbo.evaluation.metrics import per_member_ranking, ranking_metrics, ratio_interval


def _recs(rows: list[tuple[int, int, int]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["member_id", "product_id", "rank"], orient="row")


def _truth(rows: list[tuple[int, int]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["member_id", "product_id"], orient="row")


def test_per_member_scores_count_hits_against_the_truth_and_zero_for_no_recommendation() -> None:
    recs = _recs([(1, 10, 1), (1, 11, 2), (1, 12, 3), (2, 20, 1)])
    truth = _truth([(1, 11), (1, 99), (2, 21), (3, 30)])
    per = per_member_ranking(recs, truth, k=10)
    assert per["member_id"].to_list() == [1, 2, 3]
    assert per["recall"].to_list() == [0.5, 0.0, 0.0]
    # member 1: one hit at rank 2 of two relevant products
    ideal = 1.0 + 1.0 / math.log2(3)
    assert per["ndcg"][0] == pytest.approx((1.0 / math.log2(3)) / ideal)
    metrics = ranking_metrics(recs, truth, k=10)
    assert metrics["recall@10"] == pytest.approx(0.5 / 3)
    assert metrics["members"] == 3.0


def test_recommendations_past_k_do_not_count() -> None:
    recs = _recs([(1, 10, 1), (1, 11, 2)])
    truth = _truth([(1, 11)])
    assert per_member_ranking(recs, truth, k=1)["recall"].to_list() == [0.0]
    assert per_member_ranking(recs, truth, k=2)["recall"].to_list() == [1.0]


def test_ratio_interval_brackets_the_ratio_and_narrows_with_more_members() -> None:
    rng = np.random.default_rng(1)
    den = rng.gamma(2.0, 1.0, size=4000)
    num = 1.1 * den + rng.normal(0.0, 0.5, size=4000)
    ratio = num.mean() / den.mean()
    low, high = ratio_interval(num, den, draws=500)
    assert low < ratio < high
    small_low, small_high = ratio_interval(num[:400], den[:400], draws=500)
    assert high - low < small_high - small_low
    # the pairing matters: the same values in an unrelated order spread much wider
    shuffled_low, shuffled_high = ratio_interval(rng.permutation(num), den, draws=500)
    assert high - low < (shuffled_high - shuffled_low) / 2


def test_ratio_interval_is_seeded() -> None:
    rng = np.random.default_rng(2)
    num, den = rng.random(50), rng.random(50) + 0.1
    assert ratio_interval(num, den, seed=3) == ratio_interval(num, den, seed=3)
    assert ratio_interval(num, den, seed=3) != ratio_interval(num, den, seed=4)


def test_ratio_interval_of_no_members_or_no_denominator_is_nan() -> None:
    assert all(math.isnan(v) for v in ratio_interval(np.zeros(0), np.zeros(0)))
    assert all(math.isnan(v) for v in ratio_interval(np.ones(5), np.zeros(5)))
    with pytest.raises(ValueError, match="one value per member"):
        ratio_interval(np.ones(3), np.ones(4))
