"""HTTP routes for analytics: one vehicle's performance, the fleet, its vehicles and meters."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import get
from litestar.di import NamedDependency
from msgspec import Meta

from kilowatch import openapi
from kilowatch.analytics import fleet, service, vehicle
from kilowatch.db.gateway import Gateway
from kilowatch.errors import InvalidInput
from kilowatch.ingest.schemas import check_device_id
from kilowatch.settings import Settings

GRANULARITIES = ("hour",)
FLEET_GRANULARITIES = ("day", "hour")  # the first is the default
VEHICLE_SORTS = ("vehicleId", "efficiency", "-lossKwh", "estimate")
METER_SORTS = ("meterId", "-unattributedAcKwh")

# The response shapes (SPEC §5, §5.2, §5.3, §7), for the document; analytics.service, .vehicle
# and .fleet build them. kWh throughout; ratios are null where their denominator is 0.
Efficiency = Annotated[float, Meta(description="attachedDcKwh / totalAcKwh")] | None
Coverage = Annotated[float, Meta(description="attachedDcKwh / totalDcKwh")] | None


class Estimate(msgspec.Struct, rename="camel"):
    """The vehicle's own conversion efficiency, fitted jointly with its meters' sharers (SPEC §5.3),
    with a 95 % interval; `minutes` matched minutes used, `sharedMinutes` of them shared."""

    efficiency: float
    low: float
    high: float
    minutes: int
    shared_minutes: int


EstimateOrNull = Annotated[
    Estimate | None,
    Meta(description="null when no matched minute, or the vehicle's term is not identifiable"),
]


EstimateReason = Annotated[
    str | None,
    Meta(
        description="why `estimate` is null (no matched minute, not identifiable, too few minutes)"
    ),
]


class MeterUse(msgspec.Struct, rename="camel"):
    meter_id: str
    ac_kwh: float
    minutes: int


class VehicleHour(msgspec.Struct, rename="camel"):
    hour: datetime
    total_ac_kwh: float
    total_dc_kwh: float
    attached_dc_kwh: float
    efficiency: Efficiency


class Performance(msgspec.Struct, rename="camel"):
    """A vehicle over [from, to): its DC, the AC attributed to it, and how well they match."""

    vehicle_id: str
    from_: datetime = msgspec.field(name="from")
    to: datetime
    total_ac_kwh: float
    total_dc_kwh: float
    attached_dc_kwh: float
    efficiency: Efficiency
    loss_kwh: float
    coverage: Coverage
    avg_battery_temp: float | None
    min_battery_temp: float | None
    max_battery_temp: float | None
    vehicle_readings: int
    meter_readings: int
    meters: list[MeterUse]
    threshold: float
    below_threshold: bool
    estimate: EstimateOrNull
    estimate_reason: EstimateReason
    fault_suspected: bool
    hourly: list[VehicleHour] = msgspec.field(default_factory=list)  # with granularity=hour


class FleetHour(msgspec.Struct, rename="camel"):
    hour: datetime
    total_ac_kwh: float
    total_dc_kwh: float
    attached_dc_kwh: float
    efficiency: Efficiency
    meter_ac_kwh: float


class FleetSummary(msgspec.Struct, rename="camel"):
    """The fleet over [from, to): sums over the vehicles and meters with a reading in it;
    `belowThreshold` and `faultSuspected` count vehicles."""

    from_: datetime = msgspec.field(name="from")
    to: datetime
    vehicles: int
    meters: int
    total_ac_kwh: float
    total_dc_kwh: float
    attached_dc_kwh: float
    efficiency: Efficiency
    coverage: Coverage
    loss_kwh: float
    meter_ac_kwh: float
    unattributed_ac_kwh: float
    below_threshold: int
    fault_suspected: int
    threshold: float
    hourly: list[FleetHour] = msgspec.field(default_factory=list)  # with granularity=hour


class FleetVehicle(msgspec.Struct, rename="camel"):
    vehicle_id: str
    total_ac_kwh: float
    total_dc_kwh: float
    attached_dc_kwh: float
    efficiency: Efficiency
    coverage: Coverage
    loss_kwh: float
    vehicle_readings: int
    meter_readings: int
    below_threshold: bool
    estimate: EstimateOrNull
    estimate_reason: EstimateReason
    fault_suspected: bool


class FleetVehiclePage(msgspec.Struct, rename="camel"):
    items: list[FleetVehicle]
    next_cursor: str | None


class FleetMeter(msgspec.Struct, rename="camel"):
    """A meter's ledger: `acKwh` = `attributedAcKwh` + `unattributedAcKwh`; `vehicles` given AC."""

    meter_id: str
    ac_kwh: float
    attributed_ac_kwh: float
    unattributed_ac_kwh: float
    meter_readings: int
    matched_minutes: int
    vehicles: int


class FleetMeterPage(msgspec.Struct, rename="camel"):
    items: list[FleetMeter]
    next_cursor: str | None


_WINDOW = (
    "The window is [from, to), both floored to the UTC minute; `from` must be earlier than `to` "
    "and the span at most MAX_WINDOW_DAYS (31 days), else 422."
)
From = Annotated[str | None, openapi.timestamp("from", "Start of the window; default `to` - 24 h")]
To = Annotated[str | None, openapi.timestamp(None, "End of the window (excluded); default now")]
Limit = Annotated[int, openapi.limit()]
Cursor = Annotated[str | None, openapi.cursor()]


def _choice(name: str, value: str | None, allowed: tuple[str, ...]) -> str:
    if value is None:
        return allowed[0]
    if value not in allowed:
        raise InvalidInput(
            f"Invalid {name}",
            errors=[{"field": name, "message": "must be one of " + ", ".join(allowed)}],
        )
    return value


@get(
    "/v1/analytics/performance/{vehicle_id:str}",
    tags=["analytics"],
    summary="A vehicle's energy efficiency over a window, correlated with its meters",
    description=_WINDOW,
    operation_class=openapi.operation(),
    responses={
        200: openapi.body(Performance, "The vehicle's figures (zeros and nulls with no data)"),
        **openapi.problems(
            404, 422, 503, s404="The vehicle has sent no reading and is named in no assignment"
        ),
    },
)
async def vehicle_performance(
    vehicle_id: Annotated[
        str, openapi.path_id("The vehicle (named `vehicleId` in errors)", "V-42")
    ],
    gateway: NamedDependency[Gateway],
    settings: NamedDependency[Settings],
    from_: From = None,
    to: To = None,
    granularity: Annotated[
        str | None, openapi.choice(None, GRANULARITIES, "`hour` adds `hourly`")
    ] = None,
) -> dict[str, Any]:
    check_device_id(vehicle_id, "vehicleId")
    if granularity not in (None, *GRANULARITIES):
        raise InvalidInput(
            "Invalid granularity", errors=[{"field": "granularity", "message": "must be `hour`"}]
        )
    window = service.resolve_window(from_, to, settings)
    async with gateway.read() as conn:
        return await vehicle.performance(
            conn, settings, vehicle_id, *window, hourly=granularity == "hour"
        )


@get(
    "/v1/analytics/fleet",
    tags=["analytics"],
    summary="The fleet's energy over a window: totals, counts, hourly",
    description=_WINDOW,
    operation_class=openapi.operation(),
    responses={
        200: openapi.body(FleetSummary, "The fleet's figures"),
        **openapi.problems(422, 503),
    },
)
async def fleet_summary(
    gateway: NamedDependency[Gateway],
    settings: NamedDependency[Settings],
    from_: From = None,
    to: To = None,
    granularity: Annotated[
        str | None,
        openapi.choice(None, FLEET_GRANULARITIES, "`hour` adds `hourly`; `day` (default) not"),
    ] = None,
) -> dict[str, Any]:
    hourly = _choice("granularity", granularity, FLEET_GRANULARITIES) == "hour"
    window = service.resolve_window(from_, to, settings)
    async with gateway.read(settings.analytics_timeout_s) as conn:
        return await fleet.summary(conn, settings, *window, hourly, memo=gateway.memo)


@get(
    "/v1/analytics/vehicles",
    tags=["analytics"],
    summary="Every vehicle with a reading in the window: its figures, filtered and sorted",
    description=f"{_WINDOW} Ties are broken by id; nulls sort last.",
    operation_class=openapi.operation(),
    responses={
        200: openapi.body(FleetVehiclePage, "A page of vehicles"),
        **openapi.problems(422, 503),
    },
)
async def fleet_vehicles(
    gateway: NamedDependency[Gateway],
    settings: NamedDependency[Settings],
    from_: From = None,
    to: To = None,
    below_threshold: Annotated[
        bool | None, openapi.flag("belowThreshold", "Only vehicles below the threshold, or not")
    ] = None,
    fault_suspected: Annotated[
        bool | None, openapi.flag("faultSuspected", "Only vehicles suspected faulty, or not")
    ] = None,
    sort: Annotated[
        str | None,
        openapi.choice(
            None,
            VEHICLE_SORTS,
            "`vehicleId` (default), `efficiency` (ascending), `-lossKwh` (descending) or "
            "`estimate` (by `estimate.efficiency`, ascending)",
        ),
    ] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    order = _choice("sort", sort, VEHICLE_SORTS)
    window = service.resolve_window(from_, to, settings)
    async with gateway.read(settings.analytics_timeout_s) as conn:
        return await fleet.vehicles(
            conn,
            settings,
            *window,
            sort=order,
            limit=limit,
            cursor=cursor,
            below_threshold=below_threshold,
            fault_suspected=fault_suspected,
            memo=gateway.memo,
        )


@get(
    "/v1/analytics/meters",
    tags=["analytics"],
    summary="Every meter with a reading in the window: AC attributed and unattributed",
    description=f"{_WINDOW} Ties are broken by id.",
    operation_class=openapi.operation(),
    responses={
        200: openapi.body(FleetMeterPage, "A page of meters"),
        **openapi.problems(422, 503),
    },
)
async def fleet_meters(
    gateway: NamedDependency[Gateway],
    settings: NamedDependency[Settings],
    from_: From = None,
    to: To = None,
    sort: Annotated[
        str | None,
        openapi.choice(None, METER_SORTS, "`meterId` (default) or `-unattributedAcKwh`"),
    ] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    order = _choice("sort", sort, METER_SORTS)
    window = service.resolve_window(from_, to, settings)
    async with gateway.read() as conn:
        return await fleet.meters(
            conn,
            *window,
            sort=order,
            limit=limit,
            cursor=cursor,
        )


handlers = [vehicle_performance, fleet_summary, fleet_vehicles, fleet_meters]
