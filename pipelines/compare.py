"""Like-for-like comparison of a candidate recipe with the champion on the latest windows.

A model trained on everything has no holdout, and two models trained as of different days
have holdouts on different windows, so neither's own numbers can be compared. Instead, for
each window of ``w`` days (``evaluation.windows_days``, 14 and 28 by default) the cut is
``T = end - w``, where ``end`` is the candidate's training date or the day after the last
receipt, whichever is earlier:

- the candidate's recipe (its training configuration) is fit as of ``T``;
- the champion is scored as deployed if it was trained as of ``T`` or before, otherwise its
  own recipe is refit as of ``T`` (a recipe fit twice on the same cut is fit once);
- both are evaluated on ``[T, end)`` with the same members, pairs and truth
  (:func:`nbo.evaluation.window.evaluate_window`).

Nothing is fit or scored at ``T`` with data from on or after ``T``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from nbo.data.io import ClubData
from nbo.errors import EvaluationError
from nbo.evaluation.window import evaluate_window
from nbo.pipelines.config import TrainConfig
from nbo.pipelines.train import train_bundle
from nbo.tracking.bundle import Bundle
from nbo.tracking.promotion import WindowNumbers

__all__ = ["Contender", "data_end", "like_for_like"]

OnStage = Callable[[str], None]


@dataclass(frozen=True)
class Contender:
    """A model in the comparison: its recipe and, when it is deployed, its bundle."""

    config: TrainConfig
    bundle: Bundle | None = None


def _receipts(club: ClubData) -> tuple[datetime, datetime]:
    first, last = (
        club.transactions.select(
            pl.col("ts").min().alias("first"), pl.col("ts").max().alias("last")
        )
        .collect()
        .row(0)
    )
    if first is None:
        raise EvaluationError(f"{club.root}: the club has no receipts to evaluate on")
    return first, last


def data_end(club: ClubData) -> datetime:
    """Midnight of the day after the club's last receipt: a model as of it has seen everything."""
    last = _receipts(club)[1]
    return datetime.combine(last.date() + timedelta(days=1), datetime.min.time())


def like_for_like(
    club: ClubData,
    candidate: Contender,
    champion: Contender,
    *,
    end: datetime,
    windows: Sequence[int] | None = None,
    on_stage: OnStage | None = None,
) -> list[WindowNumbers]:
    """Candidate and champion on each window ending at ``end`` (see the module docstring).

    ``windows`` (days) defaults to the candidate's ``evaluation.windows_days``; the
    candidate's ``evaluation.max_members`` samples the members of every window.
    """
    first = _receipts(club)[0]
    end = min(end, data_end(club))
    fitted: dict[tuple[str, datetime], Bundle] = {}

    def fit(config: TrainConfig, cut: datetime) -> Bundle:
        key = (config.model_dump_json(), cut)
        if key not in fitted:
            if on_stage:
                on_stage(f"fitting as of {cut:%Y-%m-%d}")
            fitted[key] = train_bundle(club, cut, config=config)
        return fitted[key]

    out: list[WindowNumbers] = []
    for days in sorted(set(windows or candidate.config.evaluation.windows_days)):
        cut = end - timedelta(days=days)
        if cut <= first:
            raise EvaluationError(
                f"{club.root}: receipts from {first:%Y-%m-%d} to {end:%Y-%m-%d} leave no history "
                f"before a {days}-day evaluation window (evaluation.windows_days)"
            )
        if champion.bundle is not None and champion.bundle.as_of <= cut:
            deployed = champion.bundle
            how = f"as deployed (trained as of {deployed.as_of:%Y-%m-%d})"
        else:
            deployed = fit(champion.config, cut)
            how = f"its recipe refit as of {cut:%Y-%m-%d}"
        challenger = fit(candidate.config, cut)
        if on_stage:
            on_stage(f"evaluating the {days}-day window from {cut:%Y-%m-%d}")
        numbers = evaluate_window(
            {"candidate": challenger, "champion": deployed},
            club,
            cut,
            days,
            max_members=candidate.config.evaluation.max_members,
        )
        out.append(WindowNumbers(days, cut, numbers["candidate"], numbers["champion"], how))
    return out
