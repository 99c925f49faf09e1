"""Analytics windows (SPEC §5), the reference statement over raw history, and the response shape."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from kilowatch import timestamps
from kilowatch.analytics import estimate
from kilowatch.db import sqlfile
from kilowatch.db.gateway import Conn
from kilowatch.errors import InvalidInput, NotFound
from kilowatch.rollups import window
from kilowatch.settings import Settings

DEFAULT_SPAN = timedelta(hours=24)


def resolve_window(
    from_raw: str | None, to_raw: str | None, settings: Settings, now: datetime | None = None
) -> tuple[datetime, datetime]:
    """[from, to) floored to the UTC minute; `to` defaults to now, `from` to `to` - 24 h.

    Given values are confined to timestamps' range (2000 to 2099) before any arithmetic, so a
    default `from` cannot overflow and no window reaches the database as ±infinity.
    """
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
        raise InvalidInput(
            "Invalid analytics window",
            errors=[
                {
                    "field": "from",
                    "message": "must be earlier than `to` (after flooring to the minute)",
                }
            ],
        )
    if to - from_ > timedelta(days=settings.max_window_days):
        raise InvalidInput(
            "Invalid analytics window",
            errors=[{"field": "to", "message": f"window exceeds {settings.max_window_days} days"}],
        )
    return from_, to


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


async def performance(
    conn: Conn,
    settings: Settings,
    vehicle_id: str,
    from_: datetime,
    to: datetime,
    hourly: bool,
) -> dict[str, Any]:
    """The reference: the vehicle's performance over [from_, to) from raw history (SPEC §5)."""
    from_, to = timestamps.floor_minute(from_), timestamps.floor_minute(to)
    row = await conn.fetchrow(
        sqlfile.load("kilowatch.analytics")["performance_raw"], vehicle_id, from_, to
    )
    assert row is not None
    result = shape(settings, vehicle_id, from_, to, dict(row), hourly)
    meters = list(row["meter_ids"])
    fitted = await estimate.of_vehicle(conn, vehicle_id, window.raw(from_, to), meters)
    estimate.publish(result, fitted, settings.efficiency_threshold)
    return result


def shape(
    settings: Settings,
    vehicle_id: str,
    from_: datetime,
    to: datetime,
    row: Mapping[str, Any],
    hourly: bool,
) -> dict[str, Any]:
    """SPEC §7's performance object from the figures of one vehicle's window; NotFound if unknown.

    `row` holds what the reference statement returns (the rollup read returns the same).
    """
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
        "meters": [
            {"meterId": meter, "acKwh": ac, "minutes": minutes}
            for meter, ac, minutes in zip(
                row["meter_ids"], row["meter_ac"], row["meter_minutes"], strict=True
            )
        ],
        "threshold": settings.efficiency_threshold,
        "belowThreshold": efficiency is not None and efficiency < settings.efficiency_threshold,
    }
    # Until the caller publishes the estimate (analytics.estimate.publish): the rule's verdict.
    estimate.publish(result, estimate.NO_MATCHED_MINUTE, settings.efficiency_threshold)
    if hourly:
        result["hourly"] = [
            {
                "hour": timestamps.format_z(hour),
                "totalAcKwh": ac,
                "totalDcKwh": dc,
                "attachedDcKwh": att,
                "efficiency": _ratio(att, ac),
            }
            for hour, ac, dc, att in zip(
                row["hours"], row["hour_ac"], row["hour_dc"], row["hour_attached_dc"], strict=True
            )
        ]
    return result
