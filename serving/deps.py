"""Dependencies of the routes: the offer service behind an API-key role check and the
per-key rate limit (:mod:`nbo.serving.keys`, :mod:`nbo.serving.ratelimit`).

``ReaderService`` is the service once the key is known to have the ``reader`` role or above and
a token of its rate limit, and so on. The key is checked once per request, by
:func:`admit`; the fast path checks its plain requests itself, on the same :class:`Gate`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader
from starlette.datastructures import State

from nbo.serving.keys import Holder, KeyRing, allows
from nbo.serving.ratelimit import RateLimiter, too_many
from nbo.serving.state import OfferService
from nbo.settings import Role, Settings

__all__ = [
    "API_KEY_HEADER",
    "AdminService",
    "Gate",
    "MetricsKey",
    "ReaderService",
    "WriterService",
    "admit",
    "authorised",
    "gate_of",
    "key_holder",
]

API_KEY_HEADER = "X-API-Key"
_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)


@dataclass(frozen=True, slots=True)
class Gate:
    """What every request passes: the keys in force and the per-key rate limit (if set)."""

    keys: KeyRing
    limiter: RateLimiter | None

    def rotate(self) -> int:
        """Read the keys again (``/admin/reload``); how many are in force."""
        count = self.keys.reload()
        if self.limiter is not None:
            self.limiter.keep_only(self.keys.digests())
        return count


def gate_of(state: State) -> Gate:
    """The app's gate, made on first use from its settings."""
    found: Gate | None = getattr(state, "gate", None)
    if found is None:
        settings: Settings = state.settings
        rate = settings.rate_limit
        found = Gate(KeyRing(settings), RateLimiter(rate) if rate is not None else None)
        state.gate = found
    return found


def admit(request: Request, key: str | None, role: Role) -> Holder:
    """The key's holder when it is in force, has a token and is allowed ``role``; else the
    401, 429 or 403 to answer."""
    if not key:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"missing API key: send it in the {API_KEY_HEADER} header",
            headers={"WWW-Authenticate": "APIKey"},
        )
    gate = gate_of(request.app.state)
    holder = gate.keys.holder(key)
    if holder is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "unknown API key", headers={"WWW-Authenticate": "APIKey"}
        )
    if gate.limiter is not None:  # before the role check: refused requests count too
        wait = gate.limiter.take(holder.digest)
        if wait:
            raise too_many(gate.limiter.rate, wait)
    if not allows(holder.role, role):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"this key's role is {holder.role}; this needs {role}"
        )
    return holder


# one dependency per request, async: FastAPI runs a plain function dependency in its thread
# pool, and each dependency costs a little on a route that answers in about a millisecond
def key_holder(role: Role) -> Callable[..., Awaitable[Holder]]:
    """A dependency: the key's holder, for keys allowed ``role`` (401, 403, 429)."""

    async def check(
        request: Request, key: Annotated[str | None, Security(_key_header)] = None
    ) -> Holder:
        return admit(request, key, role)

    return check


def authorised(role: Role) -> Callable[..., Awaitable[OfferService]]:
    """A dependency: the service, for keys allowed ``role`` (401, 403, 429, 503)."""

    async def check(
        request: Request, key: Annotated[str | None, Security(_key_header)] = None
    ) -> OfferService:
        admit(request, key, role)
        service: OfferService | None = getattr(request.app.state, "service", None)
        if service is None or not service.ready:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the service is starting")
        return service

    return check


ReaderService = Annotated[OfferService, Security(authorised("reader"))]
WriterService = Annotated[OfferService, Security(authorised("writer"))]
AdminService = Annotated[OfferService, Security(authorised("admin"))]
MetricsKey = Annotated[Holder, Security(key_holder("metrics"))]
