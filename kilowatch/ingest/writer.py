"""Writes a batch of validated rows in one transaction and reports which rows were new."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from kilowatch.db import sqlfile
from kilowatch.db.gateway import Conn
from kilowatch.ingest.schemas import MeterRow, Row, VehicleRow

Key = tuple[bool, str, datetime]


def key(row: Row) -> Key:
    return (isinstance(row, VehicleRow), row[0], row[1])


def _columns(rows: list[Row], width: int) -> list[list[object]]:
    return (
        [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]
    )


async def write_batch(conn: Conn, rows: Sequence[Row]) -> list[bool]:
    """Stores rows (history + status) atomically; True for each row that was new.

    Of several copies of one key in `rows`, only the first can be new: the first copy wins.
    """
    first: dict[Key, int] = {}
    for i, row in enumerate(rows):
        first.setdefault(key(row), i)
    unique = [rows[i] for i in first.values()]
    meters = sorted((r for r in unique if isinstance(r, MeterRow)), key=lambda r: (r[0], r[1]))
    vehicles = sorted((r for r in unique if isinstance(r, VehicleRow)), key=lambda r: (r[0], r[1]))
    records = await conn.fetch(
        sqlfile.load("kilowatch.ingest")["write_batch"],
        *_columns(meters, len(MeterRow._fields)),  # type: ignore[arg-type]
        *_columns(vehicles, len(VehicleRow._fields)),  # type: ignore[arg-type]
    )
    inserted = {(r["is_vehicle"], r["device"], r["recorded_at"]) for r in records}
    return [first[key(row)] == i and key(row) in inserted for i, row in enumerate(rows)]
