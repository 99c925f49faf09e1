"""GET live status: one device, or filtered, cursor-paged listings for dashboards."""
from __future__ import annotations

from typing import Annotated, Any

import asyncpg
from litestar.di import NamedDependency
from litestar import get
from litestar.params import FromPath, FromQuery, QueryParameter

from kilowatch.settings import Settings
from kilowatch.status import service

Limit = Annotated[int, QueryParameter(ge=1, le=1000, description="Page size")]
Cursor = Annotated[str | None, QueryParameter(description="nextCursor of the previous page")]


@get("/v1/vehicles/{vehicle_id:str}/status", tags=["status"], summary="A vehicle's live status")
async def vehicle_status(vehicle_id: FromPath[str], pool: NamedDependency[asyncpg.Pool], settings: NamedDependency[Settings]) -> dict[str, Any]:
    async with pool.acquire() as conn:
        return await service.vehicle_status(conn, settings, vehicle_id)


@get("/v1/meters/{meter_id:str}/status", tags=["status"], summary="A meter's live status")
async def meter_status(meter_id: FromPath[str], pool: NamedDependency[asyncpg.Pool], settings: NamedDependency[Settings]) -> dict[str, Any]:
    async with pool.acquire() as conn:
        return await service.meter_status(conn, settings, meter_id)


@get("/v1/vehicles/status", tags=["status"], summary="Vehicles' live status, by id")
async def list_vehicles(
    pool: NamedDependency[asyncpg.Pool], settings: NamedDependency[Settings], limit: Limit = 100, cursor: Cursor = None,
    charging: FromQuery[bool | None] = None, stale: FromQuery[bool | None] = None,
    meter_id: Annotated[str | None, QueryParameter(name="meterId")] = None,
) -> dict[str, Any]:
    async with pool.acquire() as conn:
        return await service.list_vehicles(conn, settings, limit=limit, cursor=cursor,
                                           charging=charging, stale=stale, meter_id=meter_id)


@get("/v1/meters/status", tags=["status"], summary="Meters' live status, by id")
async def list_meters(
    pool: NamedDependency[asyncpg.Pool], settings: NamedDependency[Settings], limit: Limit = 100, cursor: Cursor = None,
    active: FromQuery[bool | None] = None, stale: FromQuery[bool | None] = None,
) -> dict[str, Any]:
    async with pool.acquire() as conn:
        return await service.list_meters(conn, settings, limit=limit, cursor=cursor, active=active, stale=stale)


handlers = [vehicle_status, meter_status, list_vehicles, list_meters]
