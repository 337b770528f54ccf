"""The hottest request without the framework: a plain ``GET /v1/members/{id}/offers``.

FastAPI's parameter and dependency machinery costs more CPU on this route than the decision
itself (measured in-process on Complete Journey: 1.6 ms a request through the app against
0.6 ms for the endpoint's own work). So :class:`~nbo.serving.app.OfferApp` answers the plain
form of the request here, before FastAPI, with the very functions the route uses
(:func:`~nbo.serving.routes.offers.member_offers_body`). Plain means: a key of the ``reader``
role or above, a member id in range, and at most ``channel``, ``limit`` and ``at``, once each,
with values that validate exactly as the route's declarations say. Such a request takes its
key's token of the rate limit here (:mod:`~nbo.serving.ratelimit`); any other takes it in
FastAPI's dependency, so each request takes one.

Everything else — no key or a weak one, an unknown or repeated parameter, a value that does not
validate, a service not ready — goes to FastAPI's route untouched, which stays the reference
for validation, errors and the OpenAPI schema. ``tests/serving/test_fastpath.py`` checks that
both answer byte for byte alike. ``NBO_FAST_PATH=false`` sends every request through FastAPI.
"""

from __future__ import annotations

import inspect
import re
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from nbo.serving.deps import API_KEY_HEADER, Gate, gate_of
from nbo.serving.keys import Holder, allows
from nbo.serving.metrics import LATENCY
from nbo.serving.ratelimit import too_many
from nbo.serving.routes.offers import (
    CHANNEL_MAX_LENGTH,
    DEFAULT_CHANNEL,
    LIMIT_MAX,
    ROUTE,
    member_offers_body,
)
from nbo.serving.schemas import Moment

if TYPE_CHECKING:
    from fastapi import FastAPI

    from nbo.serving.state import OfferService

__all__ = ["PlainOffersRequest", "answer", "plain_request"]

_PATH = re.compile(r"/v1/members/([^/]{1,64})/offers")  # the route's MemberPath
_LIMIT = re.compile(r"[0-9]{1,2}")
_PARAMETERS = frozenset({"channel", "limit", "at"})
_AT = TypeAdapter(Moment)  # the route's AtQuery
_KEY = API_KEY_HEADER.lower().encode("latin-1")
_JSON = [(b"content-type", b"application/json")]


@dataclass(frozen=True, slots=True)
class PlainOffersRequest:
    """A request the fast path answers: its validated parameters."""

    member_key: str
    channel: str
    limit: int | None
    at: datetime | None
    holder: Holder


def _reader(scope: Scope, gate: Gate) -> Holder | None:
    """The holder of the one ``X-API-Key`` header, when its role is ``reader`` or above."""
    found = [value for name, value in scope["headers"] if name == _KEY]
    if len(found) != 1:
        return None
    holder = gate.keys.holder(found[0].decode("latin-1"))
    return holder if holder is not None and allows(holder.role, "reader") else None


def plain_request(scope: Scope, gate: Gate) -> PlainOffersRequest | None:
    """The request's parameters when the fast path may answer it; ``None`` for FastAPI."""
    if scope["method"] != "GET":
        return None
    match = _PATH.fullmatch(scope["path"])
    if match is None:
        return None
    params: dict[str, str] = {}
    if scope["query_string"]:  # decoded as Starlette decodes it
        for name, value in parse_qsl(scope["query_string"].decode("latin-1"), True):
            if name not in _PARAMETERS or name in params:
                return None
            params[name] = value
    channel = params.get("channel", DEFAULT_CHANNEL)
    if len(channel) > CHANNEL_MAX_LENGTH:
        return None
    limit = None
    if "limit" in params:
        if not _LIMIT.fullmatch(params["limit"]) or not 1 <= int(params["limit"]) <= LIMIT_MAX:
            return None
        limit = int(params["limit"])
    at = None
    if "at" in params:
        try:
            at = _AT.validate_python(params["at"])
        except ValidationError:
            return None
    holder = _reader(scope, gate)
    if holder is None:
        return None
    return PlainOffersRequest(match[1], channel, limit, at, holder)


async def answer(
    app: FastAPI,
    service: OfferService,
    request: PlainOffersRequest,
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    """Take the key's token, decide, record and answer as the route does; its errors (a 429
    too) through the app's handlers."""
    start = time.perf_counter()
    status = 200
    limiter = gate_of(app.state).limiter
    try:
        if limiter is not None:
            wait = limiter.take(request.holder.digest)
            if wait:
                raise too_many(limiter.rate, wait)
        body = await member_offers_body(
            service, request.member_key, request.at, request.channel, request.limit
        )
    except Exception as exc:
        handler = next(
            (app.exception_handlers[t] for t in type(exc).__mro__ if t in app.exception_handlers),
            None,
        )
        if handler is None:
            status = 500
            raise
        response = handler(Request(scope, receive), exc)
        if inspect.isawaitable(response):  # the app's handlers are coroutines
            response = await response
        status = response.status_code
        await response(scope, receive, send)
    else:
        headers = [*_JSON, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    finally:
        LATENCY.labels("GET", ROUTE, str(status)).observe(time.perf_counter() - start)
