"""Writing a day's plan (the layout and the atomic swap: :mod:`nbo.plans.store`).

One process writes a whole plan with :func:`write_day`; a run on several processes (``nbo plan
--engine ray``) opens a draft (:func:`open_day`), lets each shard's writer put its files in
place atomically (:func:`write_rows`, so a retried writer replaces them whole), and commits the
day from one process (:func:`commit_day`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl

from nbo.plans.arrays import write_arrays
from nbo.plans.day import ArmPlan, DayPlan, PlannedModel
from nbo.plans.shards import SHARD_HASH
from nbo.plans.store import (
    FORMAT,
    MANIFEST,
    RECOMMENDATIONS,
    PlanError,
    PlannedMembers,
    day_folder,
    read_arm_folder,
)

__all__ = ["DayDraft", "commit_day", "open_day", "read_arm", "write_arm", "write_day", "write_rows"]


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
    return read_arm_folder(draft.folder / arm, channels, shards, model)


def commit_day(draft: DayDraft, plan: DayPlan, **manifest: Any) -> Path:
    """Write ``plan``'s members, offers, campaigns and manifest into ``draft`` (whose arms are
    written) and swap it in as its day's plan; ``manifest`` adds fields (data cut, policy, ...).
    Returns the folder written. Call it inside :func:`open_day`."""
    tmp, final, link = draft.folder, draft.final, draft.plan_dir / draft.name
    for shard, members in enumerate(plan.members):
        write_arrays(PlannedMembers(members), tmp / "members" / f"{shard:05d}")
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
