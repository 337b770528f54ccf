"""The offers a worker knows, for refusing events about offers that do not exist.

An offer is known when a day's plan in the plan directory lists it: every plan carries the
offers active on its day (``offers.arrow``), so the plans kept cover each offer the club ran
over its validity window. The ids are read once per plan folder (a few kilobytes each) and
the folders are looked at again only when an event names an offer not yet seen, so a batch of
known offers costs a set lookup per event.

An offer that has expired stays known: events about it keep arriving after its window (a late
exposure report, a redemption cleared days later, a dismissal) and they are true history, which
the contact rules and the models read by the event's own ``ts``. What keeps the history clean
of the impossible is the future-skew check on ``ts`` (:mod:`nbo.serving.routes.events`), not
the offer's window. Events about offers of plans deleted from the plan directory are refused, so
keep the plans of the period events may arrive about.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

import polars as pl

from nbo.plans.store import day_folder, planned_days

__all__ = ["OfferBook"]

_OFFERS_FILE = "offers.arrow"


class OfferBook:
    """The offer ids of every plan in ``plan_dir`` (see the module docstring)."""

    def __init__(self, plan_dir: Path) -> None:
        self.plan_dir = plan_dir
        self._folders: set[Path] = set()
        self._offer_ids: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def unknown(self, offer_ids: Iterable[str]) -> set[str]:
        """The ids among ``offer_ids`` that no plan lists."""
        missing = set(offer_ids) - self._offer_ids
        if missing:
            self._read_new_plans()
            missing -= self._offer_ids
        return missing

    def offer_ids(self) -> frozenset[str]:
        """Every offer id the plans list (read from the plan directory as it is now)."""
        self._read_new_plans()
        return self._offer_ids

    def _read_new_plans(self) -> None:
        with self._lock:
            found: set[str] = set()
            for day in planned_days(self.plan_dir):
                folder = day_folder(self.plan_dir, day)
                if folder is None or folder in self._folders:
                    continue
                offers = pl.read_ipc(folder / _OFFERS_FILE, columns=["offer_id"])
                found.update(str(o) for o in offers["offer_id"].to_list())
                self._folders.add(folder)
            if found:
                self._offer_ids = self._offer_ids | found
