"""ASGI middleware: request body limit (413) and per-route latency metrics.

Plain ASGI rather than ``BaseHTTPMiddleware``: no extra task or stream copy per request.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nbo.serving.metrics import LATENCY

__all__ = ["BodyLimit", "RouteTimer"]


class _TooLarge(Exception):
    pass


async def _reply(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json")]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Refuse request bodies above ``max_bytes`` with 413, declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = b'{"detail":"request body larger than %d bytes"}' % self.max_bytes
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await _reply(send, 413, message)
                    return
        seen = 0
        started = False

        async def limited() -> Message:
            nonlocal seen
            received = await receive()
            if received["type"] == "http.request":
                seen += len(received.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return received

        async def tracking(reply: Message) -> None:
            nonlocal started
            if reply["type"] == "http.response.start":
                started = True
            await send(reply)

        try:
            await self.app(scope, limited, tracking)
        except _TooLarge:
            if not started:
                await _reply(send, 413, message)


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
