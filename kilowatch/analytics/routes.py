"""HTTP routes for per-vehicle performance analytics."""
from __future__ import annotations

from typing import Annotated, Any

import asyncpg
from litestar import get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from kilowatch.analytics import service
from kilowatch.errors import InvalidInput
from kilowatch.settings import Settings


@get("/v1/analytics/performance/{vehicle_id:str}", tags=["analytics"],
     summary="A vehicle's energy efficiency over a window, correlated with its meters")
async def vehicle_performance(
    vehicle_id: FromPath[str],
    pool: NamedDependency[asyncpg.Pool],
    settings: NamedDependency[Settings],
    from_: Annotated[str | None, QueryParameter(
        name="from", description="ISO-8601 with offset; default `to` - 24 h")] = None,
    to: Annotated[str | None, QueryParameter(
        description="ISO-8601 with offset; default now")] = None,
    granularity: Annotated[str | None, QueryParameter(
        description="`hour` adds hourly buckets")] = None,
) -> dict[str, Any]:
    if granularity not in (None, "hour"):
        raise InvalidInput("Invalid granularity",
                           errors=[{"field": "granularity", "message": "must be `hour`"}])
    window = service.resolve_window(from_, to, settings)
    async with pool.acquire() as conn:
        return await service.performance(conn, settings, vehicle_id, *window,
                                         hourly=granularity == "hour")
