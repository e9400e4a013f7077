"""The web listener: the review desk for the DPO, safeguarding lead, IT and auditor, plus
/healthz for load balancers and /metrics for Prometheus."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from mailguard.config import Settings
from mailguard.store import db as store_db
from mailguard.store.backend import errors as store_errors
from mailguard.web import auditlog, export, insight, message, queue, signin
from mailguard.web.context import Desk
from mailguard.web.security import SecurityHeaders, session_key

STATIC = Path(__file__).parent / "static"
HEALTH_TIMEOUT = 2.0   # seconds the store may take to answer /healthz
log = structlog.get_logger("mailguard.web")


def _registry() -> Any:
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    from prometheus_client import REGISTRY

    return REGISTRY


def create_app(settings: Settings, instance: Any | None, db: Any | None = None) -> Starlette:
    """The ASGI app. With a running gateway (`instance`) the desk shares its store and sees
    its reloads; without one it opens the store itself."""
    current = (lambda: instance.handler.settings) if instance is not None else (lambda: settings)
    desk = Desk(current, db=db if db is not None else getattr(instance, "db", None))

    async def healthz(request: Request) -> JSONResponse:
        body: dict[str, Any] = {"status": "ok", "organisation": settings.organisation.name}
        if instance is not None:
            body["connections"] = len(instance.handler.connections)
            body["in_flight"] = instance.handler.busy
            body["upstream"] = instance.upstream.describe()
            if instance.handler.closing:
                body["status"] = "draining"
                return JSONResponse(body, status_code=503)
        try:   # a store it cannot write to: mail is answered 451; the balancer should know
            store = instance.db if instance is not None else (await desk.store())[0]
            await asyncio.wait_for(store.one("SELECT 1"), HEALTH_TIMEOUT)
        except TimeoutError:
            body["status"] = "store unavailable"
            body["store"] = (f"the store did not answer within {HEALTH_TIMEOUT:.0f} s: it "
                             "cannot be reached or is overloaded. Meanwhile mail that must "
                             "be held is answered 451, so senders' servers keep it and retry.")
            return JSONResponse(body, status_code=503)
        except (*store_errors(), OSError) as e:
            body["status"] = "store unavailable"
            body["store"] = store_db.problem(e, settings.storage.data_dir) or repr(e)
            return JSONResponse(body, status_code=503)
        return JSONResponse(body)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(_registry()), media_type=CONTENT_TYPE_LATEST)

    async def problem(request: Request, exc: Exception) -> Response:
        """Errors as a page in plain words; never a stack trace."""
        assert isinstance(exc, HTTPException)
        if exc.status_code in (301, 302, 303, 307):
            return RedirectResponse(exc.headers["location"] if exc.headers else "/", 303)
        try:
            who = await desk.reviewer(request) if "session" in request.scope else None
        except Exception:   # the store itself may be what failed: the page still renders
            who = None
        response = desk.page(request, "error.html", who, status=exc.status_code,
                             detail=exc.detail)
        response.status_code = exc.status_code
        return response

    async def store_failure(request: Request, exc: Exception) -> Response:
        """A full disk or a locked store: say so, and what IT should do (503, no trace)."""
        log.error("desk_store_error", path=request.url.path, error=repr(exc))
        stored = store_db.problem(exc, current().storage.data_dir) or str(exc)
        return await problem(request, HTTPException(503, stored[:1].upper() + stored[1:]))

    async def failure(request: Request, exc: Exception) -> Response:
        log.error("desk_error", path=request.url.path, error=repr(exc))
        return await problem(request, HTTPException(
            500, "Something went wrong on the review desk. Nothing was changed by this "
                 "request; if it happens again, tell IT (the server log has the details)."))

    routes = [Route("/healthz", healthz), Route("/metrics", metrics),
              Mount("/static", StaticFiles(directory=STATIC), name="static"),
              *signin.routes(desk), *queue.routes(desk), *message.routes(desk),
              *auditlog.routes(desk), *insight.routes(desk), *export.routes(desk)]
    if settings.storage.shared:   # its errors are the store's, answered in words
        import psycopg  # noqa: F401
    web = settings.web
    app = Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders),
                    Middleware(SessionMiddleware, secret_key=session_key(settings.storage),
                               session_cookie="mailguard_desk", max_age=web.session_minutes * 60,
                               same_site="strict", https_only=web.secure_cookies)],
        exception_handlers={HTTPException: problem, **dict.fromkeys(store_errors(), store_failure),
                            OSError: store_failure, Exception: failure})
    app.state.desk = desk
    return app
