"""Feedback: exposure, click, redemption and dismissal events (``writer`` role).

Events cannot poison the history: a batch is refused whole (422, each bad event named by its
index) when an event is dated more than ``NBO_EVENT_MAX_FUTURE_SECONDS`` after the service's
now (with ``NBO_TODAY`` set, a replay, the end of that day) or names an offer no plan lists
(:mod:`nbo.serving.offerbook`); an ``event_id`` already recorded with another payload is a 409
naming it. Nothing of a refused batch is written.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from starlette.datastructures import State

from nbo.history.engine import to_naive_utc
from nbo.history.events import EventConflictError
from nbo.memberkey import member_id_of
from nbo.serving.bodies import StrictJSONRoute
from nbo.serving.deps import WriterService
from nbo.serving.metrics import EVENTS
from nbo.serving.offerbook import OfferBook
from nbo.serving.routes.offers import ERRORS
from nbo.serving.schemas import EventIn, EventsAck, EventsRequest, Problem
from nbo.serving.state import OfferService

__all__ = ["refusals", "router"]

router = APIRouter(prefix="/v1", tags=["events"], route_class=StrictJSONRoute)
_RESPONSES = ERRORS | {
    409: {"model": Problem, "description": "an event_id already recorded with another payload"},
    413: {"model": Problem},
    422: {"model": Problem, "description": "invalid events, each named by its index"},
}


def _offer_book(state: State) -> OfferBook:
    found: OfferBook | None = getattr(state, "offer_book", None)
    if found is None or found.plan_dir != state.settings.plan_dir:
        found = state.offer_book = OfferBook(state.settings.plan_dir)
    return found


def refusals(events: list[EventIn], service: OfferService, book: OfferBook) -> list[dict[str, Any]]:
    """What is wrong with each bad event, in the form of a validation error (``loc`` names the
    event's index and field); empty when every event may be stored."""
    skew = service.settings.event_max_future_seconds
    now = service.resolve_at(None)
    if service.settings.today is not None:  # a replay's now is its whole day, not a time of it
        now = datetime.combine(now.date() + timedelta(days=1), time.min)
    latest = now + timedelta(seconds=skew)
    unknown = book.unknown(event.offer_id for event in events)
    problems: list[dict[str, Any]] = []
    for i, event in enumerate(events):
        if to_naive_utc(event.ts) > latest:
            problems.append({
                "type": "future_event", "loc": ["body", "events", i, "ts"],
                "msg": f"ts {event.ts.isoformat()} is more than {skew:g} s after the service's "
                       f"now (latest accepted: {latest:%Y-%m-%dT%H:%M:%S} UTC)",
            })  # fmt: skip
        if event.offer_id in unknown:
            problems.append({
                "type": "unknown_offer", "loc": ["body", "events", i, "offer_id"],
                "msg": f"offer {event.offer_id!r} is in no plan of the service",
            })  # fmt: skip
    return problems


@router.post("/events", response_model=EventsAck, responses=_RESPONSES)
def post_events(request: Request, body: EventsRequest, service: WriterService) -> EventsAck:
    """Record 1 to 10,000 events; idempotent on ``event_id``.

    The answer comes only after the events are committed durably: a 2xx means stored. Resending
    a batch after a timeout is safe (known ids with the same payload count as duplicates). A
    batch with a bad event is refused whole: 422 for events dated more than
    ``NBO_EVENT_MAX_FUTURE_SECONDS`` (1 hour) after the service's now or about an offer no plan
    lists, each named by its index; 409 for an ``event_id`` already recorded (or repeated in
    the batch) with another payload.
    """
    problems = refusals(body.events, service, _offer_book(request.app.state))
    if problems:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, problems)
    keyed = service.plans.keyed
    rows = [
        event.model_dump()
        | {"member_id": member_id_of(event.member_id, keyed=keyed, what=f"events[{i}].member_id")}
        for i, event in enumerate(body.events)
    ]
    try:
        receipt = service.store.record_events(rows)
    except EventConflictError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    if receipt.inserted:
        for event in body.events:
            EVENTS.labels(event.event_type).inc()
    return EventsAck(inserted=receipt.inserted, duplicates=receipt.duplicates)
