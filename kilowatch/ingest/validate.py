"""Turns a request body into validated rows plus per-index, per-field rejections (SPEC §2)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from kilowatch import timestamps
from kilowatch.ingest import framing
from kilowatch.ingest.framing import NotJson
from kilowatch.ingest.schemas import (
    DEVICE_ID_PATTERN,
    FieldError,
    FlatEvent,
    MeterEvent,
    MeterRow,
    Rejection,
    Row,
    VehicleEvent,
    VehicleRow,
)

_decode_flat = msgspec.json.Decoder(list[FlatEvent] | FlatEvent).decode
_UNSET = msgspec.UNSET
_device_id = re.compile(DEVICE_ID_PATTERN).match
_PATH = re.compile(r" - at `\$\.?([^`]*)`$")
_NAMED = re.compile(r"(unknown|required) field `([^`]+)`")
# PostgreSQL raises on a float8 product or quotient that underflows to 0, and analytics multiply
# and divide energies: one stored 5e-324 kWh failed every analytics read of its window. Energies
# below this (a microwatt-hour: float noise of a delta) are stored as 0, what they mean.
ENERGY_FLOOR = 1e-9


def _energy(kwh: float) -> float:
    return kwh if kwh >= ENERGY_FLOOR else 0.0


@dataclass(frozen=True)
class Limits:
    clock_skew: timedelta
    max_age: timedelta


@dataclass
class Parsed:
    rows: list[Row] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    count: int = 0
    # Each row's index in the request; None when every item became a row, in order.
    indices: list[int] | None = None


def parse_body(
    body: bytes, ndjson: bool, limits: Limits, max_events: int, now: datetime | None = None
) -> Parsed:
    """The general path: the body split into items (framing), each decoded and judged alone.

    Raises framing.TooMany past `max_events` items, before any is decoded. Items are decoded
    one at a time and dropped once judged: a batch never holds more than one decoded event.
    """
    items, shallow = framing.split(body, ndjson=ndjson, max_items=max_events)
    return validate_items((_decoded(item, shallow) for item in items), limits, now)


def _decoded(item: framing.Item, shallow: bool) -> Any:
    if isinstance(item, NotJson):
        return item
    try:
        return framing.decode(item, shallow=shallow)
    except NotJson as exc:
        return exc


def _error(exc: msgspec.ValidationError, prefix: str) -> FieldError:
    text = str(exc)
    if named := _NAMED.search(text):
        name = named[2]
        message = f"unknown field {name!r}" if named[1] == "unknown" else "is required"
    else:
        path = _PATH.search(text)
        name = path[1] if path else ""
        message = _PATH.sub("", text)
    message = message.replace("Expected `float`", "expected a number").replace(
        "Expected `str`", "expected a string"
    )
    return FieldError(
        field=f"{prefix}{name}" if name else (prefix.rstrip(".") or "body"), message=message
    )


def _instant(raw: str, now: datetime, limits: Limits, prefix: str) -> datetime | FieldError:
    name = f"{prefix}timestamp"
    try:
        ts = timestamps.parse(raw)  # in UTC and in range: nothing below can overflow
    except ValueError as exc:
        return FieldError(name, str(exc))
    if ts > now + limits.clock_skew:
        return FieldError(name, "is in the future (beyond the allowed clock skew)")
    if ts < now - limits.max_age:
        return FieldError(name, f"is older than {limits.max_age.days} days")
    return ts


def validate_item(item: Any, now: datetime, limits: Limits) -> Row | FieldError:
    """One event, flat or envelope, to a row or the first error found."""
    if isinstance(item, NotJson):
        return FieldError("body", str(item))
    if not isinstance(item, dict):
        return FieldError("body", "an event must be a JSON object")
    prefix = ""
    if "type" in item or "payload" in item:
        prefix = "payload."
        unknown = sorted(set(item) - {"type", "payload"})
        if unknown:
            return FieldError(unknown[0], f"unknown field {unknown[0]!r} in an envelope")
        kind, payload = item.get("type"), item.get("payload")
        if not isinstance(kind, str) or kind.upper() not in ("METER", "VEHICLE"):
            return FieldError("type", "must be 'METER' or 'VEHICLE'")
        if not isinstance(payload, dict):
            return FieldError("payload", "must be a JSON object")
        is_vehicle = kind.upper() == "VEHICLE"
        if is_vehicle and "vehicleId" not in payload and "meterId" in payload:
            return FieldError(
                "type", "is VEHICLE but the payload is a meter reading (no vehicleId)"
            )
        if not is_vehicle and "vehicleId" in payload:
            return FieldError(
                "type", "is METER but the payload is a vehicle reading (has vehicleId)"
            )
        item = payload
    elif "vehicleId" in item:
        is_vehicle = True
    elif "meterId" in item:
        is_vehicle = False
    else:
        return FieldError(
            "vehicleId", "is required: an event needs vehicleId (vehicle) or meterId (meter)"
        )

    try:
        if is_vehicle:
            v = msgspec.convert(item, VehicleEvent, strict=True)
            ts = _instant(v.timestamp, now, limits, prefix)
            if isinstance(ts, FieldError):
                return ts
            return VehicleRow(
                v.vehicle_id, ts, v.soc, _energy(v.kwh_delivered_dc), v.battery_temp, v.meter_id
            )
        m = msgspec.convert(item, MeterEvent, strict=True)
        ts = _instant(m.timestamp, now, limits, prefix)
        if isinstance(ts, FieldError):
            return ts
        return MeterRow(m.meter_id, ts, _energy(m.kwh_consumed_ac), m.voltage)
    except msgspec.ValidationError as exc:
        return _error(exc, prefix)


def fast_path(
    body: bytes, limits: Limits, max_events: int, now: datetime | None = None
) -> Parsed | None:
    """Validates a body of only valid flat events in one typed decode, or returns None.

    The common case costs under half of the general path (which builds dicts, then converts each).
    Anything else (an envelope, any invalid event, more than one kind's fields, an empty array)
    returns None, and the general path, the reference for every error message, judges the body.
    """
    # In a body this path accepts, every `{` opens an event: fields are scalars, and ids and
    # timestamps cannot hold one. So past `max_events` of them the general path counts exactly
    # (413), and this decode never builds more than `max_events` events.
    if body.count(b"{") > max_events:
        return None
    try:
        decoded = _decode_flat(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):  # ValidationError included
        return None
    events = decoded if isinstance(decoded, list) else [decoded]
    # All timestamps in one call, with the grammar every route uses (kilowatch.timestamps).
    instants = timestamps.parse_many([e.timestamp for e in events])
    if not instants:  # None (a timestamp missing or outside the grammar), or no event at all
        return None
    now = now or datetime.now(UTC)
    # Inside the window, so inside timestamps' range: the conversion below cannot overflow.
    earliest, latest = now - limits.max_age, now + limits.clock_skew
    rows: list[Row] = []
    for e, sent in zip(events, instants, strict=True):
        if not earliest <= sent <= latest:
            return None
        ts = sent.astimezone(UTC)
        if e.vehicle_id is not _UNSET:
            meter = None if e.meter_id is _UNSET else e.meter_id
            if (
                not _device_id(e.vehicle_id)
                or (meter is not None and not _device_id(meter))
                or e.soc is _UNSET
                or e.kwh_delivered_dc is _UNSET
                or e.battery_temp is _UNSET
                or e.kwh_consumed_ac is not _UNSET
                or e.voltage is not _UNSET
            ):
                return None
            rows.append(
                VehicleRow(
                    e.vehicle_id, ts, e.soc, _energy(e.kwh_delivered_dc), e.battery_temp, meter
                )
            )
        else:
            if (
                e.meter_id is None
                or e.meter_id is _UNSET
                or not _device_id(e.meter_id)
                or e.kwh_consumed_ac is _UNSET
                or e.voltage is _UNSET
                or e.soc is not _UNSET
                or e.kwh_delivered_dc is not _UNSET
                or e.battery_temp is not _UNSET
            ):
                return None
            rows.append(MeterRow(e.meter_id, ts, _energy(e.kwh_consumed_ac), e.voltage))
    return Parsed(rows=rows, count=len(events))


def validate_items(items: Iterable[Any], limits: Limits, now: datetime | None = None) -> Parsed:
    """Decoded items (or NotJson markers) to rows and rejections, by index."""
    now = now or datetime.now(UTC)
    parsed = Parsed(indices=[])
    for index, item in enumerate(items):
        result = validate_item(item, now, limits)
        if isinstance(result, FieldError):
            parsed.rejected.append(Rejection(index=index, errors=[result]))
        else:
            parsed.rows.append(result)
            parsed.indices.append(index)  # type: ignore[union-attr]
        parsed.count = index + 1
    return parsed
