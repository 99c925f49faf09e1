"""HTTP routes for per-vehicle performance analytics."""
from __future__ import annotations

from typing import Any

import asyncpg
from litestar import get
from litestar.params import Parameter

from kilowatch.analytics import service
from kilowatch.errors import InvalidInput
from kilowatch.settings import Settings


@get("/v1/analytics/performance/{vehicle_id:str}", tags=["analytics"],
     summary="A vehicle's energy efficiency over a window, correlated with its meters")
async def vehicle_performance(
    vehicle_id: str,
    pool: asyncpg.Pool,
    settings: Settings,
    from_: str | None = Parameter(query="from", default=None,
                                  description="ISO-8601 with offset; default `to` - 24 h"),
    to: str | None = Parameter(query="to", default=None,
                               description="ISO-8601 with offset; default now"),
    granularity: str | None = Parameter(query="granularity", default=None,
                                        description="`hour` adds hourly buckets"),
) -> dict[str, Any]:
    if granularity not in (None, "hour"):
        raise InvalidInput("Invalid granularity",
                           errors=[{"field": "granularity", "message": "must be `hour`"}])
    window = service.resolve_window(from_, to, settings)
    async with pool.acquire() as conn:
        return await service.performance(conn, settings, vehicle_id, *window,
                                         hourly=granularity == "hour")
