"""ASGI middleware: per-route latency metrics, and query strings made ASCII.

Plain ASGI rather than ``BaseHTTPMiddleware``: no extra task or stream copy per request.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote_from_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nbo.serving.metrics import LATENCY

__all__ = ["RouteTimer", "ascii_query"]

_ASCII = "".join(map(chr, range(128)))


class RouteTimer:
    """Observe each request's latency under its route template (``/v1/members/{member_id}/…``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def watch(reply: Message) -> None:
            if reply["type"] == "http.response.start":
                status[0] = reply["status"]
            await send(reply)

        try:
            await self.app(scope, receive, watch)
        finally:
            route: Any = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            LATENCY.labels(scope["method"], path, str(status[0])).observe(
                time.perf_counter() - start
            )


def ascii_query(scope: Scope) -> None:
    """Percent-encode the bytes of the query string that are not ASCII, as a browser does.

    A server hands the query string over as it came; Starlette reads it as UTF-8 and fails (a
    500) on bytes that are not (found by ``tests/serving/test_fuzz.py``). Encoded, they read as
    U+FFFD, and FastAPI's route and the fast path see the same text.
    """
    query: bytes = scope.get("query_string", b"")
    if not query.isascii():
        scope["query_string"] = quote_from_bytes(query, safe=_ASCII).encode()
