"""Bench databases: a fresh one for ingest, and simulator data sets cached by their parameters.

A data set is a database named after what made it (days, fleet, seed, schema version), on the
bench's server: in the embedded server under the data directory, it survives between runs.
A marker row written last says it is complete; its window stays fixed however old it gets.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from rich.console import Console

from kilowatch import cli
from kilowatch.analytics import fleet
from kilowatch.db import migrate
from kilowatch.rollups import refresher
from kilowatch.settings import Settings
from kilowatch.simulate import backfill, progress
from kilowatch.simulate.accuracy import Score, score
from kilowatch.simulate.truth import VehicleTruth

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
    end: datetime  # a whole UTC hour: windows ending there are whole hours
    days: int
    vehicles: list[str]
    meters: list[str]
    rows: int

    def window(self, hours: int = 24, *, edges: bool = False) -> tuple[datetime, datetime]:
        """The last `hours` of the data; `edges`: shifted by 17 minutes, so both ends are
        partial hours the rollups cannot answer (read raw)."""
        end = self.end - timedelta(minutes=17) if edges else self.end
        return end - timedelta(hours=hours), end


async def copy(admin_url: str, of: Dataset, name: str) -> Dataset:
    """A fresh copy of a data set (for figures that change it), made from it as a template."""
    assert _NAME.match(name), name
    source = urlsplit(of.url).path.lstrip("/")
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
    finally:
        await admin.close()
    copied = await _load(with_database(admin_url, name), of.days)
    assert copied
    return copied


async def ensure(
    admin_url: str,
    days: int,
    vehicles: int,
    meters: int,
    seed: int,
    console: Console,
    prefix: str = "kwbench",
) -> Dataset:
    """The cached data set for these parameters, backfilled by the simulator when missing."""
    # Keyed by the schema's text too: a data set made by other migrations is another one.
    name = f"{prefix}_{days}d_{vehicles}v_{meters}m_s{seed}_{migrate.fingerprint()}"
    url = with_database(admin_url, name)
    cached = await _load(url, days)
    if cached:
        console.print(f"data set {name}: cached ({cached.rows:,} readings)")
        return cached
    await recreate(admin_url, name)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    started = time.perf_counter()
    with progress.minute_bar(console, f"data set {name}", days * 24 * 60) as report:
        truth = await backfill.backfill(url, vehicles, meters, days * 24, seed, end, report=report)
    console.print(
        f"  backfilled {truth.stats['rows']:,} readings in {time.perf_counter() - started:.0f} s"
    )
    conn = await asyncpg.connect(url)
    try:
        # The rollups start where the data does (not 37 days back), then catch up.
        start = end - timedelta(days=days)
        await conn.execute("UPDATE rollup_state SET floor = $1, frontier = $1", start)
        started = time.perf_counter()
        with console.status(f"materializing the rollups of {name}"):
            while await refresher.advance(conn) is not None:
                pass
            while (await refresher.repair(conn))[0]:
                pass
        console.print(f"  rollups materialized in {time.perf_counter() - started:.0f} s")
        # Fresh visibility maps let the covering indexes answer without heap visits, as they
        # would on a server whose autovacuum has caught up.
        await conn.execute("VACUUM ANALYZE")
        # The ground truth, for the estimate's accuracy (kilowatch.simulate.accuracy).
        await conn.execute(
            "CREATE TABLE bench_truth (vehicle_id text PRIMARY KEY, true_efficiency float8,"
            " faulty boolean, shared_charger boolean, physical_ac float8, physical_dc float8)"
        )
        await conn.copy_records_to_table(
            "bench_truth",
            records=[
                (
                    v.vehicle_id,
                    v.true_efficiency,
                    v.faulty,
                    v.shared_charger,
                    v.physical_ac_kwh,
                    v.physical_dc_kwh,
                )
                for v in truth.vehicles
            ],
        )
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
        if await conn.fetchval("SELECT to_regclass('bench_truth')") is None:
            return None  # made before the truth was kept: made again
        marker = await conn.fetchrow("SELECT end_at, rows FROM bench_dataset")
        if marker is None:
            return None
        await migrate.migrate(conn)
        vehicles = [
            r[0]
            for r in await conn.fetch("SELECT vehicle_id FROM vehicle_status ORDER BY vehicle_id")
        ]
        meters = [
            r[0] for r in await conn.fetch("SELECT meter_id FROM meter_status ORDER BY meter_id")
        ]
        return Dataset(url, marker["end_at"], days, vehicles, meters, marker["rows"])
    finally:
        await conn.close()


async def accuracy(data: Dataset, settings: Settings) -> Score:
    """The estimate and the rule over the data set's whole window, scored against its truth."""
    conn = await asyncpg.connect(data.url)
    try:
        truth = [
            VehicleTruth(*row)
            for row in await conn.fetch(
                "SELECT vehicle_id, true_efficiency, faulty, shared_charger, physical_ac,"
                " physical_dc FROM bench_truth ORDER BY vehicle_id"
            )
        ]
        start, end = data.window(data.days * 24)
        listing = await fleet.vehicles(conn, settings, start, end, limit=len(truth) + 1)
    finally:
        await conn.close()
    return score(truth, {item["vehicleId"]: item for item in listing["items"]})
