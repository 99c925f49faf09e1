"""Assignments: validation, per-vehicle serialised inserts with overlap checks, listing, delete."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from kilowatch import timestamps
from kilowatch.db import sqlfile
from kilowatch.db.gateway import Conn
from kilowatch.errors import Conflict, InvalidInput, NotFound
from kilowatch.ingest.schemas import DEVICE_ID_PATTERN

DEVICE_ID = re.compile(DEVICE_ID_PATTERN)
FIELDS = ("vehicleId", "meterId", "from", "to")
MAX_ID = 2**63 - 1  # ids are bigserial: 1 to the bigint's maximum
_ID = re.compile(r"[1-9][0-9]{0,18}")


def _queries() -> dict[str, str]:
    return sqlfile.load("kilowatch.assignments")


def validate(body: Any) -> tuple[str, str, datetime, datetime | None]:
    """(vehicle_id, meter_id, from, to) from a request body, or InvalidInput naming each field."""
    if not isinstance(body, dict):
        raise InvalidInput(
            "Invalid assignment", errors=[{"field": "body", "message": "must be a JSON object"}]
        )
    errors = [{"field": str(key), "message": "unknown field"} for key in body if key not in FIELDS]
    ids: dict[str, str] = {}
    for field in ("vehicleId", "meterId"):
        value = body.get(field)
        if value is None:
            errors.append({"field": field, "message": "is required"})
        elif not isinstance(value, str) or not DEVICE_ID.match(value):
            errors.append({"field": field, "message": f"must match {DEVICE_ID.pattern}"})
        else:
            ids[field] = value
    times: dict[str, datetime] = {}
    for field in ("from", "to"):
        if body.get(field) is None:
            if field == "from":
                errors.append({"field": field, "message": "is required"})
            continue
        try:
            times[field] = timestamps.parse(body[field])
        except ValueError as exc:
            errors.append({"field": field, "message": str(exc)})
    if "from" in times and "to" in times and times["to"] <= times["from"]:
        errors.append({"field": "to", "message": "must be later than `from`"})
    if errors:
        raise InvalidInput("Invalid assignment", errors=errors)
    return ids["vehicleId"], ids["meterId"], times["from"], times.get("to")


def to_json(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "vehicleId": row["vehicle_id"],
        "meterId": row["meter_id"],
        "from": timestamps.format_z(row["valid_from"]),
        "to": timestamps.format_z(row["valid_to"]) if row["valid_to"] is not None else None,
    }


async def create(
    conn: Conn, vehicle_id: str, meter_id: str, from_: datetime, to: datetime | None
) -> dict[str, Any]:
    """Inserts the assignment unless it clashes with one of the vehicle's (Conflict)."""
    queries = _queries()
    async with conn.transaction():
        # Two concurrent inserts for one vehicle could each pass the overlap check; the lock
        # makes the check and the insert atomic per vehicle without locking other vehicles.
        await conn.execute(queries["lock_vehicle"], vehicle_id)
        clashes = [r["id"] for r in await conn.fetch(queries["conflicts"], vehicle_id, from_, to)]
        if clashes:
            raise Conflict(
                f"assignment overlaps assignment(s) {clashes} of vehicle {vehicle_id!r}: closed "
                "assignments may not overlap, and none may start inside a closed one or at the "
                "same instant as another"
            )
        row = await conn.fetchrow(queries["insert"], vehicle_id, meter_id, from_, to)
    assert row is not None
    return to_json(row)


def encode_cursor(row: asyncpg.Record) -> str:
    raw = msgspec.json.encode([row["vehicle_id"], row["valid_from"].isoformat(), row["id"]])
    return base64.urlsafe_b64encode(raw).decode()


def decode_cursor(cursor: str) -> tuple[str, datetime, int]:
    """(vehicle id, from, id) after which the next page starts, or InvalidInput.

    A cursor is only ever one we issued: each part is checked as if it had been sent on its own
    (a device id, a timestamp in range, an id the bigint holds) before the database sees it.
    """
    try:
        # A typed decode: nothing nested is built, and a wrong shape fails at its first value.
        raw = base64.b64decode(cursor, altchars=b"-_", validate=True)
        vehicle_id, from_, id_ = msgspec.json.decode(raw, type=tuple[str, str, int])
        if not DEVICE_ID.match(vehicle_id) or not 1 <= id_ <= MAX_ID:
            raise ValueError("not a cursor of ours")
        return vehicle_id, timestamps.parse(from_), id_
    except (ValueError, binascii.Error, msgspec.DecodeError, UnicodeError):
        raise InvalidInput(
            "Invalid cursor", errors=[{"field": "cursor", "message": "not a cursor from this API"}]
        ) from None


def parse_id(text: str) -> int:
    """An assignment id from a path; InvalidInput naming `id` when no assignment could have it."""
    if _ID.fullmatch(text) and (value := int(text)) <= MAX_ID:
        return value
    raise InvalidInput(
        "Invalid assignment id",
        errors=[{"field": "id", "message": f"must be an integer from 1 to {MAX_ID}"}],
    )


async def list_(
    conn: Conn,
    vehicle_id: str | None,
    meter_id: str | None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    after: tuple[str | None, datetime | None, int | None] = (None, None, None)
    if cursor:
        after = decode_cursor(cursor)
    rows = await conn.fetch(_queries()["list"], vehicle_id, meter_id, *after, limit + 1)
    page = rows[:limit]
    more = len(rows) > limit
    return {
        "items": [to_json(r) for r in page],
        "nextCursor": encode_cursor(page[-1]) if more and page else None,
    }


async def delete(conn: Conn, assignment_id: int) -> None:
    if await conn.fetchval(_queries()["delete"], assignment_id) is None:
        raise NotFound("assignment", str(assignment_id))
