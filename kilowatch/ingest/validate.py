"""Turns a request body into validated rows plus per-index, per-field rejections (SPEC §2)."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from kilowatch.ingest.schemas import (DEVICE_ID_PATTERN, FieldError, FlatEvent, MeterEvent,
                                      MeterRow, Rejection, Row, VehicleEvent, VehicleRow)

_decode = msgspec.json.Decoder().decode
_decode_flat = msgspec.json.Decoder(list[FlatEvent] | FlatEvent).decode
_UNSET = msgspec.UNSET
_device_id = re.compile(DEVICE_ID_PATTERN).match
_PATH = re.compile(r" - at `\$\.?([^`]*)`$")
_NAMED = re.compile(r"(unknown|required) field `([^`]+)`")


@dataclass(frozen=True)
class Limits:
    clock_skew: timedelta
    max_age: timedelta


@dataclass
class Parsed:
    rows: list[Row] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    count: int = 0


class NotJson(ValueError):
    """The body is not JSON."""


def decode_json(body: bytes) -> Any:
    try:
        return _decode(body)
    except msgspec.DecodeError:
        # msgspec refuses numbers out of float range (1e400) for the whole body; the stdlib
        # parser yields inf there, so only that event is rejected (by its range check).
        try:
            return json.loads(body, parse_constant=float)
        except (ValueError, RecursionError) as exc:
            raise NotJson(str(exc)) from exc


def split_ndjson(body: bytes) -> list[Any]:
    """One item per non-blank line; a line that is not JSON becomes a NotJson marker."""
    items: list[Any] = []
    for line in body.splitlines():
        if line.strip():
            try:
                items.append(decode_json(line))
            except NotJson as exc:
                items.append(exc)
    return items


def _error(exc: msgspec.ValidationError, prefix: str) -> FieldError:
    text = str(exc)
    if named := _NAMED.search(text):
        name = named[2]
        message = f"unknown field {name!r}" if named[1] == "unknown" else "is required"
    else:
        path = _PATH.search(text)
        name = path[1] if path else ""
        message = _PATH.sub("", text)
    message = message.replace("Expected `float`", "expected a number").replace("Expected `str`", "expected a string")
    return FieldError(field=f"{prefix}{name}" if name else (prefix.rstrip(".") or "body"), message=message)


def _check_time(ts: datetime, now: datetime, limits: Limits, prefix: str) -> tuple[datetime, FieldError | None]:
    ts = ts.astimezone(UTC)
    if ts > now + limits.clock_skew:
        return ts, FieldError(f"{prefix}timestamp", "is in the future (beyond the allowed clock skew)")
    if ts < now - limits.max_age:
        return ts, FieldError(f"{prefix}timestamp", f"is older than {limits.max_age.days} days")
    return ts, None


def validate_item(item: Any, now: datetime, limits: Limits) -> Row | FieldError:
    """One event, flat or envelope, to a row or the first error found."""
    if isinstance(item, NotJson):
        return FieldError("body", f"not valid JSON: {item}")
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
            return FieldError("type", "is VEHICLE but the payload is a meter reading (no vehicleId)")
        if not is_vehicle and "vehicleId" in payload:
            return FieldError("type", "is METER but the payload is a vehicle reading (has vehicleId)")
        item = payload
    elif "vehicleId" in item:
        is_vehicle = True
    elif "meterId" in item:
        is_vehicle = False
    else:
        return FieldError("vehicleId", "is required: an event needs vehicleId (vehicle) or meterId (meter)")

    try:
        if is_vehicle:
            v = msgspec.convert(item, VehicleEvent, strict=True)
            ts, problem = _check_time(v.timestamp, now, limits, prefix)
            return problem or VehicleRow(v.vehicle_id, ts, v.soc, v.kwh_delivered_dc, v.battery_temp, v.meter_id)
        m = msgspec.convert(item, MeterEvent, strict=True)
        ts, problem = _check_time(m.timestamp, now, limits, prefix)
        return problem or MeterRow(m.meter_id, ts, m.kwh_consumed_ac, m.voltage)
    except msgspec.ValidationError as exc:
        return _error(exc, prefix)


def fast_path(body: bytes, limits: Limits, now: datetime | None = None) -> Parsed | None:
    """Validates a body of only valid flat events in one typed decode, or returns None.

    The common case costs under half of the general path (which builds dicts, then converts each).
    Anything else (an envelope, any invalid event, more than one kind's fields) returns None,
    and the general path, the reference for every error message, judges the whole body.
    """
    try:
        decoded = _decode_flat(body)
    except msgspec.DecodeError:  # ValidationError included
        return None
    events = decoded if isinstance(decoded, list) else [decoded]
    now = now or datetime.now(UTC)
    earliest, latest = now - limits.max_age, now + limits.clock_skew
    rows: list[Row] = []
    for e in events:
        ts = e.timestamp
        if ts is _UNSET or not earliest <= ts <= latest:
            return None
        ts = ts.astimezone(UTC)
        if e.vehicle_id is not _UNSET:
            meter = None if e.meter_id is _UNSET else e.meter_id
            if (not _device_id(e.vehicle_id) or (meter is not None and not _device_id(meter))
                    or e.soc is _UNSET or e.kwh_delivered_dc is _UNSET or e.battery_temp is _UNSET
                    or e.kwh_consumed_ac is not _UNSET or e.voltage is not _UNSET):
                return None
            rows.append(VehicleRow(e.vehicle_id, ts, e.soc, e.kwh_delivered_dc, e.battery_temp,
                                   meter))
        else:
            if (e.meter_id is None or e.meter_id is _UNSET or not _device_id(e.meter_id)
                    or e.kwh_consumed_ac is _UNSET
                    or e.voltage is _UNSET or e.soc is not _UNSET
                    or e.kwh_delivered_dc is not _UNSET or e.battery_temp is not _UNSET):
                return None
            rows.append(MeterRow(e.meter_id, ts, e.kwh_consumed_ac, e.voltage))
    return Parsed(rows=rows, count=len(events))


def validate_items(items: list[Any], limits: Limits, now: datetime | None = None) -> Parsed:
    now = now or datetime.now(UTC)
    parsed = Parsed(count=len(items))
    for index, item in enumerate(items):
        result = validate_item(item, now, limits)
        if isinstance(result, FieldError):
            parsed.rejected.append(Rejection(index=index, errors=[result]))
        else:
            parsed.rows.append(result)
    return parsed
