"""Day plans on disk: written atomically by ``nbo plan``, memory-mapped by the service.

A plan directory holds one entry per planned day, a symbolic link to that run's folder::

    PLAN_DIR/2024-04-01 -> .2024-04-01.<plan_id>
    PLAN_DIR/.2024-04-01.<plan_id>/
        manifest.json                 model versions, policy digest, data cut, counts, shards
        offers.arrow, campaigns.arrow the active offers and campaigns
        members/<shard>.arrow         the members the data knows, per shard
        <arm>/<channel>/<shard>/      one Plan per shard (nbo.plans.arrays), and .../cold/
        <arm>/recommendations/<shard>/, .../cold/

A run writes its folder under a temporary name beside the others, renames it when complete,
then swaps the day's link to it in one ``rename`` and removes the folder it replaced: a reader
sees the old plan or the new one, whole, and a failed run leaves the old plan as it was.
A run on several processes (``nbo plan --engine ray``) fills the same temporary folder: each
shard's writer puts its files in place atomically (:func:`write_rows`, so a retried writer
replaces them whole), and one process commits the day (:mod:`nbo.plans.writer`: writing;
this module: names, the manifest, reading).
Readers resolve the link once and read every file of that one folder; a worker that mapped the
old files keeps reading them until it loads the new plan (removed files live on while mapped).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from nbo.decisioning.plan import Plan
from nbo.decisioning.policy import Policy
from nbo.errors import NboError
from nbo.plans.arrays import read_arrays
from nbo.plans.day import ArmPlan, DayPlan, MemberRows, PlannedModel

__all__ = [
    "FORMAT",
    "MANIFEST",
    "RECOMMENDATIONS",
    "PlanError",
    "PlanMissingError",
    "PlannedMembers",
    "day_folder",
    "plan_command",
    "planned_days",
    "policy_digest",
    "read_arm_folder",
    "read_day",
    "read_manifest",
]

FORMAT = 1
MANIFEST = "manifest.json"
RECOMMENDATIONS = "recommendations"


class PlanError(NboError):
    """A day's plan that cannot be served: missing, unreadable, or made for another policy."""


class PlanMissingError(PlanError):
    """No plan for the day in the plan directory."""


def plan_command(data_dir: Path | str, day: date, plan_dir: Path | str) -> str:
    """The command that makes ``day``'s plan."""
    return f"nbo plan --data {data_dir} --day {day:%Y-%m-%d} --out {plan_dir}"


def policy_digest(policy: Policy) -> str:
    """A digest of every setting of ``policy`` (equal policies, equal digests)."""
    text = json.dumps(policy.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def day_folder(plan_dir: Path, day: date) -> Path | None:
    """The folder of ``day``'s current plan (its link resolved), None when there is none."""
    link = plan_dir / f"{day:%Y-%m-%d}"
    try:
        target = os.readlink(link)
    except FileNotFoundError:
        return None
    except OSError:  # not a link: a plan directory copied without its links
        return link if (link / MANIFEST).is_file() else None
    folder = plan_dir / target
    return folder if (folder / MANIFEST).is_file() else None


def planned_days(plan_dir: Path) -> list[date]:
    """The days ``plan_dir`` has a plan for, in order."""
    days = []
    for entry in plan_dir.glob("[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]"):
        with contextlib.suppress(ValueError):
            day = date.fromisoformat(entry.name)
            if day_folder(plan_dir, day) is not None:
                days.append(day)
    return sorted(days)


def read_manifest(plan_dir: Path, day: date) -> dict[str, Any] | None:
    """``day``'s manifest, None when the day has no plan."""
    folder = day_folder(plan_dir, day)
    if folder is None:
        return None
    try:
        manifest: dict[str, Any] = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PlanError(f"{folder / MANIFEST}: unreadable ({exc})") from None
    return manifest


@dataclass(frozen=True)
class PlannedMembers:
    """One shard's known members, stored through :mod:`nbo.plans.arrays`."""

    member_ids: NDArray[np.int64]


# -- writing ------------------------------------------------------------------------------------
# -- reading ------------------------------------------------------------------------------------
def _planned_model(model: dict[str, Any]) -> PlannedModel:
    return PlannedModel(
        uri=model["uri"],
        version=str(model["version"]),
        as_of=datetime.fromisoformat(model["as_of"]),
        uplift_measured=bool(model["uplift_measured"]),
        uplift_reason=str(model["uplift_reason"]),
    )


def read_arm_folder(folder: Path, channels: list[str], shards: int, model: PlannedModel) -> ArmPlan:
    plans = {
        channel: [read_arrays(Plan, folder / channel / f"{s:05d}") for s in range(shards)]
        for channel in channels
    }
    cold = {channel: read_arrays(Plan, folder / channel / "cold") for channel in channels}
    recs = [read_arrays(MemberRows, folder / RECOMMENDATIONS / f"{s:05d}") for s in range(shards)]
    return ArmPlan(
        model=model,
        plans=plans,
        cold=cold,
        recommendations=recs,
        cold_recommendations=read_arrays(MemberRows, folder / RECOMMENDATIONS / "cold"),
    )


def read_day(plan_dir: Path, day: date, *, data_dir: Path | str = "DIR") -> DayPlan:
    """``day``'s plan, memory-mapped. Raises :class:`PlanMissingError` naming the command that
    makes it (with ``data_dir``) when there is none, :class:`PlanError` when it is unreadable."""
    folder = day_folder(plan_dir, day)
    if folder is None:
        raise PlanMissingError(
            f"no plan for {day:%Y-%m-%d} in {plan_dir}; make it with: "
            f"{plan_command(data_dir, day, plan_dir)}"
        )
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        if manifest.get("format") != FORMAT:
            raise PlanError(f"format {manifest.get('format')}, this nbo reads {FORMAT}")
        shards = int(manifest["shards"]["count"])
        channels = list(manifest["channels"])
        members = [
            read_arrays(PlannedMembers, folder / "members" / f"{s:05d}").member_ids
            for s in range(shards)
        ]
        arms = {
            arm: read_arm_folder(folder / arm, channels, shards, _planned_model(model))
            for arm, model in manifest["models"].items()
        }
        offers = pl.read_ipc(folder / "offers.arrow")
        campaigns = pl.read_ipc(folder / "campaigns.arrow")
    except (OSError, ValueError, KeyError, NboError) as exc:
        raise PlanError(
            f"the plan for {day:%Y-%m-%d} in {folder} is unreadable ({exc}); make it again "
            f"with: {plan_command(data_dir, day, plan_dir)}"
        ) from None
    return DayPlan(day, shards, members, arms, offers, campaigns, manifest)
