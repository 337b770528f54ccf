"""The offer service: models by arm, their day plans, the history store and the writer.

One :class:`OfferService` per worker process, built in the app's lifespan. Requests read
``service.models`` once and keep that reference, so a reload (which swaps the mapping) never
changes the model under a request in flight.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from hashlib import blake2b
from typing import Any

from nbo.data.io import ClubData
from nbo.decisioning.explore import HashDraws
from nbo.decisioning.online import MemberDecision, decide_member
from nbo.decisioning.policy import Policy, load_policy
from nbo.errors import NboError
from nbo.history import InteractionStore
from nbo.history.engine import to_naive_utc
from nbo.serving.arms import arm_of
from nbo.serving.plans import COLD_MEMBER, DayPlans, build_day
from nbo.serving.writer import DecisionWriter
from nbo.settings import Settings
from nbo.tracking.bundle import Bundle

__all__ = [
    "MemberOffers",
    "ModelState",
    "OfferService",
    "day_to_plan_ahead",
    "require_api_keys",
    "resolve_model",
]

log = logging.getLogger("nbo.serving")
_DAYS_KEPT = 3


def resolve_model(uri: str) -> tuple[str, Bundle]:
    """(the URI pinned to a registry version where it names an alias, the bundle)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from nbo.tracking.registry import MODEL_NAME, RegistryError, configure, load_bundle

    configure()
    pinned = uri
    if uri.startswith(f"models:/{MODEL_NAME}@"):
        alias = uri.rsplit("@", 1)[1]
        try:
            version = MlflowClient().get_model_version_by_alias(MODEL_NAME, alias)
        except MlflowException:
            raise RegistryError(f"{uri}: the registry has no alias {alias!r}") from None
        pinned = f"models:/{MODEL_NAME}/{version.version}"
    return pinned, load_bundle(pinned)


@dataclass
class ModelState:
    """One loaded model and the day plans built from it."""

    uri: str
    bundle: Bundle
    days: OrderedDict[date, DayPlans] = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def version(self) -> str:
        return self.bundle.version


@dataclass(frozen=True)
class MemberOffers:
    """What one member gets: arm, cold start, the decisions, the model that made them."""

    member_id: int
    arm: str
    cold_start: bool
    decisions: list[MemberDecision]
    day: DayPlans | None
    model: ModelState


def day_to_plan_ahead(now: datetime, lead: timedelta) -> date | None:
    """Tomorrow, once ``now`` (naive UTC) is within ``lead`` of tomorrow's midnight; else None."""
    tomorrow = now.date() + timedelta(days=1)
    return tomorrow if datetime.combine(tomorrow, time()) - now <= lead else None


def _settle_plans() -> None:
    """Collect what was dropped, then take new plans (millions of objects) out of the
    collector's view, so that no request waits for a full collection to walk them."""
    gc.collect()
    gc.freeze()


def require_api_keys(settings: Settings) -> None:
    """The service answers no request without keys: refuse to start without any."""
    if not settings.api_keys:
        raise NboError('no API keys configured: set NBO_API_KEYS, e.g. \'{"my-key": "admin"}\'')


class OfferService:
    """Everything a worker needs to answer requests; see the module docstring."""

    def __init__(self, settings: Settings, *, migrate: bool = True) -> None:
        require_api_keys(settings)
        self.settings = settings
        self.policy: Policy = load_policy(settings.policy_file)
        if (
            not (settings.data_dir / "members.parquet").exists()
            and not (settings.data_dir / "members").is_dir()
        ):
            raise NboError(f"NBO_DATA_DIR {settings.data_dir}: no club dataset there")
        self.club = ClubData(settings.data_dir)
        self.store = InteractionStore(settings.database_url, migrate=migrate)
        self.writer = DecisionWriter(self.store, sync=settings.decisions_sync)
        self.models: dict[str, ModelState] = {}
        self.closed_campaigns: frozenset[str] = frozenset()
        self.reload_lock = threading.Lock()

    # -- models -------------------------------------------------------------------------------
    def load(self, champion_uri: str | None = None) -> None:
        """Load the champion (and the challenger when it has a share), plan today, swap in."""
        pinned, bundle = resolve_model(champion_uri or self.settings.model_uri)
        models = {"champion": ModelState(pinned, bundle)}
        if self.settings.challenger_share > 0:
            try:
                c_uri, c_bundle = resolve_model(self.settings.challenger_uri)
                models["challenger"] = ModelState(c_uri, c_bundle)
            except NboError as exc:
                log.warning("no challenger (%s): its share is served by the champion", exc)
        for arm, state in models.items():
            uplift = state.bundle.uplift
            if not uplift.measured_:
                log.warning("%s %s: uplift assumed, not measured (%s)", arm, state.uri,
                            uplift.reason_)  # fmt: skip
            self.day_plans(state, self.today())
        self.models = models
        _settle_plans()  # the old models' plans go now

    def reload(self, uri: str | None = None) -> dict[str, str]:
        """Switch to the current champion (or ``uri``); requests in flight finish on the old."""
        with self.reload_lock:
            self.load(uri)
            return {arm: state.uri for arm, state in self.models.items()}

    @property
    def ready(self) -> bool:
        return "champion" in self.models

    def today(self) -> date:
        return self.settings.today or datetime.now(UTC).date()

    def resolve_at(self, at: datetime | None) -> datetime:
        """``at`` as naive UTC; default: the service's today at the current time of day."""
        if at is not None:
            return to_naive_utc(at)
        now = datetime.now(UTC).replace(tzinfo=None)
        return datetime.combine(self.today(), now.time())

    def cached(self, state: ModelState, day: date) -> DayPlans | None:
        return state.days.get(day)

    def day_plans(self, state: ModelState, day: date) -> DayPlans:
        """The day's plans, built on first use (slow: a whole-club scoring run)."""
        found = state.days.get(day)
        if found is not None:
            return found
        with state.lock:
            found = state.days.get(day)
            if found is None:
                found = build_day(state.bundle, self.club, self.policy, self.store, day)
                state.days[day] = found
                while len(state.days) > _DAYS_KEPT:
                    state.days.popitem(last=False)
        return found

    def plan_ahead(self, now: datetime) -> date | None:
        """Build the next day's plans of every model served, once ``now`` (naive UTC) is within
        ``plan_ahead_minutes`` of midnight; returns that day (None: not due, or ``today`` is
        fixed). Plans already built are kept, so calling it again costs nothing; a model
        loaded later in the evening gets its plans at the next call."""
        lead = timedelta(minutes=self.settings.plan_ahead_minutes)
        if self.settings.today is not None or not lead:
            return None
        day = day_to_plan_ahead(now, lead)
        if day is None:
            return None
        built = False
        for state in list(self.models.values()):
            if self.cached(state, day) is None:
                self.day_plans(state, day)
                built = True
        if built:
            _settle_plans()
        return day

    def check_at(self, state: ModelState, at: datetime) -> None:
        """Refuse a time the model was trained on (its data would leak into the answer)."""
        if at.date() < state.bundle.as_of.date():
            raise NboError(
                f"at {at:%Y-%m-%d} is before the served model's training date "
                f"{state.bundle.as_of:%Y-%m-%d}; decisions as of then would see later data"
            )

    # -- decisions ----------------------------------------------------------------------------
    def arm(self, member_id: int) -> str:
        s = self.settings
        challenger = s.challenger_share if "challenger" in self.models else 0.0
        return arm_of(member_id, salt=s.experiment_salt, holdout_share=s.holdout_share,
                      challenger_share=challenger)  # fmt: skip

    def decide(
        self,
        member_ids: list[int],
        at: datetime,
        channel: str,
        limit: int | None,
        days: dict[str, DayPlans],
        models: dict[str, ModelState],
    ) -> list[MemberOffers]:
        """Decide for each member in its arm (``days`` has each arm's plans for ``at``)."""
        midnight = datetime.combine(at.date(), datetime.min.time())
        arms = {m: self.arm(m) for m in member_ids}
        served = [m for m in member_ids if arms[m] != "holdout"]
        contacts = self.store.member_contacts(served, at=at, sent_before=midnight) if served else {}
        prefix = f"{at:%Y%m%d}-{channel}"
        out: list[MemberOffers] = []
        for member_id in member_ids:
            arm = arms[member_id]
            state = models.get(arm, models["champion"])
            day = days.get(arm, days["champion"])
            known = member_id in day.known_members
            if arm == "holdout":
                out.append(MemberOffers(member_id, arm, not known, [], day, state))
                continue
            plan = day.plans[channel]
            rows = plan.rows_of(member_id) if known else plan.rows_of(COLD_MEMBER)
            decided = decide_member(
                plan, member_id, self.policy, at=at, contacts=contacts[member_id],
                rng=HashDraws(f"{prefix}-{member_id}", self.policy.seed),
                model_version=state.version,
                decision_prefix=prefix, closed_campaigns=self.closed_campaigns, rows=rows,
            )  # fmt: skip
            if limit is not None:
                decided = decided[:limit]
            decided = [
                d if len(d.decision_id) <= 64 else replace(d, decision_id=_short(d.decision_id))
                for d in decided
            ]
            cold = not known or any(d.cold_start for d in decided)
            out.append(MemberOffers(member_id, arm, cold, decided, day, state))
        return out

    async def record(self, answers: list[MemberOffers], at: datetime) -> int:
        """Store the answers' decisions and arm assignments (the next group commit)."""
        decisions = [_decision_row(d, a.arm) for a in answers for d in a.decisions]
        assignments = [{"member_id": a.member_id, "arm": a.arm, "assigned_at": at}
                       for a in answers]  # fmt: skip
        return await self.writer.record(decisions, assignments)

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
        "cost": d.cost, "incremental_value": d.incremental_value,
    }  # fmt: skip
