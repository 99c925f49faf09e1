"""Liveness (/healthz) and readiness (/readyz: database reachable and migrated)."""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from litestar import Response, get
from litestar.di import NamedDependency

from kilowatch import openapi
from kilowatch.db import migrate
from kilowatch.db.gateway import Gateway
from kilowatch.errors import ServiceUnavailable


class Live(msgspec.Struct):
    status: Literal["ok"]


class Ready(msgspec.Struct):
    status: Literal["ready"]


@get(
    "/healthz",
    tags=["operations"],
    summary="The process is up",
    operation_class=openapi.operation(),
    responses={
        200: openapi.body(Live, "The process answers"),
        # Even this route counts towards MAX_CONCURRENT_REQUESTS (kilowatch.http).
        **openapi.problems(503, s503=openapi.BUSY),
    },
)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get(
    "/readyz",
    tags=["operations"],
    summary="The database answers and migrations are applied",
    operation_class=openapi.operation(),
    responses={
        200: openapi.body(Ready, "Ready to serve"),
        **openapi.problems(
            503, s503="The database is unreachable or not migrated, or the worker is busy"
        ),
    },
)
async def readyz(gateway: NamedDependency[Gateway]) -> Response[dict[str, Any]]:
    # Through the gateway: a probe on a dead link is bounded and drops its connection instead of
    # holding it, so repeated probes never drain the pool the routes need when the database is back.
    try:
        async with gateway.read() as conn:
            current = await migrate.is_current(conn)
    except ServiceUnavailable as exc:
        return Response(
            {"detail": f"database unavailable: {exc.message}"},
            status_code=503,
            headers=exc.headers,
        )
    if not current:
        return Response(
            {"detail": "database migrations are not applied"},
            status_code=503,
            headers={"Retry-After": str(gateway.settings.retry_after_s)},
        )
    return Response({"status": "ready"}, status_code=200)
