"""Per-vehicle performance: the window rules and one correlation statement (SPEC §5)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from kilowatch import timestamps
from kilowatch.db import sqlfile
from kilowatch.errors import InvalidInput, NotFound
from kilowatch.settings import Settings

DEFAULT_SPAN = timedelta(hours=24)


def resolve_window(from_raw: str | None, to_raw: str | None, settings: Settings,
                   now: datetime | None = None) -> tuple[datetime, datetime]:
    """[from, to) floored to the UTC minute; `to` defaults to now, `from` to `to` - 24 h."""
    errors = []
    parsed: dict[str, datetime] = {}
    for field, raw in (("from", from_raw), ("to", to_raw)):
        if raw is None:
            continue
        try:
            parsed[field] = timestamps.floor_minute(timestamps.parse(raw))
        except ValueError as exc:
            errors.append({"field": field, "message": str(exc)})
    if errors:
        raise InvalidInput("Invalid analytics window", errors=errors)
    to = parsed.get("to") or timestamps.floor_minute(now or datetime.now(UTC))
    from_ = parsed.get("from") or to - DEFAULT_SPAN
    if from_ >= to:
        raise InvalidInput("Invalid analytics window", errors=[
            {"field": "from", "message": "must be earlier than `to` (after flooring to the minute)"}])
    if to - from_ > timedelta(days=settings.max_window_days):
        raise InvalidInput("Invalid analytics window", errors=[
            {"field": "to", "message": f"window exceeds {settings.max_window_days} days"}])
    return from_, to


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


async def performance(conn: asyncpg.Connection, settings: Settings, vehicle_id: str,
                      from_: datetime, to: datetime, hourly: bool) -> dict[str, Any]:
    """The vehicle's performance over [from_, to) (floored to the minute); NotFound if unknown."""
    from_, to = timestamps.floor_minute(from_), timestamps.floor_minute(to)
    row = await conn.fetchrow(sqlfile.load("kilowatch.analytics")["performance"],
                              vehicle_id, from_, to)
    assert row is not None
    if not row["known"]:
        raise NotFound("vehicle", vehicle_id)
    total_ac, attached_dc = float(row["total_ac"]), float(row["attached_dc"])
    efficiency = _ratio(attached_dc, total_ac)
    result: dict[str, Any] = {
        "vehicleId": vehicle_id,
        "from": timestamps.format_z(from_),
        "to": timestamps.format_z(to),
        "totalAcKwh": total_ac,
        "totalDcKwh": float(row["total_dc"]),
        "attachedDcKwh": attached_dc,
        "efficiency": efficiency,
        "lossKwh": total_ac - attached_dc,
        "coverage": _ratio(attached_dc, float(row["total_dc"])),
        "avgBatteryTemp": row["avg_temp"],
        "minBatteryTemp": row["min_temp"],
        "maxBatteryTemp": row["max_temp"],
        "vehicleReadings": row["vehicle_readings"],
        "meterReadings": int(row["meter_readings"]),
        "meters": [{"meterId": meter, "acKwh": ac, "minutes": minutes} for meter, ac, minutes
                   in zip(row["meter_ids"], row["meter_ac"], row["meter_minutes"])],
        "threshold": settings.efficiency_threshold,
        "belowThreshold": efficiency is not None and efficiency < settings.efficiency_threshold,
    }
    if hourly:
        result["hourly"] = [
            {"hour": timestamps.format_z(hour), "totalAcKwh": ac, "totalDcKwh": dc,
             "attachedDcKwh": att, "efficiency": _ratio(att, ac)}
            for hour, ac, dc, att in zip(row["hours"], row["hour_ac"], row["hour_dc"],
                                         row["hour_attached_dc"])
        ]
    return result
