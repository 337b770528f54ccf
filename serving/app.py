"""The FastAPI offer service: ``create_app()`` (``nbo serve`` runs it under uvicorn)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import Receive, Scope, Send

from nbo import __version__
from nbo.errors import NboError
from nbo.plans import PlanError
from nbo.serving import fastpath
from nbo.serving.bodies import validation_failed
from nbo.serving.deps import gate_of
from nbo.serving.metrics import MODEL, show_drift
from nbo.serving.middleware import RouteTimer, ascii_query
from nbo.serving.routes import catalog, events, offers, ops
from nbo.serving.state import OfferService
from nbo.settings import FAILED_ENV, MIGRATED_ENV, Settings

__all__ = ["FAILED_ENV", "MIGRATED_ENV", "OfferApp", "create_app"]

log = logging.getLogger("nbo.serving")
_RELOAD_CHECK_SECONDS = 1.0  # how often a worker looks at the reload file


_shown: set[tuple[str, str, str]] = set()


def _show_models(service: OfferService) -> None:
    # labels cannot be removed in multi-process mode: models no longer served drop to 0
    now = {(arm, model.uri, model.version) for arm, model in service.models().items()}
    for labels in _shown - now:
        MODEL.labels(*labels).set(0)
    for labels in now:
        MODEL.labels(*labels).set(1)
    _shown.clear()
    _shown.update(now)
    plan = service.plans.cached(service.today())
    show_drift(plan.manifest.get("drift", {}) if plan is not None else {})


def _reload_token(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        return path.read_text().strip()
    except OSError:
        return ""


async def _watch_plans(app: FastAPI, service: OfferService) -> None:
    """Pick up a plan that appeared or was replaced: every ``NBO_PLAN_CHECK_SECONDS``, and at
    once when another worker was asked to reload (it writes a new token into the reload
    file)."""
    settings: Settings = app.state.settings
    token = _reload_token(settings.reload_file)
    waited = 0.0
    while True:
        await asyncio.sleep(_RELOAD_CHECK_SECONDS)
        waited += _RELOAD_CHECK_SECONDS
        latest = _reload_token(settings.reload_file)
        if latest == token and waited < settings.plan_check_seconds:
            continue
        token, waited = latest, 0.0
        try:
            changed = await run_in_threadpool(service.refresh)
        except Exception:  # the plans kept go on serving; say why
            log.exception("looking for new plans failed")
            continue
        if changed:
            _show_models(service)


async def _refresh_budgets(service: OfferService) -> None:
    while True:
        await asyncio.sleep(service.settings.budget_refresh_seconds)
        try:
            await run_in_threadpool(service.refresh_budgets, service.today())
        except Exception:  # a database hiccup must not stop the loop; readyz reports it
            log.exception("budget refresh failed")


def _startup_failed(exc: BaseException) -> None:
    """Say why in one line; under a supervisor of several workers, stop it (it would restart
    the worker forever) and leave the reason where ``nbo serve`` reads it."""
    message = f"{type(exc).__name__}: {exc}".splitlines()[0]
    print(f"nbo serve: cannot start: {message}", file=sys.stderr, flush=True)
    failed = os.environ.get(FAILED_ENV)
    if failed:
        Path(failed).write_text(message)
        os.kill(os.getppid(), signal.SIGTERM)


async def _start(service: OfferService) -> None:
    try:
        await run_in_threadpool(service.load)
        await run_in_threadpool(service.refresh_budgets, service.today())
    except Exception as exc:
        _startup_failed(exc)
        await service.aclose()
        raise


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    try:
        service = OfferService(settings, migrate=os.environ.get(MIGRATED_ENV) != "1")
    except Exception as exc:
        _startup_failed(exc)
        raise
    await _start(service)
    try:
        _show_models(service)
        app.state.service = service
        plan = service.plans.cached(service.today())
        served = ", ".join(f"{arm} {model.uri}" for arm, model in service.models().items())
        what = f"plan {plan.day:%Y-%m-%d}: {served}" if plan is not None else "no plan for today"
        print(f"nbo serve: ready (pid {os.getpid()}; {what})", file=sys.stderr, flush=True)
        tasks = [
            asyncio.create_task(_watch_plans(app, service)),
            asyncio.create_task(_refresh_budgets(service)),
        ]
        yield
    finally:
        app.state.service = None
        for task in locals().get("tasks", []):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await service.aclose()


async def _bad_input(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=422)


async def _no_plan(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=409)


async def _database_down(request: Request, exc: Exception) -> JSONResponse:
    log.error("history database error: %s", exc)
    return JSONResponse({"detail": "the interaction history database is unavailable"}, 503)


class OfferApp(FastAPI):
    """FastAPI, with the plain form of the hottest request answered first (:mod:`fastpath`)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            ascii_query(scope)  # before either path reads it
            service: OfferService | None = self.state.service
            if self.state.settings.fast_path and service is not None and service.ready:
                plain = fastpath.plain_request(scope, gate_of(self.state))
                if plain is not None:
                    await fastpath.answer(self, service, plain, scope, receive, send)
                    return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app; ``settings`` default to the ``NBO_*`` environment."""
    settings = settings or Settings()
    app = OfferApp(
        title="nbo offer service",
        version=__version__,
        description="Next-best offers for loyalty club members: decisions, feedback, models.",
        lifespan=lifespan,
        max_body_size=settings.max_body_bytes,  # larger bodies, declared or streamed: 413
    )
    app.state.settings = settings
    app.state.service = None
    for router in (offers.router, catalog.router, events.router, ops.router):
        app.include_router(router)
    app.add_exception_handler(RequestValidationError, validation_failed)
    app.add_exception_handler(NboError, _bad_input)
    app.add_exception_handler(PlanError, _no_plan)
    app.add_exception_handler(SQLAlchemyError, _database_down)
    app.add_middleware(RouteTimer)
    return app
