"""The day plans a worker serves, read from the plan directory ``nbo plan`` writes.

A day's plan is memory-mapped on first use (:func:`nbo.plans.store.read_day`: its arrays are
views of the files, shared between workers), checked against the service's policy, and kept
for a few days. :meth:`PlanBook.refresh` picks up a plan that appeared or was replaced (the
day's link points to a new folder); the worker calls it every few seconds and on
``/admin/reload``. No worker plans: a day without a plan is a :class:`PlanMissingError`, which
names the command that makes it.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path

from nbo.errors import NboError
from nbo.plans import DayPlan, PlanError, PlanMissingError, plan_command, read_day
from nbo.plans.store import day_folder, planned_days, read_manifest
from nbo.settings import Settings

__all__ = ["DAYS_KEPT", "PlanBook", "PlanError", "PlanMissingError", "require_plan_dir"]

log = logging.getLogger("nbo.serving")
DAYS_KEPT = 3


def require_plan_dir(settings: Settings) -> None:
    """Refuse to start without a plan directory (``nbo plan --out`` makes it)."""
    if not settings.plan_dir.is_dir():
        day = settings.today or datetime.now(UTC).date()
        raise NboError(
            f"NBO_PLAN_DIR {settings.plan_dir}: no plan directory there; make the day's plan "
            f"with: {plan_command(settings.data_dir, day, settings.plan_dir)}"
        )


class PlanBook:
    """A worker's day plans: loaded on first use, at most :data:`DAYS_KEPT`, newest kept."""

    def __init__(self, plan_dir: Path, *, policy_digest: str, data_dir: Path | str) -> None:
        self.plan_dir = plan_dir
        self.policy_digest = policy_digest
        self.data_dir = data_dir
        self._days: OrderedDict[date, tuple[Path, DayPlan]] = OrderedDict()
        self._lock = threading.Lock()

    def cached(self, day: date) -> DayPlan | None:
        """The day's plan if it is loaded (no disk access)."""
        found = self._days.get(day)
        return found[1] if found is not None else None

    def get(self, day: date) -> DayPlan:
        """The day's plan, loaded from the plan directory if not yet (raises PlanError)."""
        found = self.cached(day)
        return found if found is not None else self.load(day)

    def load(self, day: date) -> DayPlan:
        """Read the day's current plan from disk and keep it (replacing an older one)."""
        with self._lock:
            folder = day_folder(self.plan_dir, day)
            kept = self._days.get(day)
            if kept is not None and kept[0] == folder:
                return kept[1]
            plan = read_day(self.plan_dir, day, data_dir=self.data_dir)
            self._check(plan)
            # the folder resolved before reading: a plan replaced meanwhile is read again later
            self._days[day] = (folder or self.plan_dir, plan)
            self._days.move_to_end(day)
            while len(self._days) > DAYS_KEPT:
                self._days.popitem(last=False)
            return plan

    def _check(self, plan: DayPlan) -> None:
        planned = plan.manifest.get("policy", {}).get("digest")
        if planned != self.policy_digest:
            command = plan_command(self.data_dir, plan.day, self.plan_dir)
            raise PlanError(
                f"the plan for {plan.day:%Y-%m-%d} was made under another policy than the "
                f"service's (NBO_POLICY_FILE); plan the day again with the service's policy: "
                f"{command} --policy FILE"
            )

    def refresh(self, days: Iterable[date]) -> list[date]:
        """Load the plans of ``days`` (and of the days kept) that appeared or were replaced since
        they were read; returns those days. A plan that fails to load is logged and skipped:
        the one kept (if any) goes on serving."""
        changed = []
        for day in sorted({*days, *self._days}):
            folder = day_folder(self.plan_dir, day)
            kept = self._days.get(day)
            if folder is None or (kept is not None and kept[0] == folder):
                continue
            try:
                self.load(day)
            except PlanError as exc:
                log.error("%s", exc)
                continue
            log.info("serving the plan for %s from %s", day, folder)
            changed.append(day)
        return changed

    def clear(self) -> None:
        with self._lock:
            self._days.clear()

    @property
    def days(self) -> list[date]:
        return list(self._days)

    @property
    def keyed(self) -> bool:
        """Whether the club names members by text keys (the newest plan loaded, or on disk)."""
        newest = next(reversed(self._days.values()), None)
        if newest is not None:
            return newest[1].keyed
        days = planned_days(self.plan_dir)
        manifest = read_manifest(self.plan_dir, days[-1]) if days else None
        return manifest is not None and manifest.get("member_keys") == "string"
