"""The promotion gate: a candidate's numbers against the champion's, measured on one window.

Numbers are only ever compared in pairs measured on the same evaluation window, members and
pairs, the same way (a :class:`Window`). Two kinds of window exist: the like-for-like windows
that ``nbo promote`` / ``nbo retrain`` evaluate and log on the candidate's run (metrics named
by :func:`lfl_key`, e.g. ``lfl_14d_candidate_ndcg_at_10``), and the holdout after a shared
training date (two versions trained as of the same day were back-tested on the same holdout).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "GATE_METRICS",
    "Check",
    "Window",
    "checks",
    "lfl_key",
    "lfl_windows",
    "passes",
]

# metric -> True if higher is better; the gate compares these in every window
GATE_METRICS: dict[str, bool] = {
    "recall_at_10": True,
    "ndcg_at_10": True,
    "offer_auc": True,
    "visit_mae": False,
}
_LFL = re.compile(r"^lfl_(\d+)d_candidate_(.+)$")


def lfl_key(days: int, side: str, metric: str) -> str:
    """The run metric holding ``side``'s (candidate, champion) ``metric`` on the ``days`` window."""
    return f"lfl_{days}d_{side}_{metric}"


def lfl_windows(metrics: Mapping[str, float]) -> list[int]:
    """The like-for-like windows (days) whose numbers a run's metrics hold, shortest first."""
    return sorted({int(m.group(1)) for key in metrics if (m := _LFL.match(key))})


@dataclass(frozen=True)
class Window:
    """Both models' metrics measured on one window (``name``: "14d", "holdout", ...)."""

    name: str
    candidate: Mapping[str, float]
    champion: Mapping[str, float]


@dataclass(frozen=True)
class Check:
    """One metric on one window: the two numbers and the verdict.

    ``verdict`` is "ok", "worse", or "n/a" when neither model has a number (no pairs or
    members of that kind in the window).
    """

    window: str
    metric: str
    candidate: float
    champion: float
    verdict: str

    def __str__(self) -> str:
        if self.verdict == "n/a":
            return f"{self.window} {self.metric}: no data in the window (not compared)"
        if self.verdict == "missing":
            return f"{self.window} {self.metric}: champion has it, candidate does not (worse)"
        return (
            f"{self.window} {self.metric}: candidate {self.candidate:.4f} vs champion "
            f"{self.champion:.4f} ({self.verdict})"
        )


def _number(values: Mapping[str, float], key: str) -> float:
    value = values.get(key)
    return float("nan") if value is None else float(value)


def checks(
    windows: Iterable[Window],
    *,
    tolerance: float = 0.0,
    gate: Mapping[str, bool] | None = None,
) -> list[Check]:
    """Every gate metric on every window, with its verdict.

    ``tolerance`` is the relative slack allowed (0.01: the candidate may be 1 % worse).
    """
    out: list[Check] = []
    for window in windows:
        for metric, higher_better in (GATE_METRICS if gate is None else gate).items():
            new, old = _number(window.candidate, metric), _number(window.champion, metric)
            if math.isnan(old):
                verdict = "n/a" if math.isnan(new) else "ok"
            elif math.isnan(new):
                verdict = "missing"
            else:
                slack = abs(old) * tolerance
                worse = new < old - slack if higher_better else new > old + slack
                verdict = "worse" if worse else "ok"
            out.append(Check(window.name, metric, new, old, verdict))
    return out


def passes(found: Iterable[Check]) -> bool:
    """No metric is worse (or missing) and at least one was compared."""
    found = list(found)
    compared = [c for c in found if c.verdict != "n/a"]
    return bool(compared) and all(c.verdict == "ok" for c in compared)
