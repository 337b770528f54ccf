"""ASGI middleware: per-route latency metrics.

Plain ASGI rather than ``BaseHTTPMiddleware``: no extra task or stream copy per request.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nbo.serving.metrics import LATENCY

__all__ = ["RouteTimer"]


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
