"""What ``nbo evaluate`` reports about decisions: the routine share per arbitration objective.

The bundle decides at the back-test date, as ``nbo decide`` would (the club's offers active that
day, channel email, no contact history, nothing recorded), once with the policy as given and
once per other objective (``revenue`` is the arbitration before incremental margin). For each
set of decisions, :mod:`nbo.evaluation.routine` counts the weeks of the last 8 in which the
member bought the offer's products: a decision with 4 or more mostly pays for a routine purchase.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from rich.table import Table

from nbo.decisioning.policy import Objective, Policy
from nbo.evaluation.routine import RoutineSummary, routine_summary, routine_weeks
from nbo.features.history import History

if TYPE_CHECKING:
    from nbo.data.io import ClubData
    from nbo.tracking.bundle import Bundle

__all__ = ["COMPARED", "routine_by_objective", "routine_metrics", "routine_table"]

COMPARED: tuple[Objective, ...] = ("revenue",)  # besides the policy's own objective


def routine_by_objective(
    club: ClubData,
    bundle: Bundle,
    policy: Policy,
    at: datetime,
    *,
    compared: tuple[Objective, ...] = COMPARED,
    channel: str = "email",
) -> dict[Objective, RoutineSummary]:
    """The routine share of the decisions at ``at``, the policy's objective first."""
    from nbo.pipelines.decide import decide_batch

    history = History.at(club, at)
    objectives = dict.fromkeys((policy.economics.objective, *compared))
    summaries: dict[Objective, RoutineSummary] = {}
    for objective in objectives:
        # a fixed run id: the exploration draws, and so the report, repeat
        batch = decide_batch(
            club, bundle, policy.with_objective(objective), at=at, channel=channel,
            run_id=f"evaluate-{at:%Y%m%d}",
        )  # fmt: skip
        summaries[objective] = routine_summary(routine_weeks(batch.result.decisions, history))
    return summaries


def routine_metrics(summaries: dict[Objective, RoutineSummary]) -> dict[str, float]:
    """``decisions.routine_share`` and counts for the first objective, ``…_<objective>`` after."""
    metrics: dict[str, float] = {}
    for k, (objective, summary) in enumerate(summaries.items()):
        metrics |= summary.metrics("decisions.", "" if k == 0 else f"_{objective}")
    return metrics


def routine_table(summaries: dict[Objective, RoutineSummary], as_of: str) -> Table:
    """Per objective (a column, the policy's first): decisions, members, routine share, weeks."""
    first = next(iter(summaries.values()), None)
    threshold = f"≥ {first.min_weeks} of the last {first.weeks}" if first is not None else ""
    table = Table(
        title=f"Decisions at {as_of} per objective (the policy's first): routine share = offers "
        f"on products the member bought in {threshold} weeks",
        title_justify="left",
    )
    table.add_column("")
    for objective in summaries:
        table.add_column(objective, justify="right")
    values = list(summaries.values())
    table.add_row("decisions", *(f"{s.decisions:,}" for s in values))
    table.add_row("members", *(f"{s.members:,}" for s in values))
    table.add_row("routine share", *(f"{s.share:.1%}" if s.decisions else "-" for s in values))
    table.add_row(
        "95 % interval (members)",
        *(f"{s.share_low:.1%}–{s.share_high:.1%}" if s.share_low == s.share_low else "-"
          for s in values),
    )  # fmt: skip
    for span in first.distribution if first is not None else []:
        table.add_row(
            f"{RoutineSummary.label(span)} weeks",
            *(f"{s.distribution.get(span, 0):,}" for s in values),
        )
    return table
