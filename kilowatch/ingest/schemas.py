"""Wire shapes of the two telemetry streams and of the ingest response (SPEC §2, §7)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, NamedTuple

import msgspec
from msgspec import Meta

from kilowatch.errors import InvalidInput

# \Z, not $: `$` also matches before a trailing newline ("V-1\n").
DEVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}\Z"
DeviceId = Annotated[str, Meta(pattern=DEVICE_ID_PATTERN)]
Kwh = Annotated[
    float,
    Meta(
        ge=0,
        le=1000,
        description="kWh of the heartbeat's interval; under 1e-9 it is stored as 0",
    ),
]
DEVICE_ID_RULE = (
    "must be 1 to 64 letters, digits, '.', '_', ':' or '-', the first a letter or digit"
)
_device_id = re.compile(DEVICE_ID_PATTERN).match


def check_device_id(value: str, field: str) -> str:
    """`value` when it is a device id (SPEC §2), else InvalidInput naming `field`.

    Every route takes ids through this before the database sees them: a NUL, a line break or a
    stray character is a 422 naming the parameter, never a database error.
    """
    if not _device_id(value):
        raise InvalidInput(f"Invalid {field}", errors=[{"field": field, "message": DEVICE_ID_RULE}])
    return value


# Timestamps are strings in these shapes, parsed by kilowatch.timestamps: one grammar for every
# route (msgspec's own datetime decoding also takes a space for `T` and ±hhmm offsets).
# For the document only: that grammar within the years it accepts (the instant, in UTC, must also
# be in range, and the date must exist); tests/unit/test_openapi_patterns.py holds it to the parser.
TIMESTAMP_JSON_PATTERN = (
    r"^20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?"
    r"([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
TIMESTAMP_RULE = (
    "RFC 3339 with `Z` or ±hh:mm (T and Z in either case, up to 9 fractional digits, rounded to "
    "the microsecond), from 2000-01-01T00:00:00Z to before 2100-01-01T00:00:00Z as an instant"
)
Timestamp = Annotated[
    str,
    Meta(
        extra_json_schema={
            "format": "date-time",
            "pattern": TIMESTAMP_JSON_PATTERN,
            "description": TIMESTAMP_RULE,
        }
    ),
]


class MeterEvent(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    """A meter's heartbeat (grid side, AC): kWh consumed in its interval, volts."""

    meter_id: DeviceId
    kwh_consumed_ac: Kwh
    voltage: Annotated[float, Meta(gt=0, le=1500)]
    timestamp: Timestamp


class VehicleEvent(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    """A vehicle's heartbeat (battery side, DC): state of charge in %, kWh delivered in its
    interval, battery temperature in °C, and the meter it is plugged into, if it knows."""

    vehicle_id: DeviceId
    soc: Annotated[float, Meta(ge=0, le=100)]
    kwh_delivered_dc: Kwh
    battery_temp: Annotated[float, Meta(ge=-50, le=100)]
    timestamp: Timestamp
    meter_id: DeviceId | None = None


def _any_case(word: str) -> str:
    return "^" + "".join(f"[{c}{c.lower()}]" for c in word) + "$"


# Documentation only (validate.validate_item reads envelopes): the envelope shape per kind.
class MeterEnvelope(msgspec.Struct, forbid_unknown_fields=True):
    """A meter event in an envelope; `type` in any case."""

    type: Annotated[str, Meta(pattern=_any_case("METER"))]
    payload: MeterEvent


class VehicleEnvelope(msgspec.Struct, forbid_unknown_fields=True):
    """A vehicle event in an envelope; `type` in any case."""

    type: Annotated[str, Meta(pattern=_any_case("VEHICLE"))]
    payload: VehicleEvent


class FlatEvent(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    """Either kind's fields, each optional: the ingest fast path's one typed decode.

    UNSET (absent) is not null: a null anywhere fails the decode, and the general path reports it.
    """

    # Ids are matched by the fast path itself: msgspec's pattern check costs 1 µs per string.
    meter_id: str | msgspec.UnsetType | None = msgspec.UNSET  # null only on a vehicle
    vehicle_id: str | msgspec.UnsetType = msgspec.UNSET
    kwh_consumed_ac: Kwh | msgspec.UnsetType = msgspec.UNSET
    voltage: Annotated[float, Meta(gt=0, le=1500)] | msgspec.UnsetType = msgspec.UNSET
    soc: Annotated[float, Meta(ge=0, le=100)] | msgspec.UnsetType = msgspec.UNSET
    kwh_delivered_dc: Kwh | msgspec.UnsetType = msgspec.UNSET
    battery_temp: Annotated[float, Meta(ge=-50, le=100)] | msgspec.UnsetType = msgspec.UNSET
    timestamp: str | msgspec.UnsetType = msgspec.UNSET


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


class Refused(NamedTuple):
    """A valid row the database refused (a check it enforces, a day with no partition)."""

    message: str


# What storing a row came to: True new, False a duplicate, or refused by the database.
Outcome = bool | Refused


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
