"""GET live status: one device, or filtered, cursor-paged listings for dashboards."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import get
from litestar.di import NamedDependency

from kilowatch import openapi
from kilowatch.db.gateway import Gateway
from kilowatch.ingest.schemas import check_device_id
from kilowatch.settings import Settings
from kilowatch.status import service

Limit = Annotated[int, openapi.limit()]
Cursor = Annotated[str | None, openapi.cursor()]


# The response shapes (SPEC §4), for the document; status.service builds them.
class VehicleStatus(msgspec.Struct, rename="camel"):
    """A vehicle's newest heartbeat; `meterId` is the meter it is attached to at `recordedAt`
    (SPEC §5), or null. `charging`: not stale and `kwhDeliveredDc` > 0."""

    vehicle_id: str
    soc: float
    kwh_delivered_dc: float
    battery_temp: float
    meter_id: str | None
    recorded_at: datetime
    charging: bool
    stale: bool


class MeterStatus(msgspec.Struct, rename="camel"):
    """A meter's newest heartbeat. `active`: not stale and `kwhConsumedAc` > METER_IDLE_KWH."""

    meter_id: str
    kwh_consumed_ac: float
    voltage: float
    recorded_at: datetime
    active: bool
    stale: bool


class VehicleStatusPage(msgspec.Struct, rename="camel"):
    """A page by `vehicleId`; `nextCursor` is null on the last page."""

    items: list[VehicleStatus]
    next_cursor: str | None


class MeterStatusPage(msgspec.Struct, rename="camel"):
    """A page by `meterId`; `nextCursor` is null on the last page."""

    items: list[MeterStatus]
    next_cursor: str | None


_STALE = "`stale`: no heartbeat for more than STALE_AFTER_S (180 s)"


@get(
    "/v1/vehicles/{vehicle_id:str}/status",
    tags=["status"],
    summary="A vehicle's live status",
    description=_STALE,
    operation_class=openapi.operation(),
    responses={
        200: openapi.body(VehicleStatus, "The vehicle's live status"),
        **openapi.problems(404, 422, 503, s404="No heartbeat from this vehicle yet"),
    },
)
async def vehicle_status(
    vehicle_id: Annotated[
        str, openapi.path_id("The vehicle (named `vehicleId` in errors)", "V-42")
    ],
    gateway: NamedDependency[Gateway],
    settings: NamedDependency[Settings],
) -> dict[str, Any]:
    check_device_id(vehicle_id, "vehicleId")  # 422 before the database; unknown ids are 404
    async with gateway.read() as conn:
        return await service.vehicle_status(conn, settings, vehicle_id)


@get(
    "/v1/meters/{meter_id:str}/status",
    tags=["status"],
    summary="A meter's live status",
    description=_STALE,
    operation_class=openapi.operation(),
    responses={
        200: openapi.body(MeterStatus, "The meter's live status"),
        **openapi.problems(404, 422, 503, s404="No heartbeat from this meter yet"),
    },
)
async def meter_status(
    meter_id: Annotated[str, openapi.path_id("The meter (named `meterId` in errors)", "M-17")],
    gateway: NamedDependency[Gateway],
    settings: NamedDependency[Settings],
) -> dict[str, Any]:
    check_device_id(meter_id, "meterId")
    async with gateway.read() as conn:
        return await service.meter_status(conn, settings, meter_id)


@get(
    "/v1/vehicles/status",
    tags=["status"],
    summary="Vehicles' live status, by id",
    description=_STALE,
    operation_class=openapi.operation(),
    responses={
        200: openapi.body(VehicleStatusPage, "A page of vehicles, by id"),
        **openapi.problems(422, 503),
    },
)
async def list_vehicles(
    gateway: NamedDependency[Gateway],
    settings: NamedDependency[Settings],
    limit: Limit = 100,
    cursor: Cursor = None,
    charging: Annotated[bool | None, openapi.flag(None, "Only vehicles charging, or not")] = None,
    stale: Annotated[bool | None, openapi.flag(None, "Only stale vehicles, or fresh")] = None,
    meter_id: Annotated[
        str | None, openapi.query_id("meterId", "Only vehicles attached to this meter")
    ] = None,
) -> dict[str, Any]:
    if meter_id is not None:
        check_device_id(meter_id, "meterId")
    async with gateway.read() as conn:
        return await service.list_vehicles(
            conn,
            settings,
            limit=limit,
            cursor=cursor,
            charging=charging,
            stale=stale,
            meter_id=meter_id,
        )


@get(
    "/v1/meters/status",
    tags=["status"],
    summary="Meters' live status, by id",
    description=_STALE,
    operation_class=openapi.operation(),
    responses={
        200: openapi.body(MeterStatusPage, "A page of meters, by id"),
        **openapi.problems(422, 503),
    },
)
async def list_meters(
    gateway: NamedDependency[Gateway],
    settings: NamedDependency[Settings],
    limit: Limit = 100,
    cursor: Cursor = None,
    active: Annotated[bool | None, openapi.flag(None, "Only meters active, or idle")] = None,
    stale: Annotated[bool | None, openapi.flag(None, "Only stale meters, or fresh")] = None,
) -> dict[str, Any]:
    async with gateway.read() as conn:
        return await service.list_meters(
            conn, settings, limit=limit, cursor=cursor, active=active, stale=stale
        )


handlers = [vehicle_status, meter_status, list_vehicles, list_meters]
