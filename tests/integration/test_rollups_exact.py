"""Rollups are exact at every moment (SPEC §5.1): random fleets, late events, retries and assignment
changes in random order, with the refresher advancing and repairing in between; after every step
every endpoint equals the reference statements over raw history, for random windows."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import asyncpg
import pytest

from kilowatch.assignments import service as assignments
from kilowatch.db.memo import Memo
from kilowatch.errors import Conflict
from kilowatch.ingest.schemas import MeterRow, Row, VehicleRow
from kilowatch.ingest.writer import write_batch
from kilowatch.rollups import refresher
from kilowatch.settings import Settings
from tests.readings import T0
from tests.rollups import check_window, refresh, start_at

DAY0 = T0.replace(hour=0)  # midnight two days ago: the data spans a whole UTC day and more
SPAN = timedelta(hours=30)
VEHICLES = [f"v{i}" for i in range(5)]
METERS = [f"m{i}" for i in range(3)]


def moment(rng: random.Random, lo: timedelta = timedelta(0), hi: timedelta = SPAN) -> datetime:
    seconds = rng.uniform(lo.total_seconds(), hi.total_seconds())
    return DAY0 + timedelta(seconds=round(seconds, 3))


def readings(rng: random.Random, n: int) -> list[Row]:
    """Heartbeats at random instants; vehicles name a meter or rely on assignments."""
    rows: list[Row] = []
    for _ in range(n):
        at = moment(rng)
        if rng.random() < 0.5:
            rows.append(MeterRow(rng.choice(METERS), at, round(rng.uniform(0, 3), 4), 230.0))
        else:
            dc = 0.0 if rng.random() < 0.2 else round(rng.uniform(0, 2.5), 4)
            meter = rng.choice([*METERS, None, None, None, None])
            rows.append(
                VehicleRow(rng.choice(VEHICLES), at, 50.0, dc, round(rng.uniform(10, 40), 1), meter)
            )
    return rows


def minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


async def step(conn: asyncpg.Connection, rng: random.Random, sent: list[Row]) -> str:
    """One random change; returns what it did."""
    roll = rng.random()
    if roll < 0.35:
        rows = readings(rng, rng.randint(1, 40))
        # Some retries of earlier events, with other values: the first copy must win.
        for old in rng.sample(sent, min(len(sent), rng.randint(0, 5))):
            rows.append(old._replace(**{old._fields[2]: 99.0}))
        await write_batch(conn, rows)
        sent.extend(rows)
        return f"wrote {len(rows)}"
    if roll < 0.5:
        start = moment(rng, -timedelta(hours=2))
        end = None if rng.random() < 0.5 else start + timedelta(minutes=rng.randint(1, 600))
        try:
            await assignments.create(
                conn, rng.choice(VEHICLES), rng.choice(METERS), minute(start), end and minute(end)
            )
        except Conflict:
            return "assignment refused (overlap)"
        return "assigned"
    if roll < 0.65:
        ids = [r["id"] for r in await conn.fetch("SELECT id FROM assignments")]
        if ids:
            await assignments.delete(conn, rng.choice(ids))
            return "unassigned"
        return "nothing to unassign"
    if roll < 0.85:
        until = minute(moment(rng, timedelta(0), SPAN + timedelta(hours=1)))
        await refresh(conn, until, max_marks=rng.choice([1, 3, 5000]))
        return f"refreshed to {until}"
    marks = await refresher.repair(conn, max_marks=rng.randint(1, 4))
    return f"repaired {marks}"


def windows(rng: random.Random) -> list[tuple[datetime, datetime]]:
    found = [(DAY0, DAY0 + timedelta(days=1)), (DAY0 - timedelta(hours=1), DAY0 + SPAN)]
    for _ in range(2):
        start = minute(moment(rng, -timedelta(hours=1), SPAN))
        found.append((start, start + timedelta(minutes=rng.randint(1, 26 * 60))))
    return found


@pytest.mark.parametrize("seed", range(4))
async def test_every_read_equals_the_raw_reference_after_every_step(
    conn: asyncpg.Connection, settings: Settings, seed: int
) -> None:
    rng = random.Random(seed)
    await start_at(conn, DAY0 - timedelta(hours=1))
    sent = readings(rng, 600)
    await write_batch(conn, sent)
    history = ["initial 600"]
    memo = Memo()  # one for the whole run, as a worker's: what it keeps must never go stale
    for _ in range(14):
        history.append(await step(conn, rng, sent))
        for start, end in windows(rng):
            try:
                await check_window(conn, settings, VEHICLES, start, end, memo)
            except AssertionError as exc:
                raise AssertionError(f"after {history}: {exc}") from None
    await refresh(conn)
    assert await conn.fetchval("SELECT count(*) FROM rollup_dirty") == 0
    for start, end in windows(rng):
        await check_window(conn, settings, VEHICLES, start, end, memo)
    # The whole day, once materialized, is read from rollup rows alone: kept and served again.
    await check_window(conn, settings, VEHICLES, DAY0, DAY0 + timedelta(days=1), memo)
    assert memo.hits > 0
