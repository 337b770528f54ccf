"""Feedback: exposure, click, redemption and dismissal events (``writer`` role)."""

from __future__ import annotations

from fastapi import APIRouter

from nbo.data.keys import member_id_of
from nbo.serving.deps import WriterService
from nbo.serving.metrics import EVENTS
from nbo.serving.routes.offers import ERRORS
from nbo.serving.schemas import EventsAck, EventsRequest, Problem

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["events"])


@router.post("/events", response_model=EventsAck, responses=ERRORS | {413: {"model": Problem}})
def post_events(body: EventsRequest, service: WriterService) -> EventsAck:
    """Record 1 to 10,000 events; idempotent on ``event_id``.

    The answer comes only after the events are committed durably: a 2xx means stored. Resending
    a batch after a timeout is safe (known ids count as duplicates).
    """
    keyed = service.plans.keyed
    rows = [
        event.model_dump()
        | {"member_id": member_id_of(event.member_id, keyed=keyed, what=f"events[{i}].member_id")}
        for i, event in enumerate(body.events)
    ]
    receipt = service.store.record_events(rows)
    if receipt.inserted:
        for event in body.events:
            EVENTS.labels(event.event_type).inc()
    return EventsAck(inserted=receipt.inserted, duplicates=receipt.duplicates)
