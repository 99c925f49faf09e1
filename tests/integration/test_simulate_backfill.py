"""`simulate --backfill`: COPY writes exactly the deduplicated events, status and assignments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from kilowatch.simulate.backfill import WindowOccupied, backfill
from kilowatch.simulate.events import MeterEvent
from kilowatch.simulate.fleet import window_end
from kilowatch.simulate.simulation import Simulation, config

VEHICLES, METERS, HOURS, SEED = 25, 15, 2, 5


def expected_rows(end: datetime) -> tuple[set[tuple[str, datetime]], set[tuple[str, datetime]]]:
    simulation = Simulation(config(VEHICLES, METERS, HOURS, SEED, end))
    meters: set[tuple[str, datetime]] = set()
    vehicles: set[tuple[str, datetime]] = set()
    for minute in simulation.minutes():
        for _, event in minute.deliveries:
            (meters if isinstance(event, MeterEvent) else vehicles).add((event[0], event[1]))
    return meters, vehicles


async def test_backfill_writes_each_event_once_and_newest_status(
    db_url: str, conn: asyncpg.Connection
) -> None:
    end = window_end()
    reports: list[tuple[int, int]] = []
    truth = await backfill(
        db_url,
        VEHICLES,
        METERS,
        HOURS,
        SEED,
        end,
        report=lambda done, rows: reports.append((done, rows)),
    )
    meters, vehicles = expected_rows(end)
    assert truth.stats["deliveries"] > truth.stats["rows"] == len(meters) + len(vehicles)
    assert len(meters) == METERS * HOURS * 60 and len(vehicles) == VEHICLES * HOURS * 60
    stored_meters = {
        (r[0], r[1]) for r in await conn.fetch("SELECT meter_id, recorded_at FROM meter_readings")
    }
    stored_vehicles = {
        (r[0], r[1])
        for r in await conn.fetch("SELECT vehicle_id, recorded_at FROM vehicle_readings")
    }
    assert stored_meters == meters and stored_vehicles == vehicles
    assert reports[-1] == (HOURS * 60, truth.stats["rows"])

    for query in (
        """SELECT count(*) FROM meter_status s WHERE s.recorded_at <>
               (SELECT max(recorded_at) FROM meter_readings h WHERE h.meter_id = s.meter_id)""",
        """SELECT count(*) FROM vehicle_status s WHERE s.recorded_at <>
               (SELECT max(recorded_at) FROM vehicle_readings h WHERE h.vehicle_id = s.vehicle_id)""",
    ):
        assert await conn.fetchval(query) == 0
    assert await conn.fetchval("SELECT count(*) FROM meter_status") == METERS
    assert await conn.fetchval("SELECT count(*) FROM vehicle_status") == VEHICLES
    newest = await conn.fetchrow(
        """SELECT s.soc, s.meter_id, h.soc AS h_soc, h.meter_id AS h_meter
           FROM vehicle_status s JOIN vehicle_readings h
             ON h.vehicle_id = s.vehicle_id AND h.recorded_at = s.recorded_at
           WHERE s.vehicle_id = 'veh-00001'"""
    )
    assert (newest["soc"], newest["meter_id"]) == (newest["h_soc"], newest["h_meter"])
    assert truth.start == end - timedelta(hours=HOURS) and truth.end == end


async def test_backfill_records_the_simulators_assignments(
    db_url: str, conn: asyncpg.Connection
) -> None:
    end = window_end()
    truth = await backfill(conn, 30, 12, 3, 4, end)
    simulation = Simulation(config(30, 12, 3, 4, end))
    for _ in simulation.minutes():
        pass
    expected = {(a.vehicle_id, a.meter_id, a.start, a.end) for a in simulation.assignments}
    stored = {
        tuple(r)
        for r in await conn.fetch(
            "SELECT vehicle_id, meter_id, valid_from, valid_to FROM assignments"
        )
    }
    assert expected and stored == expected
    assert truth.stats["assignments"] == len(expected)
    # Vehicles that need an assignment never report a meterId.
    assigned = {a[0] for a in expected}
    reporting = {
        r[0]
        for r in await conn.fetch(
            "SELECT DISTINCT vehicle_id FROM vehicle_readings WHERE meter_id IS NOT NULL"
        )
    }
    assert reporting and not assigned & reporting


async def test_backfill_refuses_a_window_that_already_holds_the_fleet(db_url: str) -> None:
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    await backfill(db_url, 3, 2, 1, 1, end)
    with pytest.raises(WindowOccupied):
        await backfill(db_url, 3, 2, 1, 1, end)
