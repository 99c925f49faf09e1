"""Simulated heartbeats and assignments, shaped as COPY rows and as SPEC §1 JSON events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple


class MeterEvent(NamedTuple):
    """Field order is meter_readings' COPY column order."""

    meter_id: str
    at: datetime
    kwh_ac: float
    voltage: float


class VehicleEvent(NamedTuple):
    """Field order is vehicle_readings' COPY column order."""

    vehicle_id: str
    at: datetime
    soc: float
    kwh_dc: float
    battery_temp: float
    meter_id: str | None


Event = MeterEvent | VehicleEvent
METER_COLUMNS = ("meter_id", "recorded_at", "kwh_consumed_ac", "voltage")
VEHICLE_COLUMNS = (
    "vehicle_id",
    "recorded_at",
    "soc",
    "kwh_delivered_dc",
    "battery_temp",
    "meter_id",
)


@dataclass(slots=True)
class Assignment:
    """An operator-recorded session [start, end); end is None while the session is open."""

    vehicle_id: str
    meter_id: str
    start: datetime
    end: datetime | None = None


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def to_json(event: Event) -> dict[str, Any]:
    """The flat ingest shape of SPEC §1."""
    if isinstance(event, MeterEvent):
        return {
            "meterId": event.meter_id,
            "kwhConsumedAc": event.kwh_ac,
            "voltage": event.voltage,
            "timestamp": iso(event.at),
        }
    body: dict[str, Any] = {
        "vehicleId": event.vehicle_id,
        "soc": event.soc,
        "kwhDeliveredDc": event.kwh_dc,
        "batteryTemp": event.battery_temp,
        "timestamp": iso(event.at),
    }
    if event.meter_id is not None:
        body["meterId"] = event.meter_id
    return body


def assignment_json(assignment: Assignment) -> dict[str, Any]:
    return {
        "vehicleId": assignment.vehicle_id,
        "meterId": assignment.meter_id,
        "from": iso(assignment.start),
        "to": iso(assignment.end) if assignment.end is not None else None,
    }
