"""A day's plan: what every request of one day needs, for each model served, by member shard.

:class:`DayPlan` is what ``nbo plan`` writes and the service reads (:mod:`nbo.plans.store`);
:func:`~nbo.pipelines.plan.plan_day` makes it. Per model (an *arm*: champion, challenger) it
holds, for each channel, one :class:`~nbo.decisioning.plan.Plan` per member shard plus the
cold-start template (the plan rows of member :data:`COLD_MEMBER`, which a member the data does
not know is decided from), and each member's product recommendations. For the day: the members
the data knows (by shard), the active offers and campaigns.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime
from functools import cached_property
from typing import Any, Protocol, TypeVar

import numpy as np
import polars as pl
from numpy.typing import NDArray

from nbo.decisioning.plan import Plan
from nbo.plans.shards import member_shard, shard_of

__all__ = [
    "COLD_MEMBER",
    "MAX_RECOMMENDATIONS",
    "ArmPlan",
    "DayPlan",
    "MemberRows",
    "PlannedModel",
    "select_members",
    "split_by_shard",
]

COLD_MEMBER = -1
"""The member id of the cold-start template (member ids in requests are ≥ 0)."""
MAX_RECOMMENDATIONS = 50


class RowsByMember(Protocol):
    """Rows grouped by member: a :class:`Plan` or :class:`MemberRows`."""

    @property
    def member_ids(self) -> NDArray[np.int64]: ...

    @property
    def starts(self) -> NDArray[np.int64]: ...

    @property
    def columns(self) -> dict[str, NDArray[Any]]: ...


R = TypeVar("R", bound=RowsByMember)


@dataclass(frozen=True)
class MemberRows:
    """Rows by member, like a plan: ``member_ids[i]``'s rows are ``starts[i]:starts[i + 1]``.

    String columns are coded: ``labels[name][code]`` is the label of ``columns[name]``'s code.
    """

    member_ids: NDArray[np.int64]
    starts: NDArray[np.int64]
    columns: dict[str, NDArray[Any]]
    labels: dict[str, list[str]]

    @staticmethod
    def from_frame(frame: pl.DataFrame, *, coded: tuple[str, ...] = ()) -> MemberRows:
        """From a frame with ``member_id`` (its other columns, in its row order per member)."""
        frame = frame.sort("member_id", maintain_order=True)
        members = frame["member_id"].to_numpy().astype(np.int64)
        member_ids, first = np.unique(members, return_index=True)
        labels: dict[str, list[str]] = {}
        columns: dict[str, NDArray[Any]] = {}
        for name in frame.columns:
            if name == "member_id":
                continue
            if name in coded:
                labels[name] = frame[name].unique().sort().to_list()
                codes = {label: k for k, label in enumerate(labels[name])}
                columns[name] = frame[name].replace_strict(codes, return_dtype=pl.Int32).to_numpy()
            else:
                columns[name] = frame[name].to_numpy()
        return MemberRows(member_ids, np.r_[first, members.size].astype(np.int64), columns, labels)

    def rows_of(self, member_id: int) -> slice:
        """The slice of ``member_id``'s rows (empty when there are none)."""
        i = int(np.searchsorted(self.member_ids, member_id))
        if i < self.member_ids.size and self.member_ids[i] == member_id:
            return slice(int(self.starts[i]), int(self.starts[i + 1]))
        return slice(0, 0)

    def records(self, rows: slice) -> list[dict[str, object]]:
        """Rows as dicts of Python values, coded columns as their labels."""
        out: list[dict[str, object]] = [{} for _ in range(rows.stop - rows.start)]
        for name, values in self.columns.items():
            chosen = values[rows].tolist()
            if name in self.labels:
                chosen = [self.labels[name][code] for code in chosen]
            for record, value in zip(out, chosen, strict=True):
                record[name] = value
        return out


def select_members(rows: R, keep: NDArray[np.bool_]) -> R:
    """The rows of the members where ``keep`` (one flag per member) holds; other fields kept."""
    lengths = np.diff(rows.starts)
    index = np.flatnonzero(np.repeat(keep, lengths))
    starts = np.r_[0, np.cumsum(lengths[keep])].astype(np.int64)
    columns = {name: values[index] for name, values in rows.columns.items()}
    return dataclasses.replace(  # type: ignore[type-var]
        rows, member_ids=rows.member_ids[keep], starts=starts, columns=columns
    )


def split_by_shard(rows: R, shards: int) -> list[R]:
    """``rows`` split into ``shards`` parts by member shard (codes and ids stay whole)."""
    if shards == 1:
        return [rows]
    shard = shard_of(rows.member_ids, shards)
    return [select_members(rows, shard == s) for s in range(shards)]


@dataclass(frozen=True)
class PlannedModel:
    """The model a plan was made with: what the service reports and checks requests against."""

    uri: str  # pinned: a registry version, not an alias
    version: str
    as_of: datetime  # its training date: requests before it are refused
    uplift_measured: bool
    uplift_reason: str


@dataclass(frozen=True)
class ArmPlan:
    """One model's part of a day's plan (see the module docstring)."""

    model: PlannedModel
    plans: dict[str, list[Plan]]  # channel -> one plan per shard
    cold: dict[str, Plan]  # channel -> the cold-start template
    recommendations: list[MemberRows]  # one per shard
    cold_recommendations: MemberRows


@dataclass(frozen=True)
class DayPlan:
    """Everything a request on ``day`` needs (see the module docstring)."""

    day: date
    shards: int
    members: list[NDArray[np.int64]]  # per shard: the members the data knows, sorted
    arms: dict[str, ArmPlan]
    offers: pl.DataFrame  # offer_id, campaign_id, campaign_type, category, product, ...
    campaigns: pl.DataFrame  # campaigns active on the day
    manifest: dict[str, Any] = dataclasses.field(default_factory=dict)

    def shard(self, member_id: int) -> int:
        return member_shard(member_id, self.shards)

    @property
    def keyed(self) -> bool:
        """Whether the club's member keys are text (see :func:`nbo.memberkey.member_id_of`)."""
        return self.manifest.get("member_keys") == "string"

    def knows(self, member_id: int) -> bool:
        """Whether the data knows ``member_id`` (else it gets the cold-start template)."""
        ids = self.members[self.shard(member_id)]
        i = int(np.searchsorted(ids, member_id))
        return i < ids.size and int(ids[i]) == member_id

    def rows(self, arm: str, channel: str, member_id: int) -> tuple[Plan, slice, bool]:
        """(the plan, ``member_id``'s slice of it, known): the cold template when unknown."""
        plans = self.arms[arm]
        if self.knows(member_id):
            plan = plans.plans[channel][self.shard(member_id)]
            return plan, plan.rows_of(member_id), True
        cold = plans.cold[channel]
        return cold, cold.rows_of(COLD_MEMBER), False

    def recommendations(self, arm: str, member_id: int) -> list[dict[str, object]] | None:
        """``member_id``'s ranked products, None for a member without any (cold start)."""
        recs = self.arms[arm].recommendations[self.shard(member_id)]
        rows = recs.rows_of(member_id)
        return recs.records(rows) if rows.stop > rows.start else None

    def cold_recommendations(self, arm: str) -> list[dict[str, object]]:
        cold = self.arms[arm].cold_recommendations
        return cold.records(cold.rows_of(COLD_MEMBER))

    @cached_property
    def offer_info(self) -> dict[str, dict[str, object]]:
        """offer_id -> what a response shows of the offer."""
        return {str(row["offer_id"]): row for row in self.offers.iter_rows(named=True)}
