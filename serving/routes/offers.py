"""Decisions: one member's offers, or a batch of members' (``reader`` role)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.exc import SQLAlchemyError

from nbo.memberkey import MAX_KEY_LENGTH, member_id_of
from nbo.plans import DayPlan
from nbo.serving.bodies import StrictJSONRoute
from nbo.serving.deps import ReaderService
from nbo.serving.metrics import DECISIONS
from nbo.serving.schemas import (
    BatchOffersRequest,
    BatchOffersResponse,
    MemberOffersResponse,
    Moment,
    Problem,
)
from nbo.serving.state import MemberOffers, OfferService

__all__ = [
    "BODY_ERRORS",
    "CHANNEL_MAX_LENGTH",
    "DEFAULT_CHANNEL",
    "LIMIT_MAX",
    "REFUSED",
    "ROUTE",
    "member_ids",
    "member_offers_body",
    "plan_for",
    "router",
    "shown_key",
]

router = APIRouter(prefix="/v1", tags=["offers"], route_class=StrictJSONRoute)
REFUSED = (
    "The request does not fit this schema (detail: the list of field errors, each with its "
    "`loc`; a body that is not standard JSON — NaN, Infinity, a number beyond a double, bytes "
    "that are not text — is a `json_invalid` error at its position), or it fits but a rule the "
    "schema cannot state refuses it (detail: one sentence): `at` before the served model's "
    "training date (a decision as of then would see later data), a channel the policy does not "
    "know, a member key of the other kind than the club's (text keys as strings, member numbers "
    "as whole numbers)."
)
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "no API key, or one not in force"},
    403: {"model": Problem, "description": "the key's role does not allow this route"},
    409: {"model": Problem, "description": "no plan for the day: the detail names the command"},
    422: {"model": Problem, "description": REFUSED},
    429: {"model": Problem, "description": "the key's rate limit is spent: wait Retry-After s"},
    503: {"model": Problem, "description": "starting, or the history database is unavailable"},
}
"""Every answer but the 200 that a route of the API can give, each with its body (the
schema is the whole contract: ``tests/serving/test_schema.py`` runs all of schemathesis'
checks against it). The rules of the 422 that the schema cannot state are answered, not
hidden: the earliest ``at`` depends on the model being served, which a reload changes while
the schema stays, and the channels and the kind of member key on the policy and the club."""
BODY_ERRORS = ERRORS | {413: {"model": Problem, "description": "the body is over the limit"}}
"""For routes with a JSON body (``NBO_MAX_BODY_BYTES``)."""
ROUTE = "/v1/members/{member_id}/offers"
CHANNEL_MAX_LENGTH = 32
DEFAULT_CHANNEL = "email"
LIMIT_MAX = 50
MemberPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_KEY_LENGTH,
        description="the club's member number, or its member key where the club's keys are text",
    ),
]
AtQuery = Annotated[
    Moment | None, Query(description="decision time (ISO 8601); default: the service's now")
]


async def plan_for(service: OfferService, when: datetime) -> DayPlan:
    """The plan of ``when``'s day (mapped from the plan directory if new); 409 without one."""
    plan = service.plans.cached(when.date())
    if plan is None:
        today = service.plans.cached(service.today())
        if today is not None:  # a day before the served models' training: 422, not a plan
            service.check_at(today, when)
        plan = await run_in_threadpool(service.plans.get, when.date())
    service.check_at(plan, when)
    return plan


def member_ids(plan: DayPlan, keys: Sequence[int | str], what: str) -> list[int]:
    """Internal ids of the members asked for (422 naming a key of the wrong kind)."""
    many = len(keys) > 1
    return [
        member_id_of(k, keyed=plan.keyed, what=f"{what}[{i}]" if many else what)
        for i, k in enumerate(keys)
    ]


def shown_key(plan: DayPlan, key: int | str, member_id: int) -> int | str:
    """What an answer names the member by: the key as asked, or the member number."""
    return str(key) if plan.keyed else member_id


def _response(
    answer: MemberOffers, when: datetime, channel: str, key: int | str
) -> MemberOffersResponse:
    info = answer.day.offer_info
    offers = []
    for d in answer.decisions:
        meta = info.get(d.offer_id, {})
        offers.append(
            {
                "decision_id": d.decision_id,
                "rank": d.rank,
                "offer_id": d.offer_id,
                "campaign_id": d.campaign_id,
                "campaign_type": meta.get("campaign_type"),
                "category": meta.get("category"),
                "product": meta.get("product"),
                "valid_from": meta.get("valid_from"),
                "valid_until": meta.get("valid_until"),
                "p_redeem": d.p_redeem,
                "p_buy": d.p_buy,
                "uplift": d.uplift,
                "uplift_measured": d.uplift_measured,
                "incremental_value": d.incremental_value,
                "expected_value": d.expected_value,
                "expected_cost": d.expected_cost,
                "send_at": d.send_at,
                "reason": d.reason,
                "track": d.track,
                "explored": d.explored,
                "propensity": d.propensity,
            }
        )
    return MemberOffersResponse.model_validate(
        {
            "member_id": shown_key(answer.day, key, answer.member_id),
            "at": when,
            "channel": channel,
            "arm": answer.arm,
            "cold_start": answer.cold_start,
            "model_version": answer.model.version,
            "offers": offers,
        }
    )


async def _decide(
    service: OfferService,
    keys: Sequence[int | str],
    at: datetime | None,
    channel: str,
    limit: int | None,
    *,
    in_thread: bool,
) -> tuple[datetime, list[MemberOffers]]:
    when = service.resolve_at(at)
    service.policy.check_channel(channel)
    plan = await plan_for(service, when)
    args = (
        member_ids(plan, keys, "member_ids" if in_thread else "member"),
        when,
        channel,
        limit,
        plan,
    )
    answers = await run_in_threadpool(service.decide, *args) if in_thread else service.decide(*args)
    try:
        await service.record(answers, when)
    except SQLAlchemyError as exc:  # nothing is answered that was not recorded
        raise HTTPException(503, "the decisions could not be recorded; try again") from exc
    for answer in answers:
        for d in answer.decisions:
            DECISIONS.labels(d.offer_id, answer.arm).inc()
    return when, answers


async def member_offers_body(
    service: OfferService, key: str, at: datetime | None, channel: str, limit: int | None
) -> bytes:
    """One member's answer as JSON, its decisions recorded (the route's and the fast path's)."""
    # one member's decision costs well under a millisecond: no thread hop
    when, answers = await _decide(service, [key], at, channel, limit, in_thread=False)
    return _response(answers[0], when, channel, key).model_dump_json().encode()


@router.get(ROUTE.removeprefix("/v1"), response_model=MemberOffersResponse, responses=ERRORS)
async def member_offers(
    member_id: MemberPath,
    service: ReaderService,
    at: AtQuery = None,
    channel: Annotated[
        str, Query(max_length=CHANNEL_MAX_LENGTH, description="a channel of the policy")
    ] = DEFAULT_CHANNEL,
    limit: Annotated[int | None, Query(ge=1, le=LIMIT_MAX, description="at most this many")] = None,
) -> Response:
    """The member's ranked offers now (or at ``at``), each recorded in the history.

    Asking again on the same day gives the same answer (and records nothing twice) unless an
    event — a redemption, a dismissal, an exposure — changed what the contact policy allows.
    """
    body = await member_offers_body(service, member_id, at, channel, limit)
    return Response(body, media_type="application/json")


@router.post("/offers/batch", response_model=BatchOffersResponse, responses=BODY_ERRORS)
async def batch_offers(body: BatchOffersRequest, service: ReaderService) -> Response:
    """The same for up to 1,000 members in one call (results in request order)."""
    when, answers = await _decide(
        service, body.member_ids, body.at, body.channel, body.limit, in_thread=True
    )
    results = [
        _response(a, when, body.channel, key)
        for a, key in zip(answers, body.member_ids, strict=True)
    ]
    return Response(
        BatchOffersResponse(results=results).model_dump_json(), media_type="application/json"
    )
