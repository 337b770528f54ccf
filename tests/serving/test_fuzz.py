"""No 5xx for any bytes (issue 18): the reported cases by name, then raw requests at random.

The fuzz test drives the ASGI app itself, below any HTTP client, so that nothing on the way
tidies a request up: any method, any route of the schema with any member key, any query
string, any headers (as an HTTP server hands them over: lower-case names, values without line
breaks), any body — random bytes, or JSON with every kind of value where the routes' fields
are. Its budget is fixed (``FUZZ_EXAMPLES`` requests, derandomized: the same each run);
``docs/api.md`` records the budget and what it found.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serving.conftest import READER, TODAY, WRITER

pytestmark = pytest.mark.slow  # the registry fixture trains a model

FUZZ_EXAMPLES = 600
AT = f"{TODAY:%Y-%m-%d}T10:00:00"
EVENT = {"event_id": "fuzz-1", "event_type": "click", "member_id": 1, "offer_id": "x", "ts": AT}
JSON = {"content-type": "application/json"}


def _post(client: TestClient, path: str, body: bytes, key: dict[str, str]) -> Any:
    return client.post(path, content=body, headers=key | JSON)


def _only_error(response: Any) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    return dict(error)


@pytest.mark.parametrize(
    ("body", "token"),
    [
        (b'{"member_ids":[NaN]}', b"NaN"),
        (b'{"member_ids":[1],"limit":Infinity}', b"Infinity"),
        (b'{"member_ids":[1e400]}', b"1e400"),
        (b'{"member_ids":[1],"channel":"NaN","limit":-Infinity}', b"-Infinity"),
    ],
)
def test_non_finite_numbers_in_a_batch_are_invalid_json_at_their_position(
    client: TestClient, body: bytes, token: bytes
) -> None:
    error = _only_error(_post(client, "/v1/offers/batch", body, READER))
    assert error["type"] == "json_invalid"
    assert error["loc"] == ["body", body.index(token)]


def test_a_nan_amount_in_an_event_is_invalid_json_and_nothing_is_stored(
    client: TestClient,
) -> None:
    body = json.dumps({"events": [EVENT | {"amount": float("nan")}]}).encode()  # writes NaN
    error = _only_error(_post(client, "/v1/events", body, WRITER))
    assert (error["type"], error["loc"]) == ("json_invalid", ["body", body.index(b"NaN")])


@pytest.mark.parametrize("amount", [False, True, "1.5", [1]])
def test_an_amount_that_is_not_a_json_number_is_refused(client: TestClient, amount: Any) -> None:
    body = json.dumps({"events": [EVENT | {"amount": amount}]}).encode()
    error = _only_error(_post(client, "/v1/events", body, WRITER))
    assert error["loc"] == ["body", "events", 0, "amount"]


@pytest.mark.parametrize("limit", [True, "5", 5.5])  # 5.0 is the JSON integer 5
def test_a_batch_limit_that_is_not_a_json_integer_is_refused(
    client: TestClient, limit: Any
) -> None:
    body = json.dumps({"member_ids": [1], "limit": limit}).encode()
    assert _only_error(_post(client, "/v1/offers/batch", body, READER))["loc"] == [
        "body",
        "limit",
    ]


@pytest.mark.parametrize("at", [1_700_000_000, "1700000000", f"{TODAY:%Y-%m-%d}"])
def test_a_time_is_text_with_a_date_and_a_time_of_day(client: TestClient, at: Any) -> None:
    """Not a number or digits (pydantic would read a Unix time), not a bare date."""
    batch = json.dumps({"member_ids": [1], "at": at}).encode()
    assert _only_error(_post(client, "/v1/offers/batch", batch, READER))["loc"] == ["body", "at"]
    events = json.dumps({"events": [EVENT | {"ts": at}]}).encode()
    error = _only_error(_post(client, "/v1/events", events, WRITER))
    assert error["loc"] == ["body", "events", 0, "ts"]
    query = client.get("/v1/offers", params={"at": str(at)}, headers=READER)
    assert _only_error(query)["loc"] == ["query", "at"]


@pytest.mark.parametrize(
    "body",
    [b"\xff\xfe\xfa\x00{", b'{"member_ids":["\xc3\x28"]}', b'{"member_ids":["\\ud800"]}'],
    ids=["not-text", "bad-utf8", "half-a-surrogate-pair"],
)
def test_bytes_that_are_not_text_are_invalid_json_not_an_undocumented_400(
    client: TestClient, body: bytes
) -> None:
    assert _only_error(_post(client, "/v1/offers/batch", body, READER))["type"] == "json_invalid"


def test_a_validation_error_leaves_out_an_input_json_cannot_hold(client: TestClient) -> None:
    deep = b'{"member_ids":[' + b"[" * 400 + b"]" * 400 + b"]}"
    response = _post(client, "/v1/offers/batch", deep, READER)
    assert response.status_code == 422
    for error in response.json()["detail"]:  # one per kind of member key
        assert error["loc"][:3] == ["body", "member_ids", 0] and "input" not in error
    # a body sent without a JSON content type reaches the model as bytes
    raw = client.post("/v1/offers/batch", content=b"\xff\xfe", headers=READER)
    assert raw.status_code == 422 and "input" not in raw.json()["detail"][0]
    # a scalar input is still echoed
    assert _only_error(client.get("/v1/offers?at=soon", headers=READER))["input"] == "soon"


# -- raw requests at random ------------------------------------------------------------------

_TOKEN = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=12)
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
    st.sampled_from([AT, "2000-01-01T00:00:00", "email", "x", "1", 2**63, -1, 0, 1e308]),
)  # fmt: skip
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TOKEN, inner, max_size=3),
    max_leaves=8,
)
_SHAPES = {
    "batch": {"member_ids": [1], "at": AT, "channel": "email", "limit": 2},
    "event": EVENT,
}


@st.composite
def _json_bodies(draw: st.DrawFn) -> bytes:
    """A route's body with some fields replaced by any JSON value (NaN and 1e400 included:
    ``json.dumps`` writes them as Python reads them)."""
    shape = dict(draw(st.sampled_from(list(_SHAPES.values()))))
    for name in draw(st.lists(st.sampled_from([*shape, "extra"]), max_size=3)):
        shape[name] = draw(_VALUES)
    body: Any = {"events": [shape]} if "event_id" in shape else shape
    text = json.dumps(body if draw(st.booleans()) else draw(_VALUES))
    if draw(st.booleans()):  # out-of-range numbers and odd escapes, as text
        text = text.replace("1", draw(st.sampled_from(["1e400", "-Infinity", '"\\udc00"', "1"])))
    return text.encode()


@st.composite
def _raw_requests(draw: st.DrawFn, paths: list[str], members: list[str]) -> dict[str, Any]:
    member = draw(st.sampled_from(members) | st.text(max_size=70))
    path = draw(st.sampled_from(paths)).replace("{member_id}", member)
    if draw(st.booleans()):
        path += draw(st.sampled_from(["/", "//x", "/../offers", "%"]))
    query = draw(
        st.binary(max_size=60)
        | st.lists(
            st.tuples(st.sampled_from(["at", "limit", "channel", "k", "x"]) | st.text(max_size=5),
                      st.text(max_size=30) | st.sampled_from([AT, "NaN", "Infinity", "1e400"])),
            max_size=4,
        ).map(lambda pairs: "&".join(f"{quote(k)}={quote(v)}" for k, v in pairs).encode())
    )  # fmt: skip
    keys = [b"reader-key", b"writer-key", b"admin-key", b"nope", b"\xff\x00"]
    headers = draw(
        st.lists(
            st.tuples(
                st.sampled_from([b"x-api-key", b"content-type", b"accept", b"content-length",
                                 b"transfer-encoding", b"content-encoding"])
                | _TOKEN.map(str.encode),
                st.sampled_from([*keys, b"application/json", b"text/plain; charset=utf-16",
                                 b"application/x-www-form-urlencoded", b"multipart/form-data",
                                 b"gzip", b"chunked", b"0", b"99999999999"])
                | st.binary(max_size=40).map(lambda v: v.translate(None, b"\r\n\x00")),
            ),
            max_size=5,
        )
    )  # fmt: skip
    if draw(st.booleans()):
        headers.append((b"x-api-key", draw(st.sampled_from(keys[:3]))))
    body = draw(st.binary(max_size=300) | _json_bodies())
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS"]))
    return {"method": method, "path": path, "query_string": query, "headers": headers,
            "body": body}  # fmt: skip


async def _call(app: Any, request: dict[str, Any]) -> int:
    """Send ``request`` to the ASGI app as a server would; the status it answers."""
    raw_path = quote(request["path"], safe="/%").encode()
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
        "method": request["method"], "scheme": "http", "path": request["path"],
        "raw_path": raw_path, "root_path": "", "query_string": request["query_string"],
        "headers": request["headers"], "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80), "state": {},
    }  # fmt: skip
    chunks = [request["body"][:100], request["body"][100:]]
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        if chunks:
            chunk = chunks.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(scope, receive, send)
    assert len(statuses) == 1, statuses
    return statuses[0]


def test_no_raw_request_gets_a_server_error(make_client: Callable[..., TestClient]) -> None:
    client = make_client()
    paths = [path for path in client.app.openapi()["paths"]]  # type: ignore[attr-defined]
    assert len(paths) >= 10
    members = ["1", "2", "3", "0", str(2**63), "007"]
    seen: dict[int, int] = {}

    @given(request=_raw_requests(paths, members))
    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    def check(request: dict[str, Any]) -> None:
        status = client.portal.call(_call, client.app, request)  # type: ignore[union-attr]
        seen[status] = seen.get(status, 0) + 1
        assert status < 500, request

    check()
    # the run reached the routes' work, not only their doors
    assert {200, 401, 404, 405} <= set(seen), seen
