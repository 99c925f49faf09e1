"""`simulate --backfill`: the simulated window written straight into PostgreSQL with COPY."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from kilowatch.db import sqlfile
from kilowatch.simulate.events import (
    METER_COLUMNS,
    VEHICLE_COLUMNS,
    Assignment,
    MeterEvent,
    VehicleEvent,
)
from kilowatch.simulate.fleet import Scenario
from kilowatch.simulate.simulation import Simulation, config
from kilowatch.simulate.truth import Truth

# Events held in memory per COPY chunk (whole minutes; about 60 MB of rows at this size).
CHUNK_EVENTS = 200_000
ASSIGNMENT_COLUMNS = ("vehicle_id", "meter_id", "valid_from", "valid_to")


class WindowOccupied(Exception):
    """The window already holds readings of these devices; backfill into a fresh database."""


async def backfill(
    target: str | asyncpg.Connection,
    vehicles: int,
    meters: int,
    hours: int,
    seed: int,
    end: datetime | None = None,
    *,
    scenario: Scenario = "roaming",
    report: Callable[[int, int], None] | None = None,
) -> Truth:
    """Writes [end − hours, end) of a seeded fleet; returns its ground truth.

    `target` is a database URL (two connections, COPY of meters and vehicles in parallel) or an
    open connection (used sequentially).
    History goes in with COPY, deduplicated in memory first (the primary key would reject a
    retried heartbeat), one COPY per table per chunk of whole minutes; then status gets the newest
    reading per device and the simulator's assignments are recorded.
    """
    simulation = Simulation(config(vehicles, meters, hours, seed, end, scenario))
    async with contextlib.AsyncExitStack() as stack:
        if isinstance(target, str):
            conns = tuple([await asyncpg.connect(target) for _ in range(2)])
            for opened in conns:
                stack.push_async_callback(opened.close)
        else:
            conns = (target,)
        await _create_partitions(conns[0], simulation.config.start, simulation.config.end)
        written = await _copy_history(conns, simulation, report)
        await _record_assignments(conns[0], simulation.assignments)
    truth = simulation.truth()
    truth.stats["rows"] = written
    return truth


async def _create_partitions(conn: asyncpg.Connection, start: datetime, end: datetime) -> None:
    query = sqlfile.load("kilowatch.simulate")["create_partition"]
    day = start.date()
    while day <= (end - timedelta(microseconds=1)).date():
        for table in ("meter_readings", "vehicle_readings"):
            await conn.fetchval(query, table, day)
        day += timedelta(days=1)


class _Chunker:
    """Turns the simulation into deduplicated COPY chunks of whole minutes, newest row per device.

    Runs in a worker thread, so the next chunk is generated while PostgreSQL ingests this one.
    """

    def __init__(self, simulation: Simulation) -> None:
        devices = len(simulation.fleet.vehicles) + len(simulation.fleet.meters)
        self.size = max(1, min(60, CHUNK_EVENTS // max(devices, 1)))
        self.minutes = simulation.minutes()
        self.newest_meter: dict[str, MeterEvent] = {}
        self.newest_vehicle: dict[str, VehicleEvent] = {}

    def next(self) -> tuple[int, list[MeterEvent], list[VehicleEvent]]:
        meter_rows: dict[tuple[str, datetime], MeterEvent] = {}
        vehicle_rows: dict[tuple[str, datetime], VehicleEvent] = {}
        count = 0
        with _gc_paused():
            for minute in itertools.islice(self.minutes, self.size):
                count += 1
                for _, event in minute.deliveries:  # first copy wins, as in the primary key
                    if type(event) is MeterEvent:
                        meter_rows.setdefault((event[0], event[1]), event)
                    else:
                        vehicle_rows.setdefault((event[0], event[1]), event)  # type: ignore[arg-type]
        _keep_newest(self.newest_meter, meter_rows.values())
        _keep_newest(self.newest_vehicle, vehicle_rows.values())
        # Primary-key order: each device's rows land on neighbouring index pages.
        return count, sorted(meter_rows.values()), sorted(vehicle_rows.values())


def _keep_newest(newest: dict[str, Any], rows: Iterable[MeterEvent | VehicleEvent]) -> None:
    for event in rows:
        current = newest.get(event[0])
        if current is None or current[1] < event[1]:
            newest[event[0]] = event


async def _copy_history(
    conns: tuple[asyncpg.Connection, ...],
    simulation: Simulation,
    report: Callable[[int, int], None] | None,
) -> int:
    chunker = _Chunker(simulation)
    written = done = 0
    upcoming = asyncio.ensure_future(asyncio.to_thread(chunker.next))
    try:
        while True:
            count, meter_rows, vehicle_rows = await upcoming
            if not count:
                break
            upcoming = asyncio.ensure_future(asyncio.to_thread(chunker.next))
            await _copy_chunk(conns, meter_rows, vehicle_rows)
            written += len(meter_rows) + len(vehicle_rows)
            done += count
            if report is not None:
                report(done, written)
    finally:
        if not upcoming.done():  # a failed COPY: let the thread finish its chunk, then raise
            with contextlib.suppress(Exception):
                await asyncio.shield(upcoming)
    await _upsert_status(
        conns[0], list(chunker.newest_meter.values()), list(chunker.newest_vehicle.values())
    )
    return written


async def _copy_chunk(
    conns: tuple[asyncpg.Connection, ...],
    meter_rows: list[MeterEvent],
    vehicle_rows: list[VehicleEvent],
) -> None:
    try:
        # Given a URL, two server processes ingest meters and vehicles side by side.
        copies = (
            conns[0].copy_records_to_table(
                "meter_readings", records=meter_rows, columns=METER_COLUMNS
            ),
            conns[-1].copy_records_to_table(
                "vehicle_readings", records=vehicle_rows, columns=VEHICLE_COLUMNS
            ),
        )
        if len(conns) > 1:
            await asyncio.gather(*copies)
        else:
            for copy in copies:
                await copy
    except asyncpg.UniqueViolationError as exc:
        raise WindowOccupied(str(exc)) from exc


async def _upsert_status(
    conn: asyncpg.Connection, meters: list[MeterEvent], vehicles: list[VehicleEvent]
) -> None:
    queries = sqlfile.load("kilowatch.simulate")
    async with conn.transaction():
        if meters:
            await conn.execute(
                queries["upsert_meter_status"], *map(list, zip(*meters, strict=True))
            )
        if vehicles:
            await conn.execute(
                queries["upsert_vehicle_status"], *map(list, zip(*vehicles, strict=True))
            )


async def _record_assignments(conn: asyncpg.Connection, assignments: list[Assignment]) -> None:
    if assignments:
        await conn.copy_records_to_table(
            "assignments",
            columns=ASSIGNMENT_COLUMNS,
            records=[(a.vehicle_id, a.meter_id, a.start, a.end) for a in assignments],
        )


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    # The fleet allocates millions of acyclic tuples; generational GC passes over them would
    # cost a third of the generation time and free nothing.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
