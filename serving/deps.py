"""Dependencies of the routes: settings, the offer service, API-key roles."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader

from nbo.serving.state import OfferService
from nbo.settings import ROLES, Role, Settings

__all__ = ["API_KEY_HEADER", "ServiceDep", "SettingsDep", "require"]

API_KEY_HEADER = "X-API-Key"
_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_service(request: Request) -> OfferService:
    service: OfferService | None = getattr(request.app.state, "service", None)
    if service is None or not service.ready:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the model is not loaded yet")
    return service


SettingsDep = Annotated[Settings, Depends(get_settings)]
ServiceDep = Annotated[OfferService, Depends(get_service)]


def _role_of(key: str, keys: dict[str, Role]) -> Role | None:
    """The key's role; every configured key is compared, in constant time each."""
    found: Role | None = None
    given = key.encode()
    for known, role in keys.items():
        if hmac.compare_digest(given, known.encode()):
            found = role
    return found


def require(role: Role) -> Callable[..., Awaitable[Role]]:
    """A dependency that lets through keys whose role is ``role`` or above."""
    needed = ROLES.index(role)

    # async: FastAPI runs a plain function dependency in its thread pool, a costly hop here
    async def check(
        settings: SettingsDep, key: Annotated[str | None, Security(_key_header)] = None
    ) -> Role:
        if not key:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                f"missing API key: send it in the {API_KEY_HEADER} header",
                headers={"WWW-Authenticate": "APIKey"},
            )
        found = _role_of(key, settings.api_keys)
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
        return found

    return check
