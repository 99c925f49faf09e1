"""Per-vehicle performance read from the rollups (SPEC §5, §5.1).

Whole hours and days come from the vehicle's rollup rows; the window's partial edge hours, the
minutes above the frontier and the hours a dirty mark touches are computed from raw history
over the vehicle's meters, sharers included. Same answer as the reference statement
(`service.performance`), which tests and the bench compare it with.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kilowatch import timestamps
from kilowatch.analytics import estimate, service
from kilowatch.db import sqlfile
from kilowatch.db.gateway import Conn
from kilowatch.rollups import window
from kilowatch.rollups.plan import HOUR
from kilowatch.settings import Settings


async def performance(
    conn: Conn, settings: Settings, vehicle_id: str, from_: datetime, to: datetime, hourly: bool
) -> dict[str, Any]:
    """The vehicle's performance over [from_, to) (floored to the minute); NotFound if unknown."""
    from_, to = timestamps.floor_minute(from_), timestamps.floor_minute(to)
    async with window.snapshot(conn):
        w = await window.read(conn, from_, to, vehicle=vehicle_id, days=not hourly)
        p = w.plan
        row = await conn.fetchrow(
            sqlfile.load("kilowatch.analytics")["vehicle_rollup"],
            vehicle_id,
            p.days,
            p.hours,
            [lo for lo, _ in p.raw],
            [hi for _, hi in p.raw],
        )
        assert row is not None
        fitted = estimate.OFF
        if settings.estimate:
            fitted = await estimate.of_vehicle(conn, vehicle_id, w, list(row["meter_ids"]))
    figures: dict[str, Any] = dict(row)
    readings = row["vehicle_readings"]
    figures["avg_temp"] = row["temp_sum"] / readings if readings else None
    if hourly:
        figures.update(_hourly(from_, to, row))
    result = service.shape(settings, vehicle_id, from_, to, figures, hourly)
    estimate.publish(result, fitted, settings.efficiency_threshold)
    return result


def _hourly(from_: datetime, to: datetime, row: Any) -> dict[str, list[Any]]:
    """Every UTC hour overlapping the window, zeros where empty."""
    own = dict(zip(row["own_hours"], row["own_hour_dc"], strict=True))
    ac = dict(zip(row["attr_hours"], row["attr_hour_ac"], strict=True))
    attached = dict(zip(row["attr_hours"], row["attr_hour_dc"], strict=True))
    hours = []
    hour = from_.replace(minute=0)
    while hour < to:
        hours.append(hour)
        hour += HOUR
    return {
        "hours": hours,
        "hour_ac": [ac.get(h, 0.0) for h in hours],
        "hour_dc": [own.get(h, 0.0) for h in hours],
        "hour_attached_dc": [attached.get(h, 0.0) for h in hours],
    }
