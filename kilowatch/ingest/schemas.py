"""Wire shapes of the two telemetry streams and of the ingest response (SPEC §2, §7)."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, NamedTuple

import msgspec
from msgspec import Meta

# \Z, not $: `$` also matches before a trailing newline ("V-1\n").
DEVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}\Z"
DeviceId = Annotated[str, Meta(pattern=DEVICE_ID_PATTERN)]
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


class FlatEvent(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    """Either kind's fields, each optional: the ingest fast path's one typed decode.

    UNSET (absent) is not null: a null anywhere fails the decode, and the general path reports it.
    """

    # Ids are matched by the fast path itself: msgspec's pattern check costs 1 µs per string.
    meter_id: str | None | msgspec.UnsetType = msgspec.UNSET  # null only on a vehicle
    vehicle_id: str | msgspec.UnsetType = msgspec.UNSET
    kwh_consumed_ac: Kwh | msgspec.UnsetType = msgspec.UNSET
    voltage: Annotated[float, Meta(gt=0, le=1500)] | msgspec.UnsetType = msgspec.UNSET
    soc: Annotated[float, Meta(ge=0, le=100)] | msgspec.UnsetType = msgspec.UNSET
    kwh_delivered_dc: Kwh | msgspec.UnsetType = msgspec.UNSET
    battery_temp: Annotated[float, Meta(ge=-50, le=100)] | msgspec.UnsetType = msgspec.UNSET
    timestamp: Instant | msgspec.UnsetType = msgspec.UNSET


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
