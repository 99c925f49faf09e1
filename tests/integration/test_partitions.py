"""Daily history partitions (maintain, retention) and the schema's constraints."""
from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest

from kilowatch.db import migrate, partitions
from kilowatch.settings import Settings

TODAY = date(2025, 6, 15)


@pytest.fixture
async def bare(empty_db_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A migrated database with no partitions yet (the template's depend on today's date)."""
    connection = await asyncpg.connect(empty_db_url)
    try:
        await migrate.migrate(connection)
        yield connection
    finally:
        await connection.close()


async def partition_days(conn: asyncpg.Connection, table: str) -> list[date]:
    rows = await conn.fetch(
        """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = $1::regclass""", table)
    return sorted(datetime.strptime(r["relname"].rsplit("_p", 1)[1], "%Y%m%d").date()
                  for r in rows)


async def test_maintain_creates_exactly_the_accepted_range(bare: asyncpg.Connection) -> None:
    settings = Settings(database_url="unused")
    expected = partitions.accepted_days(settings, TODAY)
    created = await partitions.maintain(bare, settings, today=TODAY)
    assert created == 2 * len(expected)
    for table in partitions.HISTORY_TABLES:
        assert await partition_days(bare, table) == expected


async def test_partition_bounds_are_utc_days(bare: asyncpg.Connection) -> None:
    await partitions.maintain(bare, Settings(database_url="unused"), today=TODAY)
    bound = await bare.fetchval(
        "SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_class c WHERE relname = $1",
        "meter_readings_p20250615")
    assert "2025-06-15 00:00:00+00" in bound and "2025-06-16 00:00:00+00" in bound


async def test_maintain_is_idempotent(bare: asyncpg.Connection) -> None:
    settings = Settings(database_url="unused")
    assert await partitions.maintain(bare, settings, today=TODAY) > 0
    before = await partition_days(bare, "vehicle_readings")
    assert await partitions.maintain(bare, settings, today=TODAY) == 0
    assert await partition_days(bare, "vehicle_readings") == before


async def test_maintain_next_day_adds_one_partition_per_table(bare: asyncpg.Connection) -> None:
    settings = Settings(database_url="unused")
    await partitions.maintain(bare, settings, today=TODAY)
    assert await partitions.maintain(bare, settings, today=TODAY + timedelta(days=1)) == 2


async def test_retention_drops_only_partitions_older_than_retention(
    bare: asyncpg.Connection,
) -> None:
    settings = Settings(database_url="unused", retention_days=40)
    old = TODAY - timedelta(days=41)
    kept = TODAY - timedelta(days=40)
    for table in partitions.HISTORY_TABLES:
        for day in (old, kept):
            assert await bare.fetchval("SELECT kilowatch_create_partition($1::regclass, $2)",
                                       table, day)
    await bare.execute(
        "INSERT INTO meter_readings (meter_id, recorded_at, kwh_consumed_ac, voltage) "
        "VALUES ('m1', $1, 1, 230)", datetime.combine(old, datetime.min.time(), UTC))
    await partitions.maintain(bare, settings, today=TODAY)
    for table in partitions.HISTORY_TABLES:
        days = await partition_days(bare, table)
        assert old not in days
        assert kept in days
        assert days[-1] == TODAY + timedelta(days=settings.partition_days_ahead)
    assert await bare.fetchval("SELECT count(*) FROM meter_readings") == 0


async def test_without_retention_old_partitions_stay(bare: asyncpg.Connection) -> None:
    old = TODAY - timedelta(days=400)
    await bare.fetchval("SELECT kilowatch_create_partition('meter_readings'::regclass, $1)", old)
    await partitions.maintain(bare, Settings(database_url="unused"), today=TODAY)
    assert old in await partition_days(bare, "meter_readings")


async def test_create_partition_reports_whether_it_created(bare: asyncpg.Connection) -> None:
    sql = "SELECT kilowatch_create_partition('vehicle_readings'::regclass, $1)"
    assert await bare.fetchval(sql, TODAY) is True
    assert await bare.fetchval(sql, TODAY) is False
    drop = "SELECT kilowatch_drop_partition('vehicle_readings'::regclass, $1)"
    assert await bare.fetchval(drop, TODAY) == "vehicle_readings_p20250615"
    assert await bare.fetchval(drop, TODAY) is None


# Constraints, on the fixture's migrated database with today's accepted range.

async def test_row_outside_any_partition_is_rejected(conn: asyncpg.Connection) -> None:
    far = datetime.now(UTC) + timedelta(days=365)
    with pytest.raises(asyncpg.CheckViolationError, match="no partition"):
        await conn.execute(
            "INSERT INTO vehicle_readings (vehicle_id, recorded_at, soc, kwh_delivered_dc, "
            "battery_temp) VALUES ('v1', $1, 50, 1, 20)", far)


async def test_history_rejects_duplicate_device_and_instant(conn: asyncpg.Connection) -> None:
    now = datetime.now(UTC)
    insert = ("INSERT INTO meter_readings (meter_id, recorded_at, kwh_consumed_ac, voltage) "
              "VALUES ($1, $2, $3, 230)")
    await conn.execute(insert, "m1", now, 1.0)
    await conn.execute(insert, "M1", now, 1.0)  # ids are case-sensitive
    await conn.execute(insert, "m1", now + timedelta(microseconds=1), 1.0)
    with pytest.raises(asyncpg.UniqueViolationError):
        await conn.execute(insert, "m1", now, 2.0)
    assert await conn.fetchval("SELECT count(*) FROM meter_readings") == 3


async def test_vehicle_history_rejects_duplicates(conn: asyncpg.Connection) -> None:
    now = datetime.now(UTC)
    insert = ("INSERT INTO vehicle_readings (vehicle_id, recorded_at, soc, kwh_delivered_dc, "
              "battery_temp) VALUES ('v1', $1, $2, 1, 20)")
    await conn.execute(insert, now, 10.0)
    with pytest.raises(asyncpg.UniqueViolationError):
        await conn.execute(insert, now, 20.0)


@pytest.mark.parametrize("delta", [timedelta(0), timedelta(hours=-1)])
async def test_assignment_must_end_after_it_starts(
    conn: asyncpg.Connection, delta: timedelta
) -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute(
            "INSERT INTO assignments (vehicle_id, meter_id, valid_from, valid_to) "
            "VALUES ('v1', 'm1', $1, $2)", start, start + delta)


async def test_assignment_may_be_open_or_closed(conn: asyncpg.Connection) -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    insert = ("INSERT INTO assignments (vehicle_id, meter_id, valid_from, valid_to) "
              "VALUES ('v1', 'm1', $1, $2) RETURNING id")
    first = await conn.fetchval(insert, start, None)
    second = await conn.fetchval(insert, start, start + timedelta(hours=1))
    assert second > first


@pytest.mark.parametrize("table, key", [("meter_status", "meter_id"),
                                        ("vehicle_status", "vehicle_id")])
async def test_status_holds_one_row_per_device(
    conn: asyncpg.Connection, table: str, key: str
) -> None:
    columns = {"meter_status": "(meter_id, recorded_at, kwh_consumed_ac, voltage) "
                               "VALUES ('d1', now(), 1, 230)",
               "vehicle_status": "(vehicle_id, recorded_at, soc, kwh_delivered_dc, battery_temp) "
                                 "VALUES ('d1', now(), 50, 1, 20)"}[table]
    await conn.execute(f"INSERT INTO {table} {columns}")
    with pytest.raises(asyncpg.UniqueViolationError):
        await conn.execute(f"INSERT INTO {table} {columns}")
    assert await conn.fetchval(f"SELECT count(*) FROM {table} WHERE {key} = 'd1'") == 1
