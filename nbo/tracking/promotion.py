"""Promotion in the registry: alias ``champion`` moves to the candidate when the gate passes.

The gate (:mod:`nbo.tracking.gate`) only sees numbers measured on one window for both models:

- the like-for-like numbers logged on the candidate's run against the current champion's
  version (:func:`record_comparison`; ``nbo promote`` and ``nbo retrain`` compute them), or
- both versions' holdout metrics when they were trained as of the same day (same holdout).

Anything else raises :class:`NotComparableError` rather than compare numbers from different
windows. The verdict, with every number, is written to the candidate's run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime

from mlflow import MlflowClient
from mlflow.entities import Metric, RunTag
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from nbo.tracking.gate import Check, Window, checks, lfl_key, passes
from nbo.tracking.registry import MODEL_NAME, RegistryError

__all__ = [
    "NotComparableError",
    "Promotion",
    "WindowNumbers",
    "comparable_windows",
    "current_versions",
    "promote",
    "record_comparison",
    "run_of",
]

HOLDOUT = "holdout_"
VERDICT_FILE = "promotion.json"


class NotComparableError(RegistryError):
    """Candidate and champion have no numbers measured on the same window."""


@dataclass(frozen=True)
class Promotion:
    """What the gate decided and why (one line per metric and window in ``reasons``)."""

    promoted: bool
    candidate: str
    champion: str | None
    reasons: list[str]
    checks: list[Check] = field(default_factory=list)


@dataclass(frozen=True)
class WindowNumbers:
    """Both models' numbers on one like-for-like window, and how each model was obtained."""

    days: int
    cut: datetime
    candidate: Mapping[str, float]
    champion: Mapping[str, float]
    champion_model: str


def current_versions(
    client: MlflowClient | None = None,
) -> tuple[ModelVersion, ModelVersion | None]:
    """The versions behind aliases ``candidate`` and ``champion`` (None: no champion yet)."""
    client = client or MlflowClient()
    try:
        candidate = client.get_model_version_by_alias(MODEL_NAME, "candidate")
    except MlflowException:
        raise RegistryError(
            "no model version has alias 'candidate'; run `nbo train` first"
        ) from None
    try:
        champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
    except MlflowException:
        champion = None
    return candidate, champion


def run_of(version: ModelVersion) -> str:
    """The id of the training run that logged ``version``."""
    if version.run_id is None:
        raise RegistryError(f"model version {version.version} was registered without a run")
    return str(version.run_id)


def record_comparison(run_id: str, champion: str, windows: Sequence[WindowNumbers]) -> None:
    """Log like-for-like numbers to the candidate's run: ``lfl_{days}d_{side}_{metric}``
    metrics (NaN included, so a later comparison overwrites every key) and ``lfl.*`` tags
    (champion version, windows, cut dates, how the champion was scored)."""
    client = MlflowClient()
    tags = client.get_run(run_id).data.tags
    step = int(tags.get("lfl.round", "0")) + 1
    now = int(time.time() * 1000)
    metrics = [
        Metric(lfl_key(numbers.days, side, name), float(value), now, step)
        for numbers in windows
        for side, values in (("candidate", numbers.candidate), ("champion", numbers.champion))
        for name, value in values.items()
    ]
    new_tags = {
        "lfl.round": str(step),
        "lfl.champion_version": champion,
        "lfl.windows": ",".join(str(n.days) for n in windows),
    }
    for numbers in windows:
        new_tags[f"lfl.cut_{numbers.days}d"] = numbers.cut.date().isoformat()
        new_tags[f"lfl.champion_model_{numbers.days}d"] = numbers.champion_model
    client.log_batch(run_id, metrics=metrics, tags=[RunTag(k, v) for k, v in new_tags.items()])


def _window(metrics: Mapping[str, float], days: int, name: str) -> dict[str, float]:
    prefix = lfl_key(days, name, "")
    return {k.removeprefix(prefix): v for k, v in metrics.items() if k.startswith(prefix)}


def comparable_windows(
    candidate: ModelVersion, champion: ModelVersion, client: MlflowClient | None = None
) -> list[Window]:
    """The windows on which both versions were measured alike (empty: none yet)."""
    client = client or MlflowClient()
    run = client.get_run(run_of(candidate)).data
    if run.tags.get("lfl.champion_version") == str(champion.version):
        days = [int(d) for d in run.tags.get("lfl.windows", "").split(",") if d]
        return [
            Window(
                f"{d}d", _window(run.metrics, d, "candidate"), _window(run.metrics, d, "champion")
            )
            for d in days
        ]
    as_of = candidate.tags.get("as_of")
    if as_of is None or as_of != champion.tags.get("as_of"):
        return []
    new, old = run.metrics, client.get_run(run_of(champion)).data.metrics
    if any(m.get(f"{HOLDOUT}members", math.nan) == 0 for m in (new, old)):
        return []  # trained on everything: no holdout to compare
    return [
        Window(
            f"holdout after {as_of}",
            {k.removeprefix(HOLDOUT): v for k, v in new.items() if k.startswith(HOLDOUT)},
            {k.removeprefix(HOLDOUT): v for k, v in old.items() if k.startswith(HOLDOUT)},
        )
    ]


def promote(
    *, force: bool = False, tolerance: float = 0.0, gate: Mapping[str, bool] | None = None
) -> Promotion:
    """Move ``champion`` to the candidate if no gate metric is worse on any shared window.

    ``tolerance`` is the relative slack allowed (0.01 = may be 1 % worse); ``force`` skips the
    gate. Raises :class:`NotComparableError` when the two were never measured alike.
    """
    client = MlflowClient()
    candidate, champion = current_versions(client)
    found: list[Check] = []
    if champion is None or champion.version == candidate.version:
        ok = True
        reasons = ["no champion yet" if champion is None else "candidate is the champion"]
    elif force:
        ok, reasons = True, ["forced: gate skipped"]
    else:
        windows = comparable_windows(candidate, champion, client)
        if not windows:
            raise NotComparableError(
                f"candidate version {candidate.version} (as of {candidate.tags.get('as_of')}) "
                f"and champion version {champion.version} (as of {champion.tags.get('as_of')}) "
                "were not measured on the same window; compare them like for like with "
                "`nbo promote --data DIR` (or retrain with `nbo retrain`)"
            )
        found = checks(windows, tolerance=tolerance, gate=gate)
        ok = passes(found)
        reasons = [str(check) for check in found]
        if not any(check.verdict != "n/a" for check in found):
            reasons.append("nothing to compare in the windows: the champion stays")
    if ok:
        client.set_registered_model_alias(MODEL_NAME, "champion", candidate.version)
    outcome = Promotion(
        ok,
        str(candidate.version),
        None if champion is None else str(champion.version),
        reasons,
        found,
    )
    _record_verdict(client, run_of(candidate), outcome, tolerance)
    return outcome


def _record_verdict(
    client: MlflowClient, run_id: str, outcome: Promotion, tolerance: float
) -> None:
    verdict = "promoted" if outcome.promoted else f"kept champion {outcome.champion}"
    client.set_tag(run_id, "promotion.verdict", verdict)
    client.set_tag(run_id, "promotion.champion_version", str(outcome.champion))
    client.log_dict(
        run_id,
        {"verdict": verdict, "tolerance": tolerance} | asdict(outcome),
        VERDICT_FILE,
    )
