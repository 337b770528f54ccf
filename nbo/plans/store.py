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
replaces them whole), and one process commits the day (:func:`open_day`, :func:`commit_day`).
Readers resolve the link once and read every file of that one folder; a worker that mapped the
old files keeps reading them until it loads the new plan (removed files live on while mapped).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from nbo.decisioning.plan import Plan
from nbo.decisioning.policy import Policy
from nbo.errors import NboError
from nbo.plans.arrays import read_arrays, write_arrays
from nbo.plans.day import ArmPlan, DayPlan, MemberRows, PlannedModel
from nbo.plans.shards import SHARD_HASH

__all__ = [
    "FORMAT",
    "MANIFEST",
    "RECOMMENDATIONS",
    "DayDraft",
    "PlanError",
    "PlanMissingError",
    "commit_day",
    "day_folder",
    "open_day",
    "plan_command",
    "planned_days",
    "policy_digest",
    "read_arm",
    "read_day",
    "read_manifest",
    "write_arm",
    "write_day",
    "write_rows",
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
class _Members:
    """One shard's known members, stored through :mod:`nbo.plans.arrays`."""

    member_ids: NDArray[np.int64]


# -- writing ------------------------------------------------------------------------------------
def _write_frame(frame: pl.DataFrame, path: Path) -> None:
    frame.write_ipc(path, compression="uncompressed")


@dataclass(frozen=True)
class DayDraft:
    """A day's plan being written: a temporary folder beside the others (see the module
    docstring), filled by :func:`write_arm` or by one writer per shard, then committed."""

    plan_dir: Path
    day: date
    plan_id: str

    @property
    def name(self) -> str:
        return f"{self.day:%Y-%m-%d}"

    @property
    def folder(self) -> Path:
        """Where the files go until :func:`commit_day` renames it."""
        return self.plan_dir / f".{self.name}.{self.plan_id}.tmp"

    @property
    def final(self) -> Path:
        return self.plan_dir / f".{self.name}.{self.plan_id}"

    def rows_folder(self, arm: str, part: str, shard: int | None) -> Path:
        """The folder of an arm's ``part`` (a channel, or :data:`RECOMMENDATIONS`) for one
        shard, or its cold-start template (``shard`` None)."""
        return self.folder / arm / part / ("cold" if shard is None else f"{shard:05d}")


@contextlib.contextmanager
def open_day(plan_dir: Path, day: date) -> Iterator[DayDraft]:
    """A draft of ``day``'s plan in ``plan_dir``; on any failure inside, every file of the
    draft is removed and the day's current plan is left as it was."""
    plan_dir.mkdir(parents=True, exist_ok=True)
    link = plan_dir / f"{day:%Y-%m-%d}"
    if link.exists() and not link.is_symlink():
        raise PlanError(f"{link} is a folder, not a plan link; move it away to plan {day} here")
    draft = DayDraft(plan_dir, day, uuid.uuid4().hex[:12])
    try:
        yield draft
    except BaseException:
        (plan_dir / f".{draft.name}.{draft.plan_id}.link").unlink(missing_ok=True)
        shutil.rmtree(draft.folder, ignore_errors=True)
        if not (link.is_symlink() and os.readlink(link) == draft.final.name):
            shutil.rmtree(draft.final, ignore_errors=True)
        raise


def write_rows(rows: object, folder: Path) -> None:
    """Write one shard's rows (a Plan or MemberRows) to ``folder``, atomically: a writer run
    again (a retried task) replaces the folder whole, and a reader never sees half of it."""
    part = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:8]}")
    try:
        write_arrays(rows, part)
        if folder.exists():
            shutil.rmtree(folder)
        part.rename(folder)
    finally:
        shutil.rmtree(part, ignore_errors=True)


def write_arm(arm: ArmPlan, draft: DayDraft, name: str) -> None:
    """Every file of one arm's plan into ``draft``."""
    for channel, plans in arm.plans.items():
        for shard, plan in enumerate(plans):
            write_arrays(plan, draft.rows_folder(name, channel, shard))
        write_arrays(arm.cold[channel], draft.rows_folder(name, channel, None))
    for shard, recs in enumerate(arm.recommendations):
        write_arrays(recs, draft.rows_folder(name, RECOMMENDATIONS, shard))
    write_arrays(arm.cold_recommendations, draft.rows_folder(name, RECOMMENDATIONS, None))


def _arm_manifest(arm: ArmPlan) -> dict[str, Any]:
    model = arm.model
    return {
        "uri": model.uri, "version": model.version, "as_of": model.as_of.isoformat(),
        "uplift_measured": model.uplift_measured, "uplift_reason": model.uplift_reason,
        "rows": {channel: sum(plan.rows for plan in plans) for channel, plans in arm.plans.items()},
        "recommendations": int(sum(int(r.starts[-1]) for r in arm.recommendations)),
    }  # fmt: skip


def read_arm(
    draft: DayDraft, arm: str, model: PlannedModel, channels: list[str], shards: int
) -> ArmPlan:
    """An arm written into ``draft`` (by shard writers), memory-mapped."""
    return _read_arm(draft.folder / arm, channels, shards, model)


def commit_day(draft: DayDraft, plan: DayPlan, **manifest: Any) -> Path:
    """Write ``plan``'s members, offers, campaigns and manifest into ``draft`` (whose arms are
    written) and swap it in as its day's plan; ``manifest`` adds fields (data cut, policy, ...).
    Returns the folder written. Call it inside :func:`open_day`."""
    tmp, final, link = draft.folder, draft.final, draft.plan_dir / draft.name
    for shard, members in enumerate(plan.members):
        write_arrays(_Members(members), tmp / "members" / f"{shard:05d}")
    _write_frame(plan.offers, tmp / "offers.arrow")
    _write_frame(plan.campaigns, tmp / "campaigns.arrow")
    body = {
        "format": FORMAT,
        "plan_id": draft.plan_id,
        "day": draft.name,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **manifest,
        "channels": sorted({c for part in plan.arms.values() for c in part.plans}),
        "shards": {"count": plan.shards, "hash": SHARD_HASH},
        "models": {arm: _arm_manifest(part) for arm, part in plan.arms.items()},
        "counts": {
            "members": int(sum(m.size for m in plan.members)),
            "offers": plan.offers.height,
            "campaigns": plan.campaigns.height,
        },
    }
    (tmp / MANIFEST).write_text(json.dumps(body, indent=2, default=str) + "\n", "utf-8")
    tmp.rename(final)
    previous = day_folder(draft.plan_dir, draft.day) if link.is_symlink() else None
    swap = draft.plan_dir / f".{draft.name}.{draft.plan_id}.link"
    os.symlink(final.name, swap)
    os.replace(swap, link)  # the swap: readers see the old plan or the new one
    if previous is not None and previous != final:
        shutil.rmtree(previous, ignore_errors=True)
    return final


def write_day(plan: DayPlan, plan_dir: Path, **manifest: Any) -> Path:
    """Write ``plan`` as its day's plan in ``plan_dir``, replacing the day's plan whole and
    atomically (see the module docstring); ``manifest`` adds fields (data cut, policy, ...).
    Returns the folder written."""
    with open_day(plan_dir, plan.day) as draft:
        for name, part in plan.arms.items():
            write_arm(part, draft, name)
        return commit_day(draft, plan, **manifest)


# -- reading ------------------------------------------------------------------------------------
def _planned_model(model: dict[str, Any]) -> PlannedModel:
    return PlannedModel(
        uri=model["uri"],
        version=str(model["version"]),
        as_of=datetime.fromisoformat(model["as_of"]),
        uplift_measured=bool(model["uplift_measured"]),
        uplift_reason=str(model["uplift_reason"]),
    )


def _read_arm(folder: Path, channels: list[str], shards: int, model: PlannedModel) -> ArmPlan:
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
            read_arrays(_Members, folder / "members" / f"{s:05d}").member_ids for s in range(shards)
        ]
        arms = {
            arm: _read_arm(folder / arm, channels, shards, _planned_model(model))
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
