"""Visit timing: behaviour on a club with known rhythms, point-in-time safety, persistence."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from sklearn.exceptions import NotFittedError

from nbo.data.completejourney import import_completejourney
from nbo.data.io import ClubData, write_dataset
from nbo.evaluation.metrics import mae
from nbo.evaluation.visit_scores import (
    reliability,
    timing_evaluation,
    timing_forecast,
    timing_scores,
)
from nbo.features.history import History
from nbo.features.visits import member_visits, visits_between
from nbo.models.btyd import BetaGeoNBD, rfm_summary
from nbo.models.timing import P_VISIT_DAYS, VisitTiming
from nbo.models.visit_counts import FeatureBins
from nbo.models.visit_windows import members_at
from tests.conftest import LINE_COLUMNS, conform_frame, tiny_tables

AS_OF = date(2024, 6, 5)  # a Wednesday
NEXT_MONDAY = date(2024, 6, 10)
START = datetime(2023, 12, 4)  # a Monday, 26 weeks before AS_OF
MONDAY_SHOPPER, LAPSED, ONE_VISIT, NEVER = 1, 2, 3, 4
STEADY = range(10, 50)

Visit = tuple[int, datetime]


def rhythm_visits(seed: int = 0) -> list[Visit]:
    """Known shoppers plus 40 steady ones; receipts run 8 weeks past AS_OF."""
    rng = np.random.default_rng(seed)
    end = datetime.combine(AS_OF, datetime.min.time()) + timedelta(weeks=8)
    last_monday = datetime(2024, 6, 3, 10)
    visits = [  # Mondays ~10:00 for the 20 weeks up to AS_OF, and on after it
        (MONDAY_SHOPPER, last_monday + timedelta(weeks=w, minutes=int(rng.integers(0, 30))))
        for w in range(-19, 8)
    ]
    stopped = datetime.combine(AS_OF, datetime.min.time()) - timedelta(weeks=10)
    visits += [(LAPSED, START + timedelta(days=d, hours=17)) for d in range(0, 200, 3)]
    visits = [(m, ts) for m, ts in visits if m != LAPSED or ts < stopped]
    visits.append((ONE_VISIT, datetime(2024, 5, 20, 12)))
    for member in STEADY:
        period = int(rng.integers(2, 10))
        hour = int(rng.integers(8, 21))
        for day in range(int(rng.integers(0, period)), (end - START).days, period):
            visits.append((member, START + timedelta(days=day, hours=hour)))
    return visits


def write_club(
    root: Path,
    visits: list[Visit],
    extra_members: tuple[int, ...] = (),
    unknown_join: tuple[int, ...] = (),
) -> Path:
    """One receipt line per visit; members joined before START unless noted."""
    transactions = pl.DataFrame(
        [
            (member, basket, 10, 7, ts, 1.0, 2.0)
            for basket, (member, ts) in enumerate(sorted(visits, key=lambda v: (v[1], v[0])))
        ],
        schema=LINE_COLUMNS,
        orient="row",
    )
    ids = [MONDAY_SHOPPER, LAPSED, ONE_VISIT, NEVER, *STEADY, *extra_members]
    joined = {ONE_VISIT: datetime(2024, 5, 1), NEVER: datetime(2024, 5, 15)}
    joined |= {m: datetime(2024, 7, 1) for m in extra_members}  # join after AS_OF
    joined_at = [None if m in unknown_join else joined.get(m, datetime(2023, 11, 1)) for m in ids]
    members = pl.DataFrame(
        {"member_id": ids, "joined_at": joined_at},
        schema={"member_id": pl.Int64, "joined_at": pl.Datetime("us")},
    )
    tables = tiny_tables() | {
        "members": conform_frame("members", members),
        "transactions": conform_frame("transactions", transactions),
    }
    write_dataset(tables, root, source="test")
    return root


@pytest.fixture(scope="module")
def club(tmp_path_factory: pytest.TempPathFactory) -> ClubData:
    return ClubData(write_club(tmp_path_factory.mktemp("timing") / "club", rhythm_visits()))


@pytest.fixture(scope="module")
def model(club: ClubData) -> VisitTiming:
    return VisitTiming(n_threads=1).fit(History.at(club, AS_OF))


@pytest.fixture(scope="module")
def predictions(club: ClubData, model: VisitTiming) -> pl.DataFrame:
    return model.predict(History.at(club, AS_OF))


def row(predictions: pl.DataFrame, member_id: int) -> dict[str, Any]:
    return predictions.filter(pl.col("member_id") == member_id).row(0, named=True)


def test_output_schema_and_one_row_per_member(club: ClubData, predictions: pl.DataFrame) -> None:
    assert predictions.schema == pl.Schema(
        {
            "member_id": pl.Int64(),
            "expected_visits": pl.Float64(),
            "likely_visits": pl.Int32(),
            "p_visit": pl.List(pl.Float64()),
            "next_visit_date": pl.Date(),
            "preferred_weekday": pl.Int8(),
            "preferred_hour": pl.Int8(),
            "days_since_last_visit": pl.Int32(),
            "usual_gap_days": pl.Float64(),
            "lapsing": pl.Boolean(),
            "cold_start": pl.Boolean(),
        }
    )
    members = History.at(club, AS_OF).members.select("member_id").collect()
    assert predictions["member_id"].to_list() == sorted(members["member_id"].to_list())
    assert (predictions["p_visit"].list.len() == P_VISIT_DAYS).all()
    p = np.stack(predictions["p_visit"].to_list())
    assert ((p >= 0) & (p <= 1)).all()
    nulls = predictions.select(pl.all().exclude("days_since_last_visit").null_count())
    assert nulls.sum_horizontal().item() == 0


def test_monday_shopper(predictions: pl.DataFrame) -> None:
    monday = row(predictions, MONDAY_SHOPPER)
    assert monday["preferred_weekday"] == 0
    assert monday["preferred_hour"] == 10
    assert monday["next_visit_date"] == NEXT_MONDAY
    assert monday["days_since_last_visit"] == 2
    assert 3.2 <= monday["expected_visits"] <= 4.8
    assert monday["likely_visits"] == 4
    p = np.asarray(monday["p_visit"])
    mondays = [d for d in range(P_VISIT_DAYS) if (AS_OF + timedelta(d)).weekday() == 0]
    assert mondays == [5, 12]
    assert p[mondays].min() > 2 * np.delete(p, mondays).max()
    assert not monday["lapsing"] and not monday["cold_start"]


def test_lapsed_member_is_lapsing(predictions: pl.DataFrame) -> None:
    lapsed = row(predictions, LAPSED)
    assert lapsed["lapsing"] and not lapsed["cold_start"]
    assert lapsed["usual_gap_days"] == 3.0
    assert lapsed["days_since_last_visit"] >= 70
    assert lapsed["expected_visits"] < row(predictions, MONDAY_SHOPPER)["expected_visits"]
    steady = predictions.filter(pl.col("member_id").is_in(list(STEADY)))
    assert not steady["lapsing"].any()


def test_cold_start_members_get_club_answers(club: ClubData, predictions: pl.DataFrame) -> None:
    one, never = row(predictions, ONE_VISIT), row(predictions, NEVER)
    assert one["cold_start"] and never["cold_start"]
    assert predictions["cold_start"].sum() == 2
    assert never["days_since_last_visit"] is None and not never["lapsing"]
    assert one["days_since_last_visit"] == (AS_OF - date(2024, 5, 20)).days
    receipts = History.at(club, AS_OF).transactions.collect()
    by_hour = receipts.group_by(pl.col("ts").dt.hour()).len()
    by_hour = by_hour.sort("len", "ts", descending=[True, False])
    by_weekday = receipts.group_by(pl.col("ts").dt.weekday() - 1).len().sort("len", descending=True)
    for member in (one, never):
        assert member["expected_visits"] > 0
        assert member["preferred_hour"] == by_hour["ts"][0]
        assert member["preferred_weekday"] == by_weekday["ts"][0]


def test_horizon_scales_expected_visits(club: ClubData, model: VisitTiming) -> None:
    history = History.at(club, AS_OF)
    four_weeks, two_weeks = model.predict(history), model.predict(history, horizon_days=14)
    ratio = two_weeks["expected_visits"] / four_weeks["expected_visits"]
    assert np.allclose(ratio.to_numpy(), 0.5)
    assert_frame_equal(two_weeks.select("p_visit"), four_weeks.select("p_visit"))
    # off the trained horizon the median comes from the mean (a negative binomial)
    assert row(two_weeks, MONDAY_SHOPPER)["likely_visits"] == 2


def test_median_model_counts_the_steady_shoppers(club: ClubData, predictions: pl.DataFrame) -> None:
    """likely_visits (the median model) is nearer the next 28 days than the last 28 days are."""
    visits = member_visits(club.transactions, hours=False).collect().lazy()
    frame = predictions.filter(pl.col("member_id").is_in(list(STEADY)))
    for name, start in (("truth", AS_OF), ("last", AS_OF - timedelta(days=28))):
        counts = visits_between(visits, start, 28).collect().rename({"visits": name})
        frame = frame.join(counts, on="member_id", how="left").with_columns(
            pl.col(name).fill_null(0)
        )
    assert mae(frame["truth"], frame["likely_visits"]) <= mae(frame["truth"], frame["last"])
    assert mae(frame["truth"], frame["likely_visits"]) < 1.0


def test_feature_bins_keep_order_and_missing_values() -> None:
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.normal(size=2_000), rng.integers(0, 5, 2_000).astype(float)])
    x[::7, 0] = np.nan
    bins = FeatureBins(max_bins=32).fit(x)
    binned = bins.transform(x)
    assert np.array_equal(np.isnan(binned), np.isnan(x))
    assert len(np.unique(binned[~np.isnan(binned[:, 0]), 0])) <= 32
    assert np.array_equal(np.unique(binned[:, 1]), np.arange(5))  # few values: one bin each
    order = np.argsort(x[:, 0])[: (~np.isnan(x[:, 0])).sum()]
    assert (np.diff(binned[order, 0]) >= 0).all()  # monotone in the value


def test_nothing_after_as_of_changes_anything(club: ClubData, tmp_path: Path) -> None:
    """Receipts after as_of (new, moved, or from members who join later) change nothing."""
    visits = rhythm_visits()
    later = datetime.combine(AS_OF, datetime.min.time())
    changed = [(m, ts + timedelta(days=1, hours=3)) if ts >= later else (m, ts) for m, ts in visits]
    changed += [(MONDAY_SHOPPER, later + timedelta(hours=h)) for h in range(8, 20)]
    changed += [(LAPSED, later + timedelta(days=2)), (NEVER, later + timedelta(days=1))]
    changed += [(99, later + timedelta(days=30))]
    other = ClubData(write_club(tmp_path / "changed", changed, extra_members=(99,)))
    for data in (club, other):
        assert data.transactions.filter(pl.col("ts") >= later).select(pl.len()).collect().item()
    results = [
        VisitTiming(n_threads=1).fit(History.at(c, AS_OF)).predict(History.at(c, AS_OF))
        for c in (club, other)
    ]
    assert_frame_equal(results[0], results[1], check_exact=True)


def test_members_at_each_cutoff_are_historys(tmp_path: Path) -> None:
    """Training members per cutoff, from one table, are History.at(club, cutoff).members."""
    unknown = (ONE_VISIT, *STEADY[:20])  # join date unknown: members once they shop
    club = ClubData(write_club(tmp_path / "club", rhythm_visits(), unknown_join=unknown))
    history = History.at(club, AS_OF)
    first_days = (
        member_visits(history.transactions, hours=False)
        .group_by("member_id")
        .agg(pl.col("day").min().alias("first_day"))
    )
    known = (
        history.members.select("member_id", "joined_at")
        .join(first_days, on="member_id", how="left")
        .collect()
    )
    sizes = set()
    for cutoff in (START.date(), date(2023, 12, 6), date(2024, 5, 8), date(2024, 5, 21)):
        expected = History.at(club, cutoff).members.collect()["member_id"].sort()
        got = members_at(known, cutoff).collect()["member_id"].sort()
        assert got.to_list() == expected.to_list()
        sizes.add(len(got))
    assert len(sizes) == 4  # the cutoffs tell apart members who joined or shopped in between


def test_deterministic_and_picklable(
    club: ClubData, model: VisitTiming, predictions: pl.DataFrame, tmp_path: Path
) -> None:
    history = History.at(club, AS_OF)
    again = VisitTiming(n_threads=1).fit(history).predict(history)
    assert_frame_equal(again, predictions, check_exact=True)
    joblib.dump(model, tmp_path / "timing.joblib")
    loaded = joblib.load(tmp_path / "timing.joblib")
    assert_frame_equal(loaded.predict(history), predictions, check_exact=True)


def test_fit_learns_from_earlier_windows_only(model: VisitTiming) -> None:
    """Weekly cutoffs whose labels end by as_of, none before the club's first receipt."""
    latest = AS_OF - timedelta(days=28)
    assert model.cutoffs_ == [latest - timedelta(weeks=k) for k in range(23)]
    assert model.cutoffs_[-1] - timedelta(weeks=1) <= START.date() < model.cutoffs_[-1]
    assert model.cutoffs_[0] + timedelta(days=model.horizon_days) <= AS_OF
    assert model.n_train_examples_ > 0
    assert 1 <= model.n_iter_ <= model.max_iter and 1 <= model.n_iter_median_ <= model.max_iter


def test_member_sample_is_deterministic(club: ClubData) -> None:
    history = History.at(club, AS_OF)
    fits = [
        VisitTiming(max_train_members=15, random_state=3, n_threads=1).fit(history) for _ in "ab"
    ]
    assert fits[0].n_train_examples_ == fits[1].n_train_examples_ <= 15 * len(fits[0].cutoffs_)
    assert_frame_equal(fits[0].predict(history), fits[1].predict(history), check_exact=True)


def test_errors(club: ClubData) -> None:
    history = History.at(club, AS_OF)
    with pytest.raises(NotFittedError):
        VisitTiming().predict(history)
    with pytest.raises(ValueError, match="horizon_days"):
        VisitTiming(horizon_days=0).fit(history)
    with pytest.raises(ValueError, match="nothing to learn"):
        VisitTiming().fit(History.at(club, date(2023, 12, 1)))


@pytest.mark.slow
def test_beats_naive_on_complete_journey(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Real data: the next 28 days from 2017-09-04 (benchmarks/visit_quality.py has the table)."""
    root = tmp_path_factory.mktemp("cj") / "completejourney"
    import_completejourney(root)
    club, as_of = ClubData(root), date(2017, 9, 4)
    history = History.at(club, as_of)
    pred = VisitTiming(n_threads=1).fit(history).predict(history)
    visits = member_visits(club.transactions, hours=False).collect().lazy()
    frame = pred
    for name, start in (("truth", as_of), ("last", as_of - timedelta(days=28))):
        counts = visits_between(visits, start, 28).collect().rename({"visits": name})
        frame = frame.join(counts, on="member_id", how="left").with_columns(
            pl.col(name).fill_null(0)
        )
    naive = mae(frame["truth"], frame["last"])
    assert mae(frame["truth"], frame["likely_visits"]) <= 0.90 * naive
    assert mae(frame["truth"], frame["expected_visits"]) <= 0.92 * naive
    expected, truth = frame["expected_visits"].to_numpy(), frame["truth"].to_numpy()
    assert abs(expected.mean() / truth.mean() - 1) < 0.1
    fortnight = (pl.col("day") >= as_of) & (pl.col("day") < as_of + timedelta(14))
    visited = visits.filter(fortnight).join(frame.lazy(), on="member_id", how="semi")
    share = visited.select(pl.len()).collect().item() / (frame.height * 14)  # member-days
    assert abs(np.stack(frame["p_visit"].to_list()).mean() / share - 1) < 0.1


def test_short_history_learns_a_shorter_horizon(club: ClubData) -> None:
    """40 days of receipts and a 91-day horizon: it learns 20 days and scales them up."""
    history = History.at(club, START + timedelta(days=40))
    model = VisitTiming(horizon_days=91, n_threads=1).fit(history)
    assert model.trained_horizon_days_ == 20
    forecast = model.predict(history).filter(pl.col("member_id").is_in(list(STEADY)))
    visits = member_visits(club.transactions, hours=False)
    truth = forecast.select("member_id").join(
        visits_between(visits, history.as_of_date, 91).collect(), on="member_id", how="left"
    )
    # a steady shopper's 91 days are about 91 / period visits: the 40 days seen tell them
    y = truth["visits"].fill_null(0).to_numpy()
    assert np.corrcoef(forecast["expected_visits"], y)[0, 1] > 0.98
    # and no worse than BG/NBD fitted on the same 40 days
    summary = forecast.select("member_id").join(
        rfm_summary(visits, history.as_of_date), on="member_id", how="left"
    )
    x, tx, t = (summary[c].to_numpy() for c in ("frequency", "recency", "T"))
    classic = BetaGeoNBD().fit(x, tx, t).expected_visits(91.0, x, tx, t)
    ours = forecast["expected_visits"].to_numpy()
    assert np.mean((y - ours) ** 2) <= np.mean((y - classic) ** 2)


def test_scores_beside_bgnbd(club: ClubData, model: VisitTiming) -> None:
    history = History.at(club, AS_OF)
    scores = timing_scores(model, history, 28)
    forecast = model.predict(history, horizon_days=28)
    visits = member_visits(club.transactions, hours=False)
    visited = visits.filter(pl.col("day") < AS_OF).select("member_id").unique().collect()
    frame = (
        forecast.join(visited, on="member_id")
        .join(visits_between(visits, AS_OF, 28).collect(), on="member_id", how="left")
        .with_columns(pl.col("visits").fill_null(0))
    )
    rmse = float(np.sqrt(np.mean((frame["visits"] - frame["expected_visits"]).to_numpy() ** 2)))
    assert scores["visit_rmse"] == pytest.approx(rmse)
    assert scores["visit_rmse_ratio_bgnbd"] == pytest.approx(rmse / scores["visit_rmse_bgnbd"])
    for name in ("poisson_deviance", "mae_likely", "brier", "log_loss", "lapse_auc"):
        assert np.isfinite(scores[f"visit_{name}"]) and np.isfinite(scores[f"visit_{name}_bgnbd"])
    # the lapsed member (gone 10 weeks, used to come every 3 days) is the likeliest to stay away
    lapse = timing_forecast(model, history, 28).join(visited, on="member_id")
    assert lapse.sort("p_lapse")["member_id"][-1] == LAPSED


def test_reliability_bins_member_days_by_predicted_probability() -> None:
    days = P_VISIT_DAYS
    # two members: one predicted 0.2 every day who came on days 0 and 1, one predicted 0.8
    # every day who came every day but the last
    forecast = pl.DataFrame({"member_id": [1, 2], "p_visit": [[0.2] * days, [0.8] * days]})
    truth = pl.DataFrame({"member_id": [2, 1], "d": [list(range(days - 1)), [0, 1]]})
    curve = reliability(forecast, truth, bins=2)
    assert curve["predicted"].to_list() == pytest.approx([0.2, 0.8])
    assert curve["observed"].to_list() == pytest.approx([2 / days, (days - 1) / days])
    assert curve["member_days"].to_list() == [days, days]


def test_training_scores_log_both_reliability_curves(club: ClubData, model: VisitTiming) -> None:
    scores, curves = timing_evaluation(model, History.at(club, AS_OF), 28)
    assert scores == timing_scores(model, History.at(club, AS_OF), 28)
    assert set(curves["method"]) == {"nbo", "BG/NBD"}
    for _, curve in curves.group_by("method"):
        assert curve["predicted"].is_sorted() and curve["observed"].is_between(0, 1).all()
        # every member-day of the first P_VISIT_DAYS days falls in one bin
        assert curve["member_days"].sum() % P_VISIT_DAYS == 0
