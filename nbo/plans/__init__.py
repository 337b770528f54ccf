"""Day plans: what ``nbo plan`` computes once a day and the offer service memory-maps.

:mod:`~nbo.plans.day` is the plan in memory, :mod:`~nbo.plans.store` on disk (atomic,
sharded by member, a manifest), :mod:`~nbo.plans.arrays` the generic Arrow persistence of a
dataclass of arrays, :mod:`~nbo.plans.shards` the member hash. Making a plan is a pipeline
(:mod:`nbo.pipelines.plan`); nothing here scores or reads club data.
"""

from nbo.plans.day import (
    COLD_MEMBER,
    MAX_RECOMMENDATIONS,
    ArmPlan,
    DayPlan,
    MemberRows,
    PlannedModel,
)
from nbo.plans.store import (
    PlanError,
    PlanMissingError,
    plan_command,
    planned_days,
    policy_digest,
    read_day,
    read_manifest,
)
from nbo.plans.writer import write_day

__all__ = [
    "COLD_MEMBER",
    "MAX_RECOMMENDATIONS",
    "ArmPlan",
    "DayPlan",
    "MemberRows",
    "PlanError",
    "PlanMissingError",
    "PlannedModel",
    "plan_command",
    "planned_days",
    "policy_digest",
    "read_day",
    "read_manifest",
    "write_day",
]
