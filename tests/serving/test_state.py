"""The offer service's day plans: the next day is planned ahead of its first request."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from nbo.serving.state import OfferService, day_to_plan_ahead

from .conftest import READER

HOUR = timedelta(hours=1)


@pytest.mark.parametrize(
    ("now", "lead", "due"),
    [
        (datetime(2026, 12, 2, 22, 59, 59), HOUR, None),
        (datetime(2026, 12, 2, 23, 0, 0), HOUR, date(2026, 12, 3)),
        (datetime(2026, 12, 2, 23, 59, 59), HOUR, date(2026, 12, 3)),
        (datetime(2026, 12, 3, 0, 0, 0), HOUR, None),  # the day has turned: planned by now
        (datetime(2026, 12, 31, 23, 30), HOUR, date(2027, 1, 1)),
        (datetime(2026, 12, 2, 0, 0, 1), timedelta(days=1), date(2026, 12, 3)),
        (datetime(2026, 12, 2, 23, 59, 59), timedelta(0), None),
    ],
)
def test_the_next_day_is_due_within_the_lead_of_its_midnight(
    now: datetime, lead: timedelta, due: date | None
) -> None:
    assert day_to_plan_ahead(now, lead) == due


def _service(client: TestClient) -> OfferService:
    service: OfferService = client.app.state.service  # type: ignore[attr-defined]
    return service


def test_a_worker_plans_tomorrow_before_it_is_asked(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(today=None, plan_ahead_minutes=1440)  # always due: plan at start-up
    service = _service(client)
    champion = service.models["champion"]
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    deadline = time.monotonic() + 120
    while service.cached(champion, tomorrow) is None:
        assert time.monotonic() < deadline, "tomorrow's plans were not built ahead"
        time.sleep(0.2)
    planned = service.cached(champion, tomorrow)
    assert planned is not None and planned.day == tomorrow
    # a request for tomorrow is answered from those plans, not a new build
    at = datetime.combine(tomorrow, datetime.min.time()) + timedelta(hours=9)
    response = client.get("/v1/members/1/offers", params={"at": at.isoformat()}, headers=READER)
    assert response.status_code == 200, response.text
    assert service.cached(champion, tomorrow) is planned
    # calling again builds nothing new
    assert service.plan_ahead(at - timedelta(hours=10)) == tomorrow
    assert service.cached(champion, tomorrow) is planned


def test_no_plan_ahead_when_it_is_off_or_the_day_is_fixed(
    make_client: Callable[..., TestClient],
) -> None:
    late = datetime.combine(datetime.now(UTC).date(), datetime.min.time()) + timedelta(
        hours=23, minutes=59
    )
    tomorrow = late.date() + timedelta(days=1)
    for client in (make_client(today=None, plan_ahead_minutes=0), make_client()):
        service = _service(client)
        assert service.plan_ahead(late) is None
        assert service.cached(service.models["champion"], tomorrow) is None
