"""Daily history partitions (maintain, retention) and the schema's constraints."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from kilowatch.db import migrate, partitions, sqlfile
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
           WHERE i.inhparent = $1::regclass""",
        table,
    )
    return sorted(datetime.strptime(r["relname"].rsplit("_p", 1)[1], "%Y%m%d").date() for r in rows)


async def test_maintain_creates_exactly_the_accepted_range(bare: asyncpg.Connection) -> None:
    settings = Settings(database_url="unused")
    expected = partitions.accepted_days(settings, TODAY)
    done = await partitions.maintain(bare, settings, today=TODAY)
    assert len(done.created) == 2 * len(expected) and done.dropped == []
    for table in partitions.HISTORY_TABLES:
        assert await partition_days(bare, table) == expected


async def test_partition_bounds_are_utc_days(bare: asyncpg.Connection) -> None:
    await partitions.maintain(bare, Settings(database_url="unused"), today=TODAY)
    bound = await bare.fetchval(
        "SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_class c WHERE relname = $1",
        "meter_readings_p20250615",
    )
    assert "2025-06-15 00:00:00+00" in bound and "2025-06-16 00:00:00+00" in bound


async def test_maintain_is_idempotent(bare: asyncpg.Connection) -> None:
    settings = Settings(database_url="unused")
    assert (await partitions.maintain(bare, settings, today=TODAY)).created
    before = await partition_days(bare, "vehicle_readings")
    assert (await partitions.maintain(bare, settings, today=TODAY)).created == []
    assert await partition_days(bare, "vehicle_readings") == before


async def test_maintain_next_day_adds_one_partition_per_table(bare: asyncpg.Connection) -> None:
    settings = Settings(database_url="unused")
    await partitions.maintain(bare, settings, today=TODAY)
    done = await partitions.maintain(bare, settings, today=TODAY + timedelta(days=1))
    ahead = TODAY + timedelta(days=1 + settings.partition_days_ahead)
    assert done.created == [f"{table}/{ahead}" for table in partitions.HISTORY_TABLES]


async def create(conn: asyncpg.Connection, table: str, day: date) -> bool:
    return bool(
        await conn.fetchval("SELECT kilowatch_create_partition($1::regclass, $2)", table, day)
    )


async def test_retention_drops_only_partitions_older_than_retention(
    bare: asyncpg.Connection,
) -> None:
    settings = Settings(database_url="unused", retention_days=40)
    old = TODAY - timedelta(days=41)
    kept = TODAY - timedelta(days=40)
    for table in partitions.HISTORY_TABLES:
        for day in (old, kept):
            assert await create(bare, table, day)
    await bare.execute(
        "INSERT INTO meter_readings (meter_id, recorded_at, kwh_consumed_ac, voltage) "
        "VALUES ('m1', $1, 1, 230)",
        datetime.combine(old, datetime.min.time(), UTC),
    )
    done = await partitions.maintain(bare, settings, today=TODAY)
    assert done.dropped == [f"{table}/{old}" for table in partitions.HISTORY_TABLES]
    for table in partitions.HISTORY_TABLES:
        days = await partition_days(bare, table)
        assert old not in days
        assert kept in days
        assert days[-1] == TODAY + timedelta(days=settings.partition_days_ahead)
        assert await bare.fetchval("SELECT to_regclass($1)", f"{table}_p{old:%Y%m%d}") is None
    assert await bare.fetchval("SELECT count(*) FROM meter_readings") == 0


async def test_retention_can_be_left_to_the_loop(bare: asyncpg.Connection) -> None:
    old = TODAY - timedelta(days=41)
    assert await create(bare, "meter_readings", old)
    settings = Settings(database_url="unused", retention_days=40)
    done = await partitions.maintain(bare, settings, today=TODAY, retention=False)
    assert done.dropped == [] and old in await partition_days(bare, "meter_readings")


async def test_without_retention_old_partitions_stay(bare: asyncpg.Connection) -> None:
    old = TODAY - timedelta(days=400)
    await create(bare, "meter_readings", old)
    await partitions.maintain(bare, Settings(database_url="unused"), today=TODAY)
    assert old in await partition_days(bare, "meter_readings")


async def test_create_partition_reports_whether_it_created(bare: asyncpg.Connection) -> None:
    assert await create(bare, "vehicle_readings", TODAY) is True
    assert await create(bare, "vehicle_readings", TODAY) is False


async def test_drop_partition_refuses_an_attached_partition(bare: asyncpg.Connection) -> None:
    # Dropping an attached partition would lock the parent exclusively: detach it first.
    await create(bare, "vehicle_readings", TODAY)
    drop = "SELECT kilowatch_drop_partition('vehicle_readings'::regclass, $1)"
    with pytest.raises(asyncpg.ObjectNotInPrerequisiteStateError, match="still attached"):
        await bare.fetchval(drop, TODAY)
    await bare.execute(
        "ALTER TABLE vehicle_readings DETACH PARTITION vehicle_readings_p20250615 CONCURRENTLY"
    )
    assert await bare.fetchval(drop, TODAY) == "public.vehicle_readings_p20250615"
    assert await bare.fetchval(drop, TODAY) is None


async def test_named_queries_prepare(bare: asyncpg.Connection) -> None:
    for name, sql in sqlfile.load("kilowatch.db").items():
        assert (await bare.prepare(sql)).get_parameters() is not None, name


# Attach: a standalone table with the parent's columns, constraints and every index.


async def indexes(conn: asyncpg.Connection, table: str) -> list[str]:
    """Each index of `table` by the parent index it is attached to (or its own definition)."""
    rows = await conn.fetch(
        """SELECT coalesce(p.indexrelid::regclass::text, i.indexrelid::regclass::text) AS name
           FROM pg_index i
           LEFT JOIN pg_inherits h ON h.inhrelid = i.indexrelid
           LEFT JOIN pg_index p ON p.indexrelid = h.inhparent
           WHERE i.indrelid = $1::regclass ORDER BY 1""",
        table,
    )
    return [r["name"] for r in rows]


async def test_attached_partition_has_every_index_of_the_parent(bare: asyncpg.Connection) -> None:
    # An index added to the parent later (another migration) reaches new partitions too.
    await bare.execute("CREATE INDEX vehicle_readings_soc_idx ON vehicle_readings (soc)")
    await create(bare, "vehicle_readings", TODAY)
    await create(bare, "meter_readings", TODAY)
    assert await indexes(bare, "vehicle_readings_p20250615") == [
        "vehicle_readings_meter_idx",
        "vehicle_readings_pkey",
        "vehicle_readings_soc_idx",
        "vehicle_readings_time_brin",
    ]
    assert await indexes(bare, "meter_readings_p20250615") == [
        "meter_readings_pkey",
        "meter_readings_time_brin",
    ]
    # Every index of the parent is valid: all its partitions have theirs.
    assert not await bare.fetchval(
        "SELECT count(*) FROM pg_index WHERE indrelid = 'vehicle_readings'::regclass"
        " AND NOT indisvalid"
    )


async def test_attached_partition_has_the_columns_defaults_and_bounds(
    bare: asyncpg.Connection,
) -> None:
    await create(bare, "vehicle_readings", TODAY)
    columns = """SELECT attname, format_type(atttypid, atttypmod), attnotnull,
                        pg_get_expr(d.adbin, d.adrelid)
                 FROM pg_attribute a LEFT JOIN pg_attrdef d
                      ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                 WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped
                 ORDER BY attnum"""
    parent = await bare.fetch(columns, "vehicle_readings")
    assert await bare.fetch(columns, "vehicle_readings_p20250615") == parent
    check = await bare.fetchval(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = 'vehicle_readings_p20250615'::regclass AND contype = 'c'"
    )
    assert "2025-06-15 00:00:00+00" in check and "2025-06-16 00:00:00+00" in check
    stamp = datetime(2025, 6, 15, 23, 59, tzinfo=UTC)
    await bare.execute(
        "INSERT INTO vehicle_readings (vehicle_id, recorded_at, soc, kwh_delivered_dc,"
        " battery_temp) VALUES ('v1', $1, 50, 1, 20)",
        stamp,
    )
    row = await bare.fetchrow(
        "SELECT tableoid::regclass::text AS t, received_at FROM vehicle_readings"
    )
    assert row["t"] == "vehicle_readings_p20250615" and row["received_at"] is not None


async def test_a_table_left_unattached_is_attached(bare: asyncpg.Connection) -> None:
    await create(bare, "meter_readings", TODAY)
    await bare.execute(
        "ALTER TABLE meter_readings DETACH PARTITION meter_readings_p20250615 CONCURRENTLY"
    )
    assert TODAY not in await partition_days(bare, "meter_readings")
    assert await create(bare, "meter_readings", TODAY) is True
    assert TODAY in await partition_days(bare, "meter_readings")


# Never an exclusive lock on the parent: reads and inserts go on while partitions change.


@pytest.fixture
async def reader(empty_db_url: str, bare: asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
    """A connection in the middle of a read transaction over both history tables."""
    connection = await asyncpg.connect(empty_db_url)
    try:
        transaction = connection.transaction()
        await transaction.start()
        for table in partitions.HISTORY_TABLES:
            await connection.fetchval(f"SELECT count(*) FROM {table}")  # fixed test names
        yield connection
        await transaction.rollback()
    finally:
        await connection.close()


@pytest.fixture
async def impatient(
    empty_db_url: str, bare: asyncpg.Connection
) -> AsyncIterator[asyncpg.Connection]:
    """A connection that gives up on any lock after 200 ms."""
    connection = await asyncpg.connect(empty_db_url, server_settings={"lock_timeout": "200"})
    try:
        yield connection
    finally:
        await connection.close()


async def test_creating_a_partition_does_not_wait_for_an_open_read(
    bare: asyncpg.Connection, reader: asyncpg.Connection, impatient: asyncpg.Connection
) -> None:
    # The old CREATE TABLE ... PARTITION OF waited here for ACCESS EXCLUSIVE (and every insert
    # queued behind it): with a 200 ms lock_timeout it failed.
    assert await create(impatient, "vehicle_readings", TODAY + timedelta(days=30))
    await impatient.execute(
        "INSERT INTO vehicle_readings (vehicle_id, recorded_at, soc, kwh_delivered_dc,"
        " battery_temp) VALUES ('v1', $1, 50, 1, 20)",
        datetime.combine(TODAY + timedelta(days=30), datetime.min.time(), UTC),
    )


async def test_retention_waits_for_an_open_read_without_blocking_inserts(
    bare: asyncpg.Connection, reader: asyncpg.Connection, impatient: asyncpg.Connection
) -> None:
    old = TODAY - timedelta(days=41)
    for table in partitions.HISTORY_TABLES:
        await create(bare, table, old)
        await create(bare, table, TODAY)
    settings = Settings(database_url="unused", retention_days=40)
    await impatient.execute("SET lock_timeout = '100ms'")
    passing = asyncio.create_task(partitions.maintain(impatient, settings, today=TODAY))
    try:
        # The detach waits for the reader (it might still read the old partition); meanwhile
        # inserts go on, under the same 100 ms lock_timeout, and the detach is pending.
        async with asyncio.timeout(30):
            while not await bare.fetchval(
                "SELECT count(*) FROM pg_inherits WHERE inhdetachpending"
            ):
                await asyncio.sleep(0.05)
        for n in range(20):
            await bare.execute(
                "SET lock_timeout = '100ms'; INSERT INTO meter_readings (meter_id, recorded_at,"
                f" kwh_consumed_ac, voltage) VALUES ('m{n}', '2025-06-15 12:00Z', 1, 230)"
            )
        assert not passing.done()
    finally:
        await reader.execute("ROLLBACK")
    async with asyncio.timeout(partitions.STEP_BUDGET_S):
        done = await passing
    assert done.dropped == [f"{table}/{old}" for table in partitions.HISTORY_TABLES]
    assert await bare.fetchval("SELECT count(*) FROM meter_readings") == 20


async def test_an_interrupted_detach_is_finished_by_the_next_pass(
    bare: asyncpg.Connection, reader: asyncpg.Connection
) -> None:
    old = TODAY - timedelta(days=41)
    await create(bare, "meter_readings", old)
    await bare.execute("SET lock_timeout = '100ms'")
    with pytest.raises(asyncpg.LockNotAvailableError):
        await bare.execute(
            "ALTER TABLE meter_readings DETACH PARTITION meter_readings_p20250505 CONCURRENTLY"
        )
    assert await bare.fetchval("SELECT count(*) FROM pg_inherits WHERE inhdetachpending") == 1
    await reader.execute("ROLLBACK")
    settings = Settings(database_url="unused", retention_days=40)
    done = await partitions.maintain(bare, settings, today=TODAY)
    assert f"meter_readings/{old}" in done.dropped
    assert await bare.fetchval("SELECT to_regclass('meter_readings_p20250505')") is None


async def test_before_drop_runs_in_the_drop_transaction_after_the_detach(
    bare: asyncpg.Connection,
) -> None:
    old = TODAY - timedelta(days=41)
    for table in partitions.HISTORY_TABLES:
        await create(bare, table, old)
    seen: list[tuple[str, date, bool, bool]] = []
    fail = True

    async def before_drop(conn: Any, table: str, day: date) -> None:
        name = f"{table}_p{day:%Y%m%d}"
        attached = await conn.fetchval(
            "SELECT EXISTS (SELECT FROM pg_inherits WHERE inhrelid = to_regclass($1))", name
        )
        seen.append((table, day, conn.is_in_transaction(), attached))
        if fail:
            raise RuntimeError("rollup cleanup failed")

    settings = Settings(database_url="unused", retention_days=40)
    with pytest.raises(RuntimeError):
        await partitions.maintain(bare, settings, today=TODAY, before_drop=before_drop)
    # Detached, not dropped: the next pass calls the hook again and drops it.
    assert await bare.fetchval("SELECT to_regclass('meter_readings_p20250505')") is not None
    fail = False
    done = await partitions.maintain(bare, settings, today=TODAY, before_drop=before_drop)
    assert done.dropped == [f"{table}/{old}" for table in partitions.HISTORY_TABLES]
    assert seen == [
        ("meter_readings", old, True, False),
        ("meter_readings", old, True, False),
        ("vehicle_readings", old, True, False),
    ]


# Constraints, on the fixture's migrated database with today's accepted range.


async def test_row_outside_any_partition_is_rejected(conn: asyncpg.Connection) -> None:
    far = datetime.now(UTC) + timedelta(days=365)
    with pytest.raises(asyncpg.CheckViolationError, match="no partition"):
        await conn.execute(
            "INSERT INTO vehicle_readings (vehicle_id, recorded_at, soc, kwh_delivered_dc, "
            "battery_temp) VALUES ('v1', $1, 50, 1, 20)",
            far,
        )


async def test_history_rejects_duplicate_device_and_instant(conn: asyncpg.Connection) -> None:
    now = datetime.now(UTC)
    insert = (
        "INSERT INTO meter_readings (meter_id, recorded_at, kwh_consumed_ac, voltage) "
        "VALUES ($1, $2, $3, 230)"
    )
    await conn.execute(insert, "m1", now, 1.0)
    await conn.execute(insert, "M1", now, 1.0)  # ids are case-sensitive
    await conn.execute(insert, "m1", now + timedelta(microseconds=1), 1.0)
    with pytest.raises(asyncpg.UniqueViolationError):
        await conn.execute(insert, "m1", now, 2.0)
    assert await conn.fetchval("SELECT count(*) FROM meter_readings") == 3


async def test_vehicle_history_rejects_duplicates(conn: asyncpg.Connection) -> None:
    now = datetime.now(UTC)
    insert = (
        "INSERT INTO vehicle_readings (vehicle_id, recorded_at, soc, kwh_delivered_dc, "
        "battery_temp) VALUES ('v1', $1, $2, 1, 20)"
    )
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
            "VALUES ('v1', 'm1', $1, $2)",
            start,
            start + delta,
        )


async def test_assignment_may_be_open_or_closed(conn: asyncpg.Connection) -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    insert = (
        "INSERT INTO assignments (vehicle_id, meter_id, valid_from, valid_to) "
        "VALUES ('v1', 'm1', $1, $2) RETURNING id"
    )
    first = await conn.fetchval(insert, start, None)
    second = await conn.fetchval(insert, start, start + timedelta(hours=1))
    assert second > first


@pytest.mark.parametrize(
    "table, key", [("meter_status", "meter_id"), ("vehicle_status", "vehicle_id")]
)
async def test_status_holds_one_row_per_device(
    conn: asyncpg.Connection, table: str, key: str
) -> None:
    columns = {
        "meter_status": "(meter_id, recorded_at, kwh_consumed_ac, voltage) "
        "VALUES ('d1', now(), 1, 230)",
        "vehicle_status": "(vehicle_id, recorded_at, soc, kwh_delivered_dc, battery_temp) "
        "VALUES ('d1', now(), 50, 1, 20)",
    }[table]
    await conn.execute(f"INSERT INTO {table} {columns}")
    with pytest.raises(asyncpg.UniqueViolationError):
        await conn.execute(f"INSERT INTO {table} {columns}")
    assert await conn.fetchval(f"SELECT count(*) FROM {table} WHERE {key} = 'd1'") == 1
