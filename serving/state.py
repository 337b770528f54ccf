"""The offer service: the day plans it serves, the history store and the writer.

One :class:`OfferService` per worker process, built in the app's lifespan. The models served
are the ones each day's plan was made with (``nbo plan``): a worker scores nothing and reads no
club data. Requests take a day's :class:`~nbo.plans.day.DayPlan` once and keep that
reference, so a plan replaced meanwhile never changes the answer of a request in flight.
"""

from __future__ import annotations

import gc
import logging
import threading
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from hashlib import blake2b
from typing import Any

from nbo.decisioning.explore import HashDraws
from nbo.decisioning.online import Contacts, MemberDecision, decide_member
from nbo.decisioning.policy import Policy, load_policy
from nbo.errors import NboError
from nbo.history import InteractionStore
from nbo.history.engine import to_naive_utc
from nbo.plans import DayPlan, PlanMissingError, PlannedModel, plan_command, policy_digest
from nbo.serving.arms import arm_of, delivers
from nbo.serving.plans import PlanBook, require_plan_dir
from nbo.serving.writer import DecisionWriter
from nbo.settings import Settings, require_api_keys

__all__ = ["MemberOffers", "OfferService"]

log = logging.getLogger("nbo.serving")


@dataclass(frozen=True)
class MemberOffers:
    """What one member gets: arm, cold start, the decisions, the model that made them.

    ``withheld``: what a holdout member would have got, recorded but not sent (``decisions``
    is then empty).
    """

    member_id: int
    arm: str
    cold_start: bool
    decisions: list[MemberDecision]
    day: DayPlan
    model: PlannedModel
    withheld: list[MemberDecision] = field(default_factory=list)


def _settle_plans() -> None:
    """Collect what was dropped, then take new plans' objects out of the collector's view, so
    that no request waits for a full collection to walk them."""
    gc.collect()
    gc.freeze()


class OfferService:
    """Everything a worker needs to answer requests; see the module docstring."""

    def __init__(self, settings: Settings, *, migrate: bool = True) -> None:
        require_api_keys(settings)
        require_plan_dir(settings)
        self.settings = settings
        self.policy: Policy = load_policy(settings.policy_file)
        self.plans = PlanBook(
            settings.plan_dir, policy_digest=policy_digest(self.policy), data_dir=settings.data_dir
        )
        self.store = InteractionStore(settings.database_url, migrate=migrate)
        self.writer = DecisionWriter(self.store, sync=settings.decisions_sync)
        self.closed_campaigns: frozenset[str] = frozenset()
        self.reload_lock = threading.Lock()
        self.ready = False

    # -- plans --------------------------------------------------------------------------------
    def load(self) -> None:
        """Map today's plan (an unreadable one stops the start; a missing one is logged: the
        service answers 409 until it appears) and tomorrow's if it is there."""
        today = self.today()
        try:
            self._report(self.plans.load(today))
        except PlanMissingError as exc:
            log.warning("%s", exc)
        self.plans.refresh([today + timedelta(days=1)])
        self.ready = True
        _settle_plans()

    def _report(self, plan: DayPlan) -> None:
        for arm, part in plan.arms.items():
            if not part.model.uplift_measured:
                log.warning("%s %s: uplift assumed, not measured (%s)", arm, part.model.uri,
                            part.model.uplift_reason)  # fmt: skip

    def refresh(self) -> list[date]:
        """Pick up today's and tomorrow's plans where they appeared or were replaced."""
        today = self.today()
        changed = self.plans.refresh([today, today + timedelta(days=1)])
        if changed:
            _settle_plans()
        return changed

    def reload(self) -> dict[str, str]:
        """Read today's plan again if it was replaced (and any other kept day's); the models it
        serves. Requests in flight finish on the plan they started with."""
        with self.reload_lock:
            self.refresh()
            plan = self.plans.load(self.today())  # raises what keeps today's plan from serving
            return {arm: part.model.uri for arm, part in plan.arms.items()}

    def models(self) -> dict[str, PlannedModel]:
        """The models of today's plan, if it is loaded."""
        plan = self.plans.cached(self.today())
        return {arm: part.model for arm, part in plan.arms.items()} if plan is not None else {}

    def today(self) -> date:
        return self.settings.today or datetime.now(UTC).date()

    def resolve_at(self, at: datetime | None) -> datetime:
        """``at`` as naive UTC; default: the service's today at the current time of day."""
        if at is not None:
            return to_naive_utc(at)
        now = datetime.now(UTC).replace(tzinfo=None)
        return datetime.combine(self.today(), now.time())

    def check_at(self, plan: DayPlan, at: datetime) -> None:
        """Refuse a time a served model was trained on (its data would leak into the answer)."""
        for part in plan.arms.values():
            if at.date() < part.model.as_of.date():
                raise NboError(
                    f"at {at:%Y-%m-%d} is before the served model's training date "
                    f"{part.model.as_of:%Y-%m-%d}; decisions as of then would see later data"
                )

    # -- decisions ----------------------------------------------------------------------------
    def arm(self, member_id: int, plan: DayPlan) -> str:
        s = self.settings
        challenger = s.challenger_share if "challenger" in plan.arms else 0.0
        return arm_of(member_id, salt=s.experiment_salt, holdout_share=s.holdout_share,
                      challenger_share=challenger)  # fmt: skip

    def decide(
        self,
        member_ids: list[int],
        at: datetime,
        channel: str,
        limit: int | None,
        plan: DayPlan,
    ) -> list[MemberOffers]:
        """Decide for each member in its arm from ``plan`` (the plan of ``at``'s day)."""
        if channel not in plan.arms["champion"].plans:
            command = plan_command(self.settings.data_dir, plan.day, self.settings.plan_dir)
            raise PlanMissingError(
                f"the plan for {plan.day:%Y-%m-%d} has no {channel!r} channel (planned: "
                f"{', '.join(plan.arms['champion'].plans)}); plan every channel with: {command}"
            )
        midnight = datetime.combine(at.date(), datetime.min.time())
        arms = {m: self.arm(m, plan) for m in member_ids}
        served = [m for m in member_ids if delivers(arms[m])]
        contacts = self.store.member_contacts(served, at=at, sent_before=midnight) if served else {}
        prefix = f"{at:%Y%m%d}-{channel}"
        out: list[MemberOffers] = []
        for member_id in member_ids:
            arm = arms[member_id]
            source = arm if arm in plan.arms else "champion"
            model = plan.arms[source].model
            rows_of, rows, known = plan.rows(source, channel, member_id)
            # a holdout member was sent nothing: decided on an empty contact history, no read
            history = contacts[member_id] if delivers(arm) else Contacts.none()
            decided = decide_member(
                rows_of, member_id, self.policy, at=at, contacts=history,
                rng=HashDraws(f"{prefix}-{member_id}", self.policy.seed),
                model_version=model.version,
                decision_prefix=prefix, closed_campaigns=self.closed_campaigns, rows=rows,
            )  # fmt: skip
            if limit is not None:
                decided = decided[:limit]
            decided = [
                d if len(d.decision_id) <= 64 else replace(d, decision_id=_short(d.decision_id))
                for d in decided
            ]
            cold = not known or any(d.cold_start for d in decided)
            if delivers(arm):
                out.append(MemberOffers(member_id, arm, cold, decided, plan, model))
            else:  # the answer says what it said before would-be offers were recorded
                out.append(MemberOffers(member_id, arm, not known, [], plan, model, decided))
        return out

    async def record(self, answers: list[MemberOffers], at: datetime) -> int:
        """Store the answers' decisions, the holdout's would-be decisions (not delivered) and
        arm assignments (the next group commit)."""
        decisions = [_decision_row(d, a.arm) for a in answers for d in a.decisions]
        withheld = [_decision_row(d, a.arm) for a in answers for d in a.withheld]
        assignments = [{"member_id": a.member_id, "arm": a.arm, "assigned_at": at}
                       for a in answers]  # fmt: skip
        return await self.writer.record(decisions + withheld, assignments)

    # -- budgets ------------------------------------------------------------------------------
    def refresh_budgets(self, day: date) -> None:
        """Close campaigns whose budget the day's recorded decisions have used up."""
        budgeted = {cid: rules for cid, rules in self.policy.campaigns.items() if rules.is_set}
        if not budgeted:
            return
        midnight = datetime.combine(day, datetime.min.time())
        usage = self.store.campaign_usage(list(budgeted), midnight, midnight + timedelta(days=1))
        closed = set()
        for cid, rules in budgeted.items():
            used = usage.get(cid, (0.0, 0.0, 0))
            limits = (rules.max_redemptions, rules.max_cost, rules.max_audience)
            if any(lim is not None and u >= lim for u, lim in zip(used, limits, strict=True)):
                closed.add(cid)
        self.closed_campaigns = frozenset(closed)

    async def aclose(self) -> None:
        await self.writer.aclose()
        self.store.close()


def _short(decision_id: str) -> str:
    """A long offer id's decision id, hashed to stay unique and fit the 64-character column."""
    return blake2b(decision_id.encode(), digest_size=16).hexdigest()


def _decision_row(d: MemberDecision, arm: str) -> dict[str, Any]:
    return {
        "decision_id": d.decision_id, "member_id": d.member_id, "offer_id": d.offer_id,
        "campaign_id": d.campaign_id, "channel": d.channel, "decided_at": d.decided_at,
        "send_at": d.send_at, "rank": d.rank, "p_redeem": d.p_redeem,
        "expected_value": d.expected_value, "expected_cost": d.expected_cost,
        "propensity": d.propensity, "explored": d.explored, "track": d.track, "arm": arm,
        "model_version": d.model_version, "reason": d.reason, "p_buy": d.p_buy,
        "uplift": d.uplift, "uplift_measured": d.uplift_measured, "value": d.value,
        "cost": d.cost, "incremental_value": d.incremental_value, "delivered": delivers(arm),
    }  # fmt: skip
