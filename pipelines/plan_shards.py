"""A day's plan on Ray (``nbo plan --engine ray``): one task per member shard, the same answers
as :func:`~nbo.pipelines.plan.plan_day`.

Two rounds of one task per shard, each writing its shard's files into the day's draft
(:class:`~nbo.plans.writer.DayDraft`) itself, atomically, so Ray may retry it:

1. **score** (the heavy work): the shard's candidates, scores and member context through
   :func:`~nbo.decisioning.prepare.plan_static` for each channel (kept in the draft's work
   folder) and the members' product recommendations;
2. **build**: each channel's :class:`~nbo.decisioning.plan.Plan` of the shard, with the club's
   exploration odds, campaign list and offer and category codes.

Between them the driver works out what depends on the whole club, from the shards' files: the
cold-start template (:func:`~nbo.pipelines.plan.cold_start_candidates` over every shard's
candidates), the exploration odds (:func:`~nbo.decisioning.engine.exploration_odds` over every
shard's rows and the template's) and the codes, reading the rows in the local engine's order so
the means add up as they do there. A shard's Plan is built with one placeholder row per offer
of the club's plan, so it codes offers and categories as the local engine's club-wide Plan
does; the placeholder is dropped.

What a task sees of the club is :class:`ShardHistory`: the club as of the day with only the
shard's members. The candidates' club-wide figures (the offers' economics, popularity and
features) read the whole club's receipts, as the local engine does, so every task reads them.
The member context (:func:`~nbo.pipelines.candidates.build_members`) is worked out on the
driver for the whole club and handed to the tasks as one file per shard (which also names the
shard's members): the visit model's club averages (base rate, weekday profile, usual gap) are
over the members it forecasts, so a shard's forecast alone would differ from the club's.
Recommendations are each member's own and read the club's receipts as the local engine does.

The plan equals the local engine's: the same members, rows, order, ids, codes, flags and dates,
and the same numbers up to the last bits of a float. Polars adds a column up in parallel parts,
as many as it has threads, so a sum's last bits depend on the thread count: a task runs with
:data:`TASK_CPUS`, and the local engine itself gives other last bits with ``POLARS_MAX_THREADS=1``
(on a 5,000-member synthetic club: offer costs within 4.5e-16, the rest within 1.4e-15).

The club's data and the plan directory must be on storage every Ray node sees.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np
import polars as pl

from nbo.data.io import ClubData
from nbo.decisioning.engine import OfferStats, exploration_odds
from nbo.decisioning.plan import Plan
from nbo.decisioning.policy import Policy
from nbo.decisioning.prepare import CANDIDATE_COLUMNS, MEMBER_COLUMNS, plan_static
from nbo.engine import ray_session
from nbo.features.history import History
from nbo.history import InteractionStore
from nbo.pipelines.candidates import build_candidates, build_members
from nbo.pipelines.plan import (
    COLD_INPUTS,
    DayInputs,
    cold_member,
    cold_start_candidates,
    day_offers,
    member_recommendations,
)
from nbo.pipelines.ray_tasks import TASK_CPUS, PickledModels, task_options, write_parquet
from nbo.plans.day import COLD_MEMBER, DayPlan, PlannedModel, select_members
from nbo.plans.shards import shard_of
from nbo.plans.store import RECOMMENDATIONS
from nbo.plans.writer import DayDraft, read_arm, write_rows
from nbo.tracking.bundle import Bundle

__all__ = ["TASK_CPUS", "ShardHistory", "plan_day_sharded"]

_PLACEHOLDER = -(2**63)  # the member of the placeholder rows: sorts first, never a real member
_WORK = ".work"
Stage = Callable[[str], None]


@dataclass(frozen=True, eq=False)
class ShardHistory(History):
    """The club as of ``as_of`` with only ``member_ids``' members (``History.members``)."""

    member_ids: pl.DataFrame  # member_id

    @property
    def members(self) -> pl.LazyFrame:
        return super().members.join(self.member_ids.lazy(), on="member_id", how="semi")


@dataclass(frozen=True)
class _Job:
    """What every task of a run gets (small: no member data)."""

    data_dir: str
    midnight: datetime
    shards: int
    policy: Policy
    offers: pl.DataFrame
    channels: Sequence[str]
    draft: DayDraft

    def work(self, arm: str, part: str, shard: int) -> Path:
        return self.draft.folder / _WORK / arm / part / f"{shard:05d}.parquet"


@dataclass(frozen=True)
class _Club:
    """What the build round needs of the club-wide plan, per arm and channel."""

    placeholders: pl.DataFrame  # one plan_static row per offer, member _PLACEHOLDER
    odds: pl.DataFrame | None
    campaigns: list[str]


def _as(frame: pl.DataFrame, columns: Mapping[str, pl.DataType]) -> pl.DataFrame:
    return frame.select([pl.col(c).cast(t) for c, t in columns.items()])


def _score_shard(job: _Job, shard: int, pickled: PickledModels[dict[str, Bundle]]) -> int:
    """Round 1 for one shard (``pickled``: the arms' bundles); returns its member count."""
    bundles = pickled.load()
    club = ClubData(job.data_dir)
    history = History(club, job.midnight)
    member_ids = np.empty(0, dtype=np.int64)
    for arm, bundle in bundles.items():
        people = pl.read_parquet(job.work(arm, "members", shard))  # the shard's members
        member_ids = np.sort(people["member_id"].to_numpy().astype(np.int64))
        view = ShardHistory(club, job.midnight, pl.DataFrame({"member_id": member_ids}))
        ours = pl.col("member_id").is_in(pl.Series(member_ids).implode())
        # a targeted campaign's audience brings pairs of other members along: not this shard's
        candidates = build_candidates(view, bundle, job.offers, job.policy).filter(ours)
        write_parquet(candidates.select("member_id", *COLD_INPUTS), job.work(arm, "cold", shard))
        pairs = _as(candidates, CANDIDATE_COLUMNS)
        del candidates
        for channel in job.channels:
            static = plan_static(pairs, people, job.policy, at=job.midnight, channel=channel)
            write_parquet(static.collect(), job.work(arm, channel, shard))
        recs = member_recommendations(bundle, history, member_ids)
        write_rows(recs, job.draft.rows_folder(arm, RECOMMENDATIONS, shard))
    return int(member_ids.size)


def _build(static: pl.DataFrame, club: _Club, day: date, channel: str) -> Plan:
    """The Plan of ``static`` (one shard's rows, or the template's), coded as the club's."""
    plan = Plan.build(
        pl.concat([club.placeholders, static], how="vertical_relaxed"),
        day=day, channel=channel, odds=club.odds, campaigns=club.campaigns,
    )  # fmt: skip
    return select_members(plan, plan.member_ids != _PLACEHOLDER)


def _build_shard(job: _Job, shard: int, clubs: Mapping[str, Mapping[str, _Club]]) -> None:
    """Round 2 for one shard."""
    for arm, by_channel in clubs.items():
        for channel, club in by_channel.items():
            static = pl.read_parquet(job.work(arm, channel, shard))
            plan = _build(static, club, job.midnight.date(), channel)
            write_rows(plan, job.draft.rows_folder(arm, channel, shard))


def _club_plan(
    job: _Job, arm: str, bundle: Bundle, stats: OfferStats, cold_start_offers: int
) -> dict[str, _Club]:
    """The arm's club-wide parts from every shard's files; writes its cold-start template."""
    shards = range(job.shards)
    inputs = pl.concat([pl.read_parquet(job.work(arm, "cold", s)) for s in shards])
    if inputs.is_empty() or cold_start_offers <= 0:  # no template: every column, no rows
        inputs = pl.DataFrame(schema=CANDIDATE_COLUMNS)
    # in the local engine's order: members in order, each one's offers in order
    cold = cold_start_candidates(inputs.sort("member_id", "offer_id"), cold_start_offers)
    clubs: dict[str, _Club] = {}
    policy, midnight = job.policy, job.midnight
    for channel in job.channels:
        template = plan_static(cold, cold_member(), policy, at=midnight, channel=channel).collect()
        # in the local engine's order again, the template last
        rows = pl.concat(
            [
                pl.scan_parquet([job.work(arm, channel, s) for s in shards]).sort(
                    "member_id", "offer_id"
                ),
                template.lazy(),
            ],
            how="vertical_relaxed",
        )
        scores = rows.select("member_id", "offer_id", "p_redeem", "campaign_id").collect()
        odds = exploration_odds(scores, stats, policy) if policy.exploration.share > 0 else None
        club = _Club(
            placeholders=rows.unique("offer_id", keep="first", maintain_order=True)
            .with_columns(member_id=pl.lit(_PLACEHOLDER, pl.Int64))
            .collect(),
            odds=odds,
            campaigns=scores["campaign_id"].unique().sort().to_list(),
        )
        plan = _build(template, club, midnight.date(), channel)
        write_rows(plan, job.draft.rows_folder(arm, channel, None))
        clubs[channel] = club
    history = History(ClubData(job.data_dir), midnight)
    recs = member_recommendations(bundle, history, np.array([COLD_MEMBER], dtype=np.int64))
    write_rows(recs, job.draft.rows_folder(arm, RECOMMENDATIONS, None))
    return clubs


def plan_day_sharded(
    club: ClubData,
    policy: Policy,
    store: InteractionStore | None,
    day: date,
    models: Mapping[str, tuple[PlannedModel, Bundle]],
    draft: DayDraft,
    *,
    channels: Sequence[str] | None = None,
    shards: int | None = None,
    cold_start_offers: int = 5,
    ray_address: str = "",
    stage: Stage = lambda name: None,
) -> DayPlan:
    """:func:`~nbo.pipelines.plan.plan_day` on Ray, its files written into ``draft`` (see the
    module docstring); returns the plan memory-mapped from the draft, for
    :func:`~nbo.plans.writer.commit_day`."""
    given = DayInputs.of(club, policy, store, day, channels, shards, stage)
    midnight, history, offers, known = given.midnight, given.history, given.offers, given.known
    channels, stats = given.channels, given.stats
    job = _Job(str(club.root), midnight, len(known), policy, offers, channels, draft)
    bundles = {arm: bundle for arm, (_, bundle) in models.items()}
    for arm, bundle in bundles.items():
        # the visit model's club averages are over the members it forecasts: all of them here
        stage(f"{arm}: member context")
        people = _as(build_members(history, bundle.timing, policy), MEMBER_COLUMNS)
        shard = shard_of(people["member_id"].to_numpy(), job.shards)
        for s in range(job.shards):
            write_parquet(people.filter(shard == s), job.work(arm, "members", s))
        del people
    with ray_session(ray_address) as ray:
        options = task_options()
        stage(f"scoring {job.shards} shard(s) on Ray")
        score = ray.remote(_score_shard).options(**options)
        bundles_ref = ray.put(PickledModels.of(bundles))
        scored = ray.get([score.remote(job, s, bundles_ref) for s in range(job.shards)])
        if scored != [ids.size for ids in known]:  # each task's members are the driver's
            sizes = [ids.size for ids in known]
            raise RuntimeError(f"shard tasks planned {scored} members, the shards hold {sizes}")
        stage("the club's cold-start template and exploration odds")
        clubs = {
            arm: _club_plan(job, arm, bundle, stats, cold_start_offers)
            for arm, bundle in bundles.items()
        }
        stage(f"building {job.shards} shard(s) on Ray")
        build = ray.remote(_build_shard).options(**options)
        clubs_ref = ray.put(clubs)
        ray.get([build.remote(job, s, clubs_ref) for s in range(job.shards)])
    shutil.rmtree(draft.folder / _WORK, ignore_errors=True)
    arms = {
        arm: read_arm(draft, arm, model, channels, job.shards) for arm, (model, _) in models.items()
    }
    info, campaigns = day_offers(club, offers, day)
    return DayPlan(day, job.shards, known, arms, info, campaigns)
