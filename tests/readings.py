"""Test data loaded by direct SQL: history rows, status rows (so vehicles are known), assignments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

# Two days ago, 10:00 UTC: inside the partitions the template database has.
T0 = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0) - timedelta(days=2)


def at(minute: float) -> datetime:
    """T0 plus a number of minutes (fractions give seconds)."""
    return T0 + timedelta(minutes=minute)


async def vehicle(
    conn: asyncpg.Connection,
    vehicle_id: str,
    minute: float,
    dc: float,
    *,
    meter: str | None = None,
    temp: float = 30.0,
) -> None:
    await conn.execute(
        "INSERT INTO vehicle_readings (vehicle_id, recorded_at, soc, kwh_delivered_dc,"
        " battery_temp, meter_id) VALUES ($1, $2, 50, $3, $4, $5)",
        vehicle_id,
        at(minute),
        dc,
        temp,
        meter,
    )
    await conn.execute(
        "INSERT INTO vehicle_status (vehicle_id, recorded_at, soc, kwh_delivered_dc, battery_temp,"
        " meter_id) VALUES ($1, $2, 50, $3, $4, $5) ON CONFLICT (vehicle_id) DO NOTHING",
        vehicle_id,
        at(minute),
        dc,
        temp,
        meter,
    )


async def meter(conn: asyncpg.Connection, meter_id: str, minute: float, ac: float) -> None:
    await conn.execute(
        "INSERT INTO meter_readings (meter_id, recorded_at, kwh_consumed_ac, voltage)"
        " VALUES ($1, $2, $3, 400)",
        meter_id,
        at(minute),
        ac,
    )


async def assign(
    conn: asyncpg.Connection,
    vehicle_id: str,
    meter_id: str,
    from_minute: float,
    to_minute: float | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO assignments (vehicle_id, meter_id, valid_from, valid_to) VALUES ($1, $2, $3, $4)",
        vehicle_id,
        meter_id,
        at(from_minute),
        None if to_minute is None else at(to_minute),
    )
