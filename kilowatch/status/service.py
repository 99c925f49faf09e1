"""Reads live status rows and shapes them as SPEC §4 says."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from typing import Any

import asyncpg

from kilowatch.db import sqlfile
from kilowatch.db.gateway import Conn
from kilowatch.errors import InvalidInput, NotFound
from kilowatch.ingest.schemas import DEVICE_ID_PATTERN
from kilowatch.settings import Settings

_device_id = re.compile(DEVICE_ID_PATTERN).match


def iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    """The last id of the previous page, or InvalidInput: a cursor is only ever one we issued."""
    if not cursor:
        return None
    try:
        # validate=True: the default silently drops characters outside the alphabet.
        last_id = base64.b64decode(
            cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True
        ).decode()
        # Ids we issue are device ids: anything else (a NUL, a line break) is not our cursor.
        if not _device_id(last_id):
            raise ValueError("not a device id")
        return last_id
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise InvalidInput(
            "invalid cursor",
            errors=[{"field": "cursor", "message": "not a cursor this API issued"}],
        ) from exc


def vehicle(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "vehicleId": row["vehicle_id"],
        "soc": row["soc"],
        "kwhDeliveredDc": row["kwh_delivered_dc"],
        "batteryTemp": row["battery_temp"],
        "meterId": row["meter_id"],
        "recordedAt": iso(row["recorded_at"]),
        "charging": not row["stale"] and row["kwh_delivered_dc"] > 0,
        "stale": row["stale"],
    }


def meter(row: asyncpg.Record, settings: Settings) -> dict[str, Any]:
    return {
        "meterId": row["meter_id"],
        "kwhConsumedAc": row["kwh_consumed_ac"],
        "voltage": row["voltage"],
        "recordedAt": iso(row["recorded_at"]),
        "active": not row["stale"] and row["kwh_consumed_ac"] > settings.meter_idle_kwh,
        "stale": row["stale"],
    }


def _page(items: list[dict[str, Any]], limit: int, id_field: str) -> dict[str, Any]:
    more = len(items) > limit
    items = items[:limit]
    return {
        "items": items,
        "nextCursor": encode_cursor(items[-1][id_field]) if more and items else None,
    }


async def vehicle_status(conn: Conn, settings: Settings, vehicle_id: str) -> dict[str, Any]:
    rows = await conn.fetch(
        sqlfile.load("kilowatch.status")["vehicles"],
        vehicle_id,
        None,
        1,
        settings.stale_after_s,
        None,
        None,
        None,
    )
    if not rows:
        raise NotFound("vehicle", vehicle_id)
    return vehicle(rows[0])


async def meter_status(conn: Conn, settings: Settings, meter_id: str) -> dict[str, Any]:
    rows = await conn.fetch(
        sqlfile.load("kilowatch.status")["meters"],
        meter_id,
        None,
        1,
        settings.stale_after_s,
        settings.meter_idle_kwh,
        None,
        None,
    )
    if not rows:
        raise NotFound("meter", meter_id)
    return meter(rows[0], settings)


async def list_vehicles(
    conn: Conn,
    settings: Settings,
    *,
    limit: int,
    cursor: str | None,
    charging: bool | None,
    stale: bool | None,
    meter_id: str | None,
) -> dict[str, Any]:
    rows = await conn.fetch(
        sqlfile.load("kilowatch.status")["vehicles"],
        None,
        decode_cursor(cursor),
        limit + 1,
        settings.stale_after_s,
        charging,
        stale,
        meter_id,
    )
    return _page([vehicle(r) for r in rows], limit, "vehicleId")


async def list_meters(
    conn: Conn,
    settings: Settings,
    *,
    limit: int,
    cursor: str | None,
    active: bool | None,
    stale: bool | None,
) -> dict[str, Any]:
    rows = await conn.fetch(
        sqlfile.load("kilowatch.status")["meters"],
        None,
        decode_cursor(cursor),
        limit + 1,
        settings.stale_after_s,
        settings.meter_idle_kwh,
        active,
        stale,
    )
    return _page([meter(r, settings) for r in rows], limit, "meterId")
