"""Operations: health, readiness, metrics, and switching to the current champion."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from nbo.serving.deps import AdminService
from nbo.serving.metrics import CONTENT_TYPE_LATEST, render
from nbo.serving.routes.offers import ERRORS
from nbo.serving.schemas import ReloadResponse

__all__ = ["router", "write_reload_file"]

router = APIRouter(prefix="/v1", tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "not ready"}})
async def readyz(request: Request) -> JSONResponse:
    """Ready: a model is loaded and the history database answers."""
    service = getattr(request.app.state, "service", None)
    body: dict[str, Any] = {"status": "ready"}
    code = status.HTTP_200_OK
    if service is None or not service.ready:
        body, code = {"status": "loading"}, status.HTTP_503_SERVICE_UNAVAILABLE
    else:
        body["models"] = {arm: state.uri for arm, state in service.models.items()}
        try:
            await run_in_threadpool(service.store.ping)
        except Exception as exc:  # any driver error means not ready
            body = {"status": "database unreachable", "detail": str(exc).splitlines()[0]}
            code = status.HTTP_503_SERVICE_UNAVAILABLE
    return JSONResponse(body, status_code=code)


@router.get("/metrics", response_class=Response)
async def metrics() -> Response:
    """Prometheus metrics: latency per route, decisions per offer, the served model."""
    return Response(render(), media_type=CONTENT_TYPE_LATEST)


def write_reload_file(path: Path, uri: str) -> None:
    """Atomically write the URI every worker should serve (they watch this file)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(uri)
    tmp.replace(path)


@router.post("/admin/reload", response_model=ReloadResponse, responses=ERRORS)
async def reload(service: AdminService) -> ReloadResponse:
    """Load the registry's current champion (and challenger) and switch to it.

    Requests in flight finish on the model they started with. With several workers, the others
    follow within a second or two (they watch the reload file).
    """
    models = await run_in_threadpool(service.reload)
    if service.settings.reload_file is not None:
        write_reload_file(service.settings.reload_file, models["champion"])
    return ReloadResponse(models=models)
