"""Starlette app: /healthz for load balancers and /metrics for Prometheus."""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mailguard.config import Settings


def _registry() -> Any:
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    from prometheus_client import REGISTRY

    return REGISTRY


def create_app(settings: Settings, instance: Any | None) -> Starlette:
    async def healthz(request: Request) -> JSONResponse:
        body: dict[str, Any] = {"status": "ok", "organisation": settings.organisation.name}
        if instance is not None:
            body["connections"] = len(instance.handler.connections)
            body["in_flight"] = instance.handler.busy
            body["upstream"] = instance.upstream.describe()
            if instance.handler.closing:
                body["status"] = "draining"
                return JSONResponse(body, status_code=503)
        return JSONResponse(body)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(_registry()), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[Route("/healthz", healthz), Route("/metrics", metrics)])
