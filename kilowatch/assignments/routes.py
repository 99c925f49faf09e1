"""HTTP routes for assignments: create, list, delete."""
from __future__ import annotations

from typing import Annotated, Any

import asyncpg
import msgspec
from litestar import Request, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from kilowatch.assignments import service
from kilowatch.errors import InvalidInput


@post("/v1/assignments", tags=["assignments"], status_code=201,
      summary="Record that a vehicle is attached to a meter over [from, to)")
async def create_assignment(request: Request[Any, Any, Any],
                            pool: NamedDependency[asyncpg.Pool]) -> dict[str, Any]:
    try:
        body = msgspec.json.decode(await request.body())
    except msgspec.DecodeError:
        raise InvalidInput("Invalid assignment",
                           errors=[{"field": "body", "message": "is not valid JSON"}]) from None
    vehicle_id, meter_id, from_, to = service.validate(body)
    async with pool.acquire() as conn:
        return await service.create(conn, vehicle_id, meter_id, from_, to)


@get("/v1/assignments", tags=["assignments"],
     summary="List assignments, by vehicle and from, optionally filtered")
async def list_assignments(
    pool: NamedDependency[asyncpg.Pool],
    vehicle_id: Annotated[str | None, QueryParameter(name="vehicleId")] = None,
    meter_id: Annotated[str | None, QueryParameter(name="meterId")] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=1000, description="Page size")] = 100,
    cursor: Annotated[str | None, QueryParameter(
        description="nextCursor of the previous page")] = None,
) -> dict[str, Any]:
    async with pool.acquire() as conn:
        return await service.list_(conn, vehicle_id, meter_id, limit, cursor)


@delete("/v1/assignments/{assignment_id:int}", tags=["assignments"], status_code=204,
        summary="Delete an assignment")
async def delete_assignment(assignment_id: FromPath[int], pool: NamedDependency[asyncpg.Pool]) -> None:
    async with pool.acquire() as conn:
        await service.delete(conn, assignment_id)
