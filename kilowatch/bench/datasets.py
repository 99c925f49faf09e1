"""Bench databases: a fresh one for ingest, and simulator data sets cached by their parameters.

A data set is a database named after what made it (days, fleet, seed, schema version), on the
bench's server: in the embedded server under the data directory, it survives between runs.
A marker row written last says it is complete; its window stays fixed however old it gets.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from rich.console import Console

from kilowatch import cli
from kilowatch.db import migrate
from kilowatch.settings import Settings
from kilowatch.simulate import backfill, progress

_NAME = re.compile(r"^[a-z0-9_]{1,63}$")


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def recreate(admin_url: str, name: str) -> str:
    """Drops and creates database `name` (migrated, partitions made); returns its URL."""
    # Identifiers cannot be bind parameters; names are made here from numbers and checked.
    assert _NAME.match(name), name
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = with_database(admin_url, name)
    await cli.prepare(Settings(database_url=url))  # what `serve` does to its database
    return url


@dataclass
class Dataset:
    url: str
    end: datetime
    days: int
    vehicles: list[str]
    rows: int

    def window(self, hours: int = 24) -> tuple[datetime, datetime]:
        return self.end - timedelta(hours=hours), self.end


async def ensure(admin_url: str, days: int, vehicles: int, meters: int, seed: int,
                 console: Console, prefix: str = "kwbench") -> Dataset:
    """The cached data set for these parameters, backfilled by the simulator when missing."""
    name = f"{prefix}_{days}d_{vehicles}v_{meters}m_s{seed}_m{migrate.latest_version()}"
    url = with_database(admin_url, name)
    cached = await _load(url, days)
    if cached:
        console.print(f"data set {name}: cached ({cached.rows:,} readings)")
        return cached
    await recreate(admin_url, name)
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    with progress.minute_bar(console, f"data set {name}", days * 24 * 60) as report:
        truth = await backfill.backfill(url, vehicles, meters, days * 24, seed, end, report=report)
    conn = await asyncpg.connect(url)
    try:
        # Fresh visibility maps let the covering indexes answer without heap visits, as they
        # would on a server whose autovacuum has caught up.
        await conn.execute("VACUUM ANALYZE")
        await conn.execute("CREATE TABLE bench_dataset (end_at timestamptz NOT NULL, rows bigint)")
        await conn.execute("INSERT INTO bench_dataset VALUES ($1, $2)", end, truth.stats["rows"])
    finally:
        await conn.close()
    loaded = await _load(url, days)
    assert loaded
    return loaded


async def _load(url: str, days: int) -> Dataset | None:
    try:
        conn = await asyncpg.connect(url)
    except asyncpg.InvalidCatalogNameError:
        return None
    try:
        if await conn.fetchval("SELECT to_regclass('bench_dataset')") is None:
            return None
        marker = await conn.fetchrow("SELECT end_at, rows FROM bench_dataset")
        if marker is None:
            return None
        await migrate.migrate(conn)
        vehicles = [r[0] for r in await conn.fetch(
            "SELECT vehicle_id FROM vehicle_status ORDER BY vehicle_id")]
        return Dataset(url, marker["end_at"], days, vehicles, marker["rows"])
    finally:
        await conn.close()
