"""The fast path answers exactly as FastAPI's route does, and takes only what it may take."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbo.serving import fastpath
from tests.serving.conftest import ADMIN, READER, TODAY, WRITER, planned_members

pytestmark = pytest.mark.slow  # the registry fixture trains a model

MIDDAY = datetime(TODAY.year, TODAY.month, TODAY.day, 12)
values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "05", "+3", "3.0", "0", "NaN", "Infinity", "-Infinity", "1e400"]),
)  # non-finite numbers: issue 18
channels = st.one_of(st.sampled_from(["email", "app", "pos", "pigeon", "x" * 33]), values)
limits = st.one_of(st.integers(-2, 60).map(str), values)
times = st.one_of(
    st.integers(-3 * 24 * 60, 3 * 24 * 60)
    .map(lambda m: MIDDAY + timedelta(minutes=m))
    .map(lambda t: t.isoformat()),
    st.integers(-12, 12).map(
        lambda h: (MIDDAY.replace(tzinfo=UTC) + timedelta(hours=h)).isoformat()
    ),
    st.sampled_from(
        [
            "2024-01-01T00:00:00",
            TODAY.isoformat(),
            "yesterday",
            "1e9",
            "2024-04-01T25:00",
            "1711965600",
            "NaN",
        ]
    ),
    values,
)
names = st.sampled_from(["channel", "limit", "at", "k", "Channel"])
keys = st.sampled_from([READER, WRITER, ADMIN, {"X-API-Key": "nope"}, {}])


@st.composite
def requests(draw: st.DrawFn, members: list[str]) -> tuple[str, dict[str, str]]:
    odd = ["0", "007", "-1", str(2**63 - 1), str(2**63), "1e3", "abc"]
    member = draw(
        st.one_of(st.sampled_from(members), st.sampled_from(odd), st.integers(0, 10**6).map(str))
    )
    params = draw(
        st.lists(
            st.one_of(
                st.tuples(st.just("channel"), channels),
                st.tuples(st.just("limit"), limits),
                st.tuples(st.just("at"), times),
                st.tuples(names, values),
            ),
            max_size=4,
        )
    )
    query = "&".join(f"{quote(n)}={quote(v)}" for n, v in params)
    return f"/v1/members/{member}/offers" + (f"?{query}" if query else ""), draw(keys)


def _members(client: TestClient) -> list[str]:
    return [str(m) for m in planned_members(client)[:40]]


def _answer(client: TestClient, path: str, headers: dict[str, str], fast: bool) -> Any:
    client.app.state.settings.fast_path = fast  # type: ignore[attr-defined]
    response = client.get(path, headers=headers)
    body: Any = response.text
    if response.headers.get("content-type") == "application/json":
        body = json.loads(body)
        if isinstance(body, dict) and "at=" not in path:  # "now", milliseconds apart
            body.pop("at", None)
            for offer in body.get("offers", []):
                offer.pop("send_at")  # "now" for a member seen to shop now
    return response.status_code, response.headers.get("content-type"), body


@pytest.fixture()
def counted(monkeypatch: pytest.MonkeyPatch) -> list[fastpath.PlainOffersRequest]:
    """The requests the fast path answered."""
    taken: list[fastpath.PlainOffersRequest] = []
    answer = fastpath.answer

    async def counting(app: Any, service: Any, request: Any, *args: Any) -> None:
        taken.append(request)
        await answer(app, service, request, *args)

    monkeypatch.setattr(fastpath, "answer", counting)
    return taken


def test_answers_match_fastapi_byte_for_byte(
    make_client: Callable[..., TestClient], counted: list[fastpath.PlainOffersRequest]
) -> None:
    client = make_client()
    members = _members(client)
    seen: list[tuple[str, int]] = []

    @settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(requests(members))
    def check(request: tuple[str, dict[str, str]]) -> None:
        path, headers = request
        before = len(counted)
        fast = _answer(client, path, headers, fast=True)
        slow = _answer(client, path, headers, fast=False)
        assert fast == slow, path
        seen.append((path, fast[0]))
        if len(counted) > before:  # what the fast path took, FastAPI answers with 200 or a
            assert fast[0] in (200, 409, 422, 503)  # policy/time/plan problem, never a
            # validation error
            assert fast[0] == 200 or isinstance(fast[2]["detail"], str), (path, fast)

    try:
        check()
    finally:
        client.app.state.settings.fast_path = True  # type: ignore[attr-defined]
    statuses = {status for _, status in seen}
    assert {200, 401, 422} <= statuses  # the run reached every kind of answer (no role is
    # below reader: no 403 here)
    assert counted, "the fast path answered nothing"


def test_plain_requests_take_the_fast_path(
    client: TestClient, counted: list[fastpath.PlainOffersRequest]
) -> None:
    member = _members(client)[0]
    at = MIDDAY.isoformat()
    assert client.get(f"/v1/members/{member}/offers", headers=READER).status_code == 200
    assert client.get(f"/v1/members/{member}/offers?channel=app&limit=2&at={at}",
                      headers=ADMIN).status_code == 200  # fmt: skip
    assert [(r.channel, r.limit, r.at) for r in counted] == [
        ("email", None, None),
        ("app", 2, MIDDAY),
    ]
    for path, headers in [
        (f"/v1/members/{member}/offers", {}),  # no key: 401 from FastAPI
        (f"/v1/members/{member}/offers?limit=0", READER),  # FastAPI's 422
        (f"/v1/members/{member}/offers?channel=app&channel=pos", READER),  # repeated
        (f"/v1/members/{member}/offers?k=1", READER),  # a parameter the route does not take
    ]:
        client.get(path, headers=headers)
    assert client.post(f"/v1/members/{member}/offers", headers=READER).status_code == 405
    assert len(counted) == 2, counted[2:]
