"""One member's decision in-process: :func:`nbo.decisioning.engine.decide` per member, timed.

Candidates and member rows are built once (not timed) for a random sample of members with the
batch job's own functions (``pipelines.candidates``) on a view of the club that keeps only the
sample's rows of the member-keyed tables (members, transactions, campaign_audience,
redemptions), so a 1M-member club costs one filtered scan instead of a full batch run. The
sample's own rows are the same as in the full club; club-wide figures (the 5 "popular" offers
every member gets, an offer's typical spend and discount) come from the sample instead of the
whole club, which changes values, not the number or shape of rows a member gets.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np
import polars as pl

from nbo.data.contract import table_spec
from nbo.data.io import ClubData
from nbo.decisioning.engine import (
    Decisions,
    OfferStats,
    decide,
    decide_prepared,
    exploration_odds,
)
from nbo.decisioning.explore import HashDraws
from nbo.decisioning.online import Contacts, MemberDecision, decide_member
from nbo.decisioning.plan import Plan
from nbo.decisioning.policy import Policy
from nbo.decisioning.prepare import plan_static
from nbo.features.history import History
from nbo.pipelines.candidates import active_offers, build_candidates, build_members
from nbo.tracking.bundle import Bundle

__all__ = ["Latency", "SampledClub", "member_latency"]

WARM_UP = 20  # calls before timing (first-call set-up in polars and numpy)


class SampledClub(ClubData):
    """A club whose member-keyed tables keep only ``member_ids``' rows."""

    def __init__(self, root: Path, member_ids: pl.Series) -> None:
        super().__init__(root)
        self.member_ids = member_ids

    def scan(self, name: str) -> pl.LazyFrame:
        frame = super().scan(name)
        if "member_id" in table_spec(name).schema:
            return frame.filter(pl.col("member_id").is_in(self.member_ids.implode()))
        return frame


@dataclass(frozen=True)
class Latency:
    """Per-call times of one member's decision for each call path, and what the calls saw."""

    seconds: dict[str, np.ndarray]  # call path -> one time per member
    candidate_rows: np.ndarray  # per timed member
    decisions: int  # written by the first path, all members
    prepare_s: float  # building the sample's candidates and member rows (not timed)

    def report(self, target_ms: float) -> str:
        rows = self.candidate_rows
        lines = [
            f"one member in-process (default Policy, no contact history; {rows.size:,} members, "
            f"candidate rows per member median {np.median(rows):.0f}, max {rows.max()}; "
            f"{self.decisions:,} decisions; candidates prepared in {self.prepare_s:.0f} s, "
            "not timed):",
            "| call | p50 ms | p95 ms | p99 ms | max ms | p99 target |",
            "|---|---:|---:|---:|---:|---|",
        ]
        for path, seconds in self.seconds.items():
            ms = seconds * 1e3
            p50, p95, p99 = np.percentile(ms, [50, 95, 99])
            verdict = "met" if p99 <= target_ms else "NOT met"
            lines.append(
                f"| {path} | {p50:.2f} | {p95:.2f} | {p99:.2f} | {ms.max():.2f} "
                f"| {verdict} (<= {target_ms:.0f} ms) |"
            )
        return "\n".join(lines)


def member_latency(overlay: Path, bundle_path: Path, at: date, sample: int, seed: int) -> Latency:
    """Time one member's decision for each of ``sample`` random members, one member per call.

    Four call paths: ``decide`` with its defaults (the exploration odds are recomputed on every
    call); ``decide`` with the odds computed once (per model load); ``decide_prepared`` on the
    member's rows already through ``plan_static`` (once per day); and ``decide_member`` on a
    :class:`~nbo.decisioning.online.Plan` of those rows, which is what ``nbo serve`` calls
    (contact history not included: the service reads it in one indexed query per member).
    """
    when = datetime.combine(at, datetime.min.time())
    start = time.perf_counter()
    everyone = ClubData(overlay).members.select("member_id").collect()["member_id"]
    ids = everyone.sample(min(sample, everyone.len()), seed=seed).sort()
    history = History.at(SampledClub(overlay, ids), when)
    bundle = Bundle.load(bundle_path)
    policy = Policy()
    offers = active_offers(history.club, when)
    candidates = build_candidates(history, bundle, offers, policy)
    members = build_members(history, bundle.timing, policy)
    odds = exploration_odds(candidates, OfferStats.empty(), policy)
    order = [int(m) for m in members["member_id"]]
    own = candidates.partition_by("member_id", as_dict=True)
    empty = candidates.clear()
    inputs = {m: (own.get((m,), empty), members.filter(pl.col("member_id") == m)) for m in order}
    static = {
        m: plan_static(c, row, policy, at=when, channel="email").collect()
        for m, (c, row) in inputs.items()
    }
    prepare_s = time.perf_counter() - start
    version = bundle.version

    def plain(m: int) -> Decisions:
        return decide(*inputs[m], policy, at=when, channel="email", model_version=version,
                      run_id="bench")  # fmt: skip

    def given_odds(m: int) -> Decisions:
        return decide(*inputs[m], policy, at=when, channel="email", model_version=version,
                      run_id="bench", odds=odds)  # fmt: skip

    def prepared(m: int) -> Decisions:
        return decide_prepared(static[m], policy, at=when, channel="email",
                               model_version=version, run_id="bench", odds=odds)  # fmt: skip

    # the service's path: one Plan of every member's static rows, arrays per member
    plan = Plan.build(pl.concat([static[m] for m in order]), day=at, channel="email", odds=odds)

    def online(m: int) -> list[MemberDecision]:
        return decide_member(plan, m, policy, at=when, contacts=Contacts.none(),
                             rng=HashDraws(f"bench-{m}", policy.seed), model_version=version,
                             decision_prefix="bench")  # fmt: skip

    calls: dict[str, Callable[[int], object]] = {
        "`decide(...)`": plain,
        "`decide(..., odds=...)`": given_odds,
        "`decide_prepared(...)`": prepared,
        "`decide_member(plan, ...)` (the service's path)": online,
    }
    seconds: dict[str, np.ndarray] = {}
    decisions = 0
    for path, call in calls.items():
        for member_id in order[:WARM_UP]:
            call(member_id)
        times = np.empty(len(order))
        for i, member_id in enumerate(order):
            t0 = time.perf_counter()
            result = call(member_id)
            times[i] = time.perf_counter() - t0
            if not seconds and isinstance(result, Decisions):
                decisions += result.decisions.height
        seconds[path] = times
    counts = np.array([inputs[m][0].height for m in order])
    return Latency(seconds, counts, decisions, prepare_s)
