"""Operations: health, readiness, metrics, and reading a replaced plan."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from nbo.plans import plan_command
from nbo.serving.deps import AdminService, MetricsKey, gate_of
from nbo.serving.metrics import CONTENT_TYPE_LATEST, render
from nbo.serving.routes.offers import ERRORS
from nbo.serving.schemas import Problem, ReloadResponse

__all__ = ["router", "write_reload_file"]

router = APIRouter(prefix="/v1", tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "not ready"}})
async def readyz(request: Request) -> JSONResponse:
    """Ready: today's plan is mapped and the history database answers."""
    service = getattr(request.app.state, "service", None)
    body: dict[str, Any] = {"status": "ready"}
    code = status.HTTP_200_OK
    plan = service.plans.cached(service.today()) if service is not None else None
    if service is None or not service.ready:
        body, code = {"status": "loading"}, status.HTTP_503_SERVICE_UNAVAILABLE
    elif plan is None:
        settings = service.settings
        command = plan_command(settings.data_dir, service.today(), settings.plan_dir)
        body = {"status": "no plan", "detail": f"no plan for today; make it with: {command}"}
        code = status.HTTP_503_SERVICE_UNAVAILABLE
    else:
        body["plan"] = {"day": plan.day.isoformat(), "plan_id": plan.manifest.get("plan_id")}
        body["models"] = {arm: part.model.uri for arm, part in plan.arms.items()}
        try:
            await run_in_threadpool(service.store.ping)
        except Exception as exc:  # any driver error means not ready
            body = {"status": "database unreachable", "detail": str(exc).splitlines()[0]}
            code = status.HTTP_503_SERVICE_UNAVAILABLE
    return JSONResponse(body, status_code=code)


@router.get(
    "/metrics",
    response_class=Response,
    responses={code: {"model": Problem} for code in (401, 403, 429)},
)
async def metrics(_: MetricsKey) -> Response:
    """Prometheus metrics: latency per route, decisions per offer, the served model.

    For a key of the ``metrics`` role (or ``admin``); Prometheus sends it with
    ``http_headers: {X-API-Key: {values: [KEY]}}`` in its scrape config.
    """
    return Response(render(), media_type=CONTENT_TYPE_LATEST)


def write_reload_file(path: Path) -> None:
    """Atomically write a new token into the file every worker watches: they read their plans
    again when it changes."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(f"{time.time_ns()}-{os.getpid()}")
    tmp.replace(path)


@router.post("/admin/reload", response_model=ReloadResponse, responses=ERRORS)
async def reload(request: Request, service: AdminService) -> ReloadResponse:
    """Read the API keys and today's plan again, and serve them.

    Keys: those of ``NBO_API_KEYS_FILE`` are rotated (a file that does not read is a 422 and
    changes nothing); other workers follow within a second. Plans: workers also pick up a new
    or replaced plan by themselves within ``NBO_PLAN_CHECK_SECONDS``. Requests in flight finish
    on the plan they started with. With several workers, the others follow within a second or
    two (they watch the reload file).
    """
    gate_of(request.app.state).rotate()
    models = await run_in_threadpool(service.reload)
    if service.settings.reload_file is not None:
        write_reload_file(service.settings.reload_file)
    return ReloadResponse(models=models)
