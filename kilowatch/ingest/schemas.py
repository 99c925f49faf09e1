"""Wire shapes of the two telemetry streams and of the ingest response (SPEC §2, §7)."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, NamedTuple

import msgspec
from msgspec import Meta

DeviceId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]
Kwh = Annotated[float, Meta(ge=0, le=1000)]
Instant = Annotated[datetime, Meta(tz=True)]


class MeterEvent(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    meter_id: DeviceId
    kwh_consumed_ac: Kwh
    voltage: Annotated[float, Meta(gt=0, le=1500)]
    timestamp: Instant


class VehicleEvent(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    vehicle_id: DeviceId
    soc: Annotated[float, Meta(ge=0, le=100)]
    kwh_delivered_dc: Kwh
    battery_temp: Annotated[float, Meta(ge=-50, le=100)]
    timestamp: Instant
    meter_id: DeviceId | None = None


class MeterRow(NamedTuple):
    """A validated meter reading, timestamp in UTC."""

    meter_id: str
    recorded_at: datetime
    kwh_consumed_ac: float
    voltage: float


class VehicleRow(NamedTuple):
    """A validated vehicle reading, timestamp in UTC."""

    vehicle_id: str
    recorded_at: datetime
    soc: float
    kwh_delivered_dc: float
    battery_temp: float
    meter_id: str | None


Row = MeterRow | VehicleRow


class FieldError(msgspec.Struct):
    field: str
    message: str


class Rejection(msgspec.Struct):
    index: int
    errors: list[FieldError]


class IngestResult(msgspec.Struct):
    accepted: int
    duplicates: int
    rejected: list[Rejection]
