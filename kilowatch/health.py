"""Liveness (/healthz) and readiness (/readyz: database reachable and migrated)."""
from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from litestar import Response, get
from litestar.di import NamedDependency

from kilowatch.db import migrate, pool as db_pool


@get("/healthz", tags=["operations"], summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", tags=["operations"], summary="The database answers and migrations are applied")
async def readyz(pool: NamedDependency[asyncpg.Pool]) -> Response[dict[str, Any]]:
    try:
        async with asyncio.timeout(2):
            # borrowed(): a probe that timed out on a dead link drops its connection instead of
            # holding it while asyncpg cancels and resets over that link; repeated probes would
            # otherwise drain the pool the routes need when the database comes back.
            async with db_pool.borrowed(pool, timeout=2) as conn:
                current = await migrate.is_current(conn)
    except (*db_pool.LINK_ERRORS, asyncpg.PostgresError) as exc:
        return Response({"detail": f"database unavailable: {type(exc).__name__}"},
                        status_code=503, headers={"Retry-After": "1"})
    if not current:
        return Response({"detail": "database migrations are not applied"},
                        status_code=503, headers={"Retry-After": "1"})
    return Response({"status": "ready"}, status_code=200)
