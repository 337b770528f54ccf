"""Batch decisions: every member's offers for campaign tools (``nbo decide``).

A thin composition: the club as of ``at`` → member context → scored candidates
(:mod:`nbo.pipelines.candidates`) and their static rules, one chunk of members at a time →
contact history (the interaction store, optional) → the decision engine
(:func:`~nbo.decisioning.batch.decide_chunks`, budgets club-wide) → a per-campaign summary.
With ``engine=Engine.ray`` each chunk's candidates and static rules are a Ray task
(:mod:`nbo.pipelines.decide_shards`); the rest is the same. Reading and writing happen in the
CLI and the tasks' work files; these functions only compute.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl

from nbo.data.io import ClubData
from nbo.decisioning.batch import decide_chunks
from nbo.decisioning.engine import Decisions, OfferStats
from nbo.decisioning.policy import Policy
from nbo.decisioning.prepare import ContactHistory, plan_static
from nbo.engine import Engine
from nbo.features.history import History
from nbo.pipelines.candidates import (
    MEMBERS_PER_CHUNK,
    active_offers,
    build_members,
    candidate_chunks,
)
from nbo.pipelines.decide_shards import ChunkScored, scored_on_ray
from nbo.tracking.bundle import Bundle

__all__ = ["BatchDecisions", "campaign_summary", "decide_batch", "offer_stats"]

Stage = Callable[[str], None]


@dataclass(frozen=True)
class BatchDecisions:
    result: Decisions
    offers: int
    members: int
    candidates: int
    ray_tasks: tuple[ChunkScored, ...] = ()  # one per member chunk with the ray engine


def offer_stats(contacts: ContactHistory | None) -> OfferStats:
    """Offer-level exposures and redemptions from the interaction history."""
    if contacts is None or contacts.offer_events.height == 0:
        return OfferStats.empty()
    return OfferStats(
        contacts.offer_events.group_by("offer_id").agg(
            exposures=pl.col("exposures").sum().cast(pl.Int64),
            redemptions=pl.col("redeemed").cast(pl.Int64).sum(),
        )
    )


def decide_batch(
    club: ClubData,
    bundle: Bundle,
    policy: Policy,
    *,
    at: datetime,
    channel: str,
    campaign: str | None = None,
    contacts: ContactHistory | None = None,
    run_id: str | None = None,
    stage: Stage = lambda name: None,
    members_per_chunk: int = MEMBERS_PER_CHUNK,
    engine: Engine = Engine.local,
    ray_address: str = "",
    work_dir: Path | None = None,
) -> BatchDecisions:
    """Decide offers for every member of ``club`` at ``at`` (see the module docstring); with
    the ray engine, the tasks' files go to a temporary folder under ``work_dir``."""
    policy.check_channel(channel)
    history = History.at(club, at)
    stage("active offers")
    offers = active_offers(club, at, campaign)
    stage("member context")
    members = build_members(history, bundle.timing, policy)
    scored = [0]

    def statics() -> Iterator[pl.DataFrame]:
        stage("scoring candidates")
        for candidates in candidate_chunks(
            history, bundle, offers, policy, members_per_chunk=members_per_chunk
        ):
            scored[0] += candidates.height
            yield plan_static(candidates, members, policy, at=at, channel=channel).collect()
        stage("arbitration and budgets")

    def decide(frames: Iterable[pl.DataFrame]) -> Decisions:
        return decide_chunks(
            frames,
            policy,
            at=at,
            channel=channel,
            contacts=contacts,
            offer_stats=offer_stats(contacts),
            model_version=bundle.version,
            run_id=run_id,
        )

    if engine is Engine.local:
        result = decide(statics())
        return BatchDecisions(result, offers.height, members.height, scored[0])
    with scored_on_ray(
        history, bundle, offers, members, policy, at=at, channel=channel,
        members_per_chunk=members_per_chunk, ray_address=ray_address, work_dir=work_dir,
        stage=stage,
    ) as chunks:  # fmt: skip
        stage("arbitration and budgets")
        result = decide(chunks.statics())
    ray_tasks = tuple(chunks.tasks)
    return BatchDecisions(result, offers.height, members.height, chunks.candidates, ray_tasks)


def campaign_summary(decisions: pl.DataFrame) -> pl.DataFrame:
    """Per campaign: what the decisions are expected to change and cost.

    ``incremental_value`` (the headline) sums the decisions' ``uplift × value − expected
    cost``: margin the offers add beyond what members buy anyway, less every redemption's
    coupon and the contacts. ``expected_value`` / ``net_value`` count every redemption as
    value (purchases that would have happened anyway included) and are kept for comparison.
    ``roi`` = incremental value / expected cost; ``uplift_measured`` is false where any
    decision's uplift is the documented assumption rather than a measurement.
    """
    return (
        decisions.group_by("campaign_id")
        .agg(
            members=pl.col("member_id").n_unique(),
            offers=pl.len(),
            expected_redemptions=pl.col("p_redeem").sum(),
            expected_cost=pl.col("expected_cost").sum(),
            incremental_value=pl.col("incremental_value").sum(),
            expected_value=(pl.col("expected_value") + pl.col("expected_cost")).sum(),
            uplift_measured=pl.col("uplift_measured").all(),
        )
        .with_columns(net_value=pl.col("expected_value") - pl.col("expected_cost"))
        .with_columns(
            roi=pl.when(pl.col("expected_cost") > 0)
            .then(pl.col("incremental_value") / pl.col("expected_cost"))
            .otherwise(None)
        )
        .sort("campaign_id")
    )
