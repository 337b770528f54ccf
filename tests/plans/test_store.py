"""Day plans on disk: the member hash, the round trip, decisions from a read plan, atomic swaps."""

from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbo.decisioning.engine import OfferStats, exploration_odds
from nbo.decisioning.explore import HashDraws
from nbo.decisioning.online import Contacts, decide_member
from nbo.decisioning.plan import Plan
from nbo.decisioning.prepare import plan_static
from nbo.plans import (
    COLD_MEMBER,
    ArmPlan,
    DayPlan,
    MemberRows,
    PlanError,
    PlanMissingError,
    PlannedModel,
    planned_days,
    read_day,
    read_manifest,
    write_day,
)
from nbo.plans import store as plan_store
from nbo.plans import writer as plan_writer
from nbo.plans.arrays import ArrayStoreError, read_arrays, write_arrays
from nbo.plans.day import select_members, split_by_shard
from nbo.plans.shards import member_shard, shard_count, shard_of
from tests.decisioning.club import AT, Instance, instances

DAY = AT.date()
MODEL = PlannedModel("models:/nbo/3", "3", datetime(2024, 1, 1), False, "no randomized campaigns")


# -- the member hash ----------------------------------------------------------------------------
@given(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=50), st.integers(1, 300))
def test_one_member_hashes_as_the_vectorised_writer_does(ids: list[int], shards: int) -> None:
    vector = shard_of(np.array(ids, dtype=np.int64), shards)
    assert [member_shard(m, shards) for m in ids] == vector.tolist()
    assert ((vector >= 0) & (vector < shards)).all()


def test_the_hash_is_pinned_and_spreads_members_evenly() -> None:
    # pinned: a change of the hash would send every reader to the wrong shard of old plans
    assert [member_shard(m, 1000) for m in (0, 1, 2, -1, 2**40)] == [535, 465, 110, 936, 641]
    counts = np.bincount(shard_of(np.arange(100_000, dtype=np.int64), 8), minlength=8)
    assert counts.min() > 12_000 and counts.max() < 13_000
    assert shard_count(0) == 1 and shard_count(250_000) == 1 and shard_count(250_001) == 2


# -- arrays ---------------------------------------------------------------------------------------
def test_arrays_round_trip_and_numbers_are_mapped_not_copied(tmp_path: Path) -> None:
    columns = {
        "p": np.array([0.1, np.nan, 0.3]), "n": np.array([3, -1, 7]),
        "flag": np.array([True, False, True]), "code": np.array([0, 2, 1], dtype=np.int32),
        "day": np.array(["2024-04-01", "NaT", "2024-04-03"], dtype="datetime64[D]"),
        "name": np.array(["a", None, "b"], dtype=object),
        "when": np.array([date(2024, 4, 1), None, date(2024, 4, 2)], dtype=object),
    }  # fmt: skip
    plan = Plan(DAY, "email", np.array([4, 9]), np.array([0, 1, 3]), columns, {"o1": 0}, ["C1"])
    write_arrays(plan, tmp_path / "plan")
    back = read_arrays(Plan, tmp_path / "plan")
    assert (back.day, back.channel, back.offer_codes, back.campaign_ids) == (
        DAY, "email", {"o1": 0}, ["C1"],
    )  # fmt: skip
    assert back.member_ids.tolist() == [4, 9] and back.starts.tolist() == [0, 1, 3]
    for name, values in columns.items():
        got = back.columns[name]
        assert got.dtype == values.dtype, name
        assert got.tolist() == values.tolist() or name in ("p", "day"), name
    assert np.isnan(back.columns["p"][1]) and np.isnat(back.columns["day"][1])
    for name in ("p", "n", "flag", "code", "day"):  # views of the mapped file: read-only
        assert not back.columns[name].flags.writeable and not back.columns[name].flags.owndata
    assert back.rows_of(9) == slice(1, 3)


def test_arrays_refuse_what_they_cannot_store(tmp_path: Path) -> None:
    odd = Plan(DAY, "email", np.array([1]), np.array([0, 0]), {}, {"o": 0}, [])
    odd = replace(odd, campaign_ids=[object()])  # type: ignore[list-item]
    with pytest.raises(ArrayStoreError, match="campaign_ids"):
        write_arrays(odd, tmp_path / "odd")


# -- a whole day ---------------------------------------------------------------------------------
def _recommendations(member_ids: np.ndarray) -> MemberRows:
    rows = [
        {"member_id": int(m), "rank": rank, "product_id": 100 + rank * int(m), "score": 1 / rank,
         "reason": "popular" if m == COLD_MEMBER else "repurchase_due", "cold_start": m < 0}
        for m in member_ids for rank in (1, 2)
    ]  # fmt: skip
    schema = {"member_id": pl.Int64, "rank": pl.Int32, "product_id": pl.Int64,
              "score": pl.Float64, "reason": pl.String, "cold_start": pl.Boolean}  # fmt: skip
    return MemberRows.from_frame(pl.DataFrame(rows, schema=schema), coded=("reason",))


def day_plan(plan: Plan, shards: int = 1, day: date = DAY) -> DayPlan:
    """A day of ``plan`` (its cold-start rows under COLD_MEMBER) for one arm, sharded."""
    cold = plan.member_ids == COLD_MEMBER
    known = plan.member_ids[~cold]
    recs = _recommendations(known)
    arm = ArmPlan(
        model=MODEL,
        plans={plan.channel: split_by_shard(select_members(plan, ~cold), shards)},
        cold={plan.channel: select_members(plan, cold)},
        recommendations=split_by_shard(recs, shards),
        cold_recommendations=_recommendations(np.array([COLD_MEMBER])),
    )
    offers = pl.DataFrame({"offer_id": ["o1"], "campaign_id": ["C1"], "valid_from": [day]})
    campaigns = pl.DataFrame({"campaign_id": ["C1"], "start_date": [day], "end_date": [day]})
    members = [known[shard_of(known, shards) == s] for s in range(shards)]
    return DayPlan(day, shards, members, {"champion": arm}, offers, campaigns)


def _decisions(plan: Plan, rows: slice, member_id: int, instance: Instance) -> list[Any]:
    prefix = f"{AT:%Y%m%d}-{plan.channel}"
    return decide_member(
        plan, member_id, instance.policy, at=AT + timedelta(hours=9), contacts=Contacts.none(),
        rng=HashDraws(f"{prefix}-{member_id}", instance.policy.seed), model_version="3",
        decision_prefix=prefix, closed_campaigns=instance.closed_campaigns, rows=rows,
    )  # fmt: skip


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances(), st.integers(1, 4))
def test_a_read_plan_decides_every_member_as_the_plan_in_memory(
    instance: Instance, shards: int
) -> None:
    static = plan_static(
        instance.candidates, instance.members, instance.policy, at=AT, channel=instance.channel
    ).collect()
    odds = exploration_odds(static, instance.offer_stats or OfferStats.empty(), instance.policy)
    whole = Plan.build(static, day=DAY, channel=instance.channel, odds=odds)
    with tempfile.TemporaryDirectory() as folder:
        write_day(day_plan(whole, shards), Path(folder))
        loaded = read_day(Path(folder), DAY)
        assert loaded.shards == shards
        for member_id in [*whole.member_ids.tolist(), 10**9]:
            plan, rows, known = loaded.rows("champion", instance.channel, member_id)
            assert known == (member_id in whole.member_ids and member_id != COLD_MEMBER)
            reference = whole.rows_of(member_id if known else COLD_MEMBER)
            assert _decisions(plan, rows, member_id, instance) == _decisions(
                whole, reference, member_id, instance
            )


def tiny_plan(members: list[int], channel: str = "email") -> Plan:
    n = len(members)
    columns = {"offer_code": np.zeros(n, dtype=np.int64), "p_redeem": np.linspace(0, 1, n)}
    return Plan(DAY, channel, np.array(members, dtype=np.int64), np.arange(n + 1), columns,
                {"o1": 0}, ["C1"])  # fmt: skip


def test_a_day_round_trips_with_its_manifest(tmp_path: Path) -> None:
    written = day_plan(tiny_plan([COLD_MEMBER, 3, 5, 8, 13]), shards=2)
    folder = write_day(written, tmp_path, policy={"digest": "sha256:x"}, data={"cut": "d"})
    manifest = read_manifest(tmp_path, DAY)
    assert manifest is not None and folder.name == f".{DAY}.{manifest['plan_id']}"
    assert manifest["day"] == f"{DAY}" and manifest["format"] == plan_store.FORMAT
    assert manifest["policy"] == {"digest": "sha256:x"} and manifest["data"] == {"cut": "d"}
    assert manifest["shards"]["count"] == 2 and manifest["channels"] == ["email"]
    assert manifest["models"]["champion"]["version"] == "3"
    assert manifest["models"]["champion"]["rows"] == {"email": 4}
    assert manifest["counts"] == {"members": 4, "offers": 1, "campaigns": 1}
    loaded = read_day(tmp_path, DAY)
    assert loaded.arms["champion"].model == MODEL
    assert [loaded.knows(m) for m in (3, 5, 8, 13, 4, COLD_MEMBER)] == [True] * 4 + [False] * 2
    assert loaded.recommendations("champion", 5) == written.recommendations("champion", 5)
    assert loaded.recommendations("champion", 5) == [
        {"rank": 1, "product_id": 105, "score": 1.0, "reason": "repurchase_due",
         "cold_start": False},
        {"rank": 2, "product_id": 110, "score": 0.5, "reason": "repurchase_due",
         "cold_start": False},
    ]  # fmt: skip
    assert loaded.recommendations("champion", 4) is None
    assert loaded.cold_recommendations("champion")[0]["reason"] == "popular"
    assert loaded.offers.equals(written.offers) and loaded.campaigns.equals(written.campaigns)
    assert loaded.offer_info == {"o1": {"offer_id": "o1", "campaign_id": "C1", "valid_from": DAY}}
    assert planned_days(tmp_path) == [DAY]


def test_planning_again_replaces_the_day_whole_and_a_failed_run_leaves_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_day(day_plan(tiny_plan([COLD_MEMBER, 1, 2])), tmp_path)
    first = read_day(tmp_path, DAY)
    write_day(day_plan(tiny_plan([COLD_MEMBER, 1, 2, 3])), tmp_path)
    second = read_day(tmp_path, DAY)
    assert second.manifest["plan_id"] != first.manifest["plan_id"]
    assert second.knows(3) and not first.knows(3)
    # the first plan's folder is gone, yet a reader that mapped it reads on
    assert first.arms["champion"].plans["email"][0].columns["p_redeem"].sum() >= 0
    hidden = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
    assert hidden == [f".{DAY}.{second.manifest['plan_id']}"]

    calls = 0
    real = plan_writer.write_arrays

    def failing(obj: Any, directory: Path) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise OSError("disk full")
        real(obj, directory)

    monkeypatch.setattr(plan_writer, "write_arrays", failing)
    with pytest.raises(OSError, match="disk full"):
        write_day(day_plan(tiny_plan([COLD_MEMBER, 7])), tmp_path)
    kept = read_day(tmp_path, DAY)
    assert kept.manifest["plan_id"] == second.manifest["plan_id"] and kept.knows(3)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"{DAY}", *hidden])


def test_a_day_without_a_plan_names_the_command_that_makes_it(tmp_path: Path) -> None:
    with pytest.raises(PlanMissingError) as missing:
        read_day(tmp_path, DAY, data_dir="data/club")
    assert f"nbo plan --data data/club --day {DAY} --out {tmp_path}" in str(missing.value)
    assert read_manifest(tmp_path, DAY) is None and planned_days(tmp_path) == []


def test_an_unreadable_plan_is_a_plan_error(tmp_path: Path) -> None:
    folder = write_day(day_plan(tiny_plan([COLD_MEMBER, 1])), tmp_path)
    (folder / "champion" / "email" / "00000" / "columns.arrow").write_bytes(b"not arrow")
    with pytest.raises(PlanError, match="unreadable") as broken:
        read_day(tmp_path, DAY)
    assert not isinstance(broken.value, PlanMissingError)
    assert "nbo plan" in str(broken.value)


def test_a_folder_in_place_of_the_link_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / f"{DAY}").mkdir()
    with pytest.raises(PlanError, match="not a plan link"):
        write_day(day_plan(tiny_plan([COLD_MEMBER, 1])), tmp_path)
    assert os.listdir(tmp_path) == [f"{DAY}"]
