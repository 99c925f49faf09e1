"""Daily history partitions: created ahead, dropped past retention, each in its own transaction."""
from __future__ import annotations

import asyncio
import logging
from datetime import UTC, date, datetime, timedelta

import asyncpg

from kilowatch.db import sqlfile
from kilowatch.settings import Settings

HISTORY_TABLES = ("meter_readings", "vehicle_readings")
log = logging.getLogger(__name__)


def accepted_days(settings: Settings, today: date) -> list[date]:
    """Every UTC day an accepted event can fall on (max age back, partition_days_ahead forward)."""
    first = today - timedelta(days=settings.max_event_age_days + 1)
    last = today + timedelta(days=settings.partition_days_ahead)
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


async def maintain(conn: asyncpg.Connection, settings: Settings, today: date | None = None) -> int:
    """Creates missing partitions and drops expired ones; returns how many were created.

    Runs on autocommit: each CREATE/DROP locks the parent exclusively only for its own
    short statement, never inside an ingest transaction.
    """
    queries = sqlfile.load("kilowatch.db")
    today = today or datetime.now(UTC).date()
    created = 0
    for table in HISTORY_TABLES:
        for day in accepted_days(settings, today):
            created += bool(await conn.fetchval(queries["create_partition"], table, day))
        if settings.retention_days is not None:
            cutoff = today - timedelta(days=settings.retention_days)
            for row in await conn.fetch(queries["list_partition_days"], table):
                if row["day"] < cutoff:
                    dropped = await conn.fetchval(queries["drop_partition"], table, row["day"])
                    log.info("dropped expired partition", extra={"partition": dropped})
    return created


async def run_forever(pool: asyncpg.Pool, settings: Settings) -> None:
    """Background task: keeps partitions ahead of the clock; survives database outages."""
    while True:
        await asyncio.sleep(settings.partition_check_interval_s)
        try:
            async with pool.acquire() as conn:
                await maintain(conn, settings)
        except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
            log.warning("partition maintenance failed; retrying later: %s", exc)
