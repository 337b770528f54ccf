"""Dependencies of the routes: the offer service behind an API-key role check.

One dependency per request does both (each FastAPI dependency costs a little on a route that
answers in about a millisecond): ``ReaderService`` is the service once the key is known to have
the ``reader`` role or above, and so on.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader

from nbo.serving.state import OfferService
from nbo.settings import ROLES, Role, Settings

__all__ = [
    "API_KEY_HEADER",
    "AdminService",
    "ReaderService",
    "WriterService",
    "authorised",
    "role_of",
]

API_KEY_HEADER = "X-API-Key"
_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)


def role_of(key: str, keys: dict[str, Role]) -> Role | None:
    """The key's role; every configured key is compared, in constant time each."""
    found: Role | None = None
    given = key.encode()
    for known, role in keys.items():
        if hmac.compare_digest(given, known.encode()):
            found = role
    return found


def authorised(role: Role) -> Callable[..., Awaitable[OfferService]]:
    """A dependency: the service, for keys whose role is ``role`` or above (401, 403, 503)."""
    needed = ROLES.index(role)

    # async: FastAPI runs a plain function dependency in its thread pool, a costly hop here
    async def check(
        request: Request, key: Annotated[str | None, Security(_key_header)] = None
    ) -> OfferService:
        settings: Settings = request.app.state.settings
        if not key:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                f"missing API key: send it in the {API_KEY_HEADER} header",
                headers={"WWW-Authenticate": "APIKey"},
            )
        found = role_of(key, settings.api_keys)
        if found is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "unknown API key",
                headers={"WWW-Authenticate": "APIKey"},
            )
        if ROLES.index(found) < needed:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"this key's role is {found}; this needs {role}"
            )
        service: OfferService | None = getattr(request.app.state, "service", None)
        if service is None or not service.ready:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the service is starting")
        return service

    return check


ReaderService = Annotated[OfferService, Security(authorised("reader"))]
WriterService = Annotated[OfferService, Security(authorised("writer"))]
AdminService = Annotated[OfferService, Security(authorised("admin"))]
