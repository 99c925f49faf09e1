"""A vehicle's live-status meterId is its §5 attachment at recordedAt, case by case."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from kilowatch.db import sqlfile
from kilowatch.ingest.schemas import VehicleRow
from kilowatch.ingest.writer import write_batch
from kilowatch.settings import Settings
from kilowatch.status import service
from tests.readings import T0

MINUTE = T0 + timedelta(minutes=5)  # 10:05:00 two days ago; the newest heartbeat is at :40


def t(seconds: float) -> datetime:
    """Seconds after the start of MINUTE (negative: the minute before)."""
    return MINUTE + timedelta(seconds=seconds)


# name: (heartbeats in the order they arrive as (seconds, meterId), assignments as
# (meterId, from seconds, to seconds or None), the meterId expected)
Heartbeats = list[tuple[float, str | None]]
Assignments = list[tuple[str, float, float | None]]
CASES: dict[str, tuple[Heartbeats, Assignments, str | None]] = {
    "newest heartbeat names one": (
        [(10, "M-old"), (40, "M-new")],
        [("M-asg", -600, None)],
        "M-new",
    ),
    "earlier heartbeat of the minute names one": (
        [(10, "M-hb"), (20, None), (40, None)],
        [("M-asg", -600, None)],
        "M-hb",
    ),
    "the latest of those that name one": ([(10, "M-a"), (30, "M-b"), (40, None)], [], "M-b"),
    "a late heartbeat of the minute counts": ([(40, None), (10, "M-late")], [], "M-late"),
    "the minute before does not count": ([(-10, "M-prev"), (40, None)], [], None),
    "assignment from after the minute's start": ([(40, None)], [("M-asg", 30, None)], None),
    "assignment covering the minute's start": ([(40, None)], [("M-asg", -300, None)], "M-asg"),
    "closed assignment ending inside the minute": ([(40, None)], [("M-c", -300, 20)], "M-c"),
    "closed assignment ending at the minute's start": ([(40, None)], [("M-c", -300, 0)], None),
    "open assignment ends where the next begins": (
        [(40, None)],
        [("M-open", -3600, None), ("M-next", -1800, -600)],
        None,
    ),
    "open assignment before a later one": (
        [(40, None)],
        [("M-open", -3600, None), ("M-later", 1500, None)],
        "M-open",
    ),
    "heartbeat wins over the assignment": ([(40, "M-hb")], [("M-asg", -300, None)], "M-hb"),
    "nothing attaches it": ([(40, None)], [], None),
}


async def load(conn: asyncpg.Connection, vehicle_id: str, case: Any) -> None:
    heartbeats, assignments, _ = case
    for seconds, meter_id in heartbeats:  # one flush each, in arrival order, as the writer does
        await write_batch(conn, [VehicleRow(vehicle_id, t(seconds), 50, 1.0, 25, meter_id)])
    for meter_id, start, end in assignments:
        await conn.execute(
            "INSERT INTO assignments (vehicle_id, meter_id, valid_from, valid_to)"
            " VALUES ($1, $2, $3, $4)",
            vehicle_id,
            meter_id,
            t(start),
            None if end is None else t(end),
        )


@pytest.mark.parametrize("name", CASES)
async def test_meter_id_is_the_attachment_at_recorded_at(
    conn: asyncpg.Connection, settings: Settings, name: str
) -> None:
    await load(conn, "V-case", CASES[name])
    status = await service.vehicle_status(conn, settings, "V-case")
    assert status["recordedAt"] == t(40).isoformat().replace("+00:00", "Z")
    assert status["meterId"] == CASES[name][2]


async def test_listing_and_its_meter_filter_use_the_same_attachment(
    conn: asyncpg.Connection, settings: Settings
) -> None:
    ids = {name: f"V-{n:02d}" for n, name in enumerate(CASES)}
    for name, vehicle_id in ids.items():
        await load(conn, vehicle_id, CASES[name])
    listing = await service.list_vehicles(
        conn, settings, limit=100, cursor=None, charging=None, stale=None, meter_id=None
    )
    assert {v["vehicleId"]: v["meterId"] for v in listing["items"]} == {
        ids[name]: case[2] for name, case in CASES.items()
    }
    for meter_id in ("M-hb", "M-asg", "M-b"):
        page = await service.list_vehicles(
            conn, settings, limit=100, cursor=None, charging=None, stale=None, meter_id=meter_id
        )
        assert [v["vehicleId"] for v in page["items"]] == sorted(
            ids[name] for name, case in CASES.items() if case[2] == meter_id
        ), meter_id


def nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(n for child in plan.get("Plans", []) for n in nodes(child))]


@pytest.mark.parametrize("generic", [False, True], ids=["custom_plan", "generic_plan"])
async def test_the_listing_reads_history_through_one_minute_of_the_primary_key(
    conn: asyncpg.Connection, generic: bool
) -> None:
    # Enough history that a scan would be cheaper to the planner if it could.
    rows = [
        (f"V-{v:03d}", T0 + timedelta(minutes=m), 50.0, 1.0, 25.0, f"M-{v % 7}" if m % 3 else None)
        for v in range(200)
        for m in range(0, 600, 5)
    ]
    await conn.copy_records_to_table(
        "vehicle_readings",
        records=rows,
        columns=[
            "vehicle_id",
            "recorded_at",
            "soc",
            "kwh_delivered_dc",
            "battery_temp",
            "meter_id",
        ],
    )
    await conn.execute(
        "INSERT INTO vehicle_status (vehicle_id, recorded_at, soc, kwh_delivered_dc, battery_temp,"
        " meter_id) SELECT DISTINCT ON (vehicle_id) vehicle_id, recorded_at, soc,"
        " kwh_delivered_dc, battery_temp, NULL FROM vehicle_readings"
        " ORDER BY vehicle_id, recorded_at DESC"
    )
    await conn.execute("ANALYZE")
    sql = sqlfile.load("kilowatch.status")["vehicles"]
    args = (None, None, 101, 180, None, None, "M-3")
    if generic:
        await conn.execute("SET plan_cache_mode = force_generic_plan")
    statement = await conn.prepare(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
    plan = json.loads(await statement.fetchval(*args))[0]["Plan"]
    history = [
        n for n in nodes(plan) if str(n.get("Relation Name", "")).startswith("vehicle_readings")
    ]
    assert history, "the listing reads no history"
    executed = [n for n in history if n.get("Actual Loops", 0) > 0]
    # Only the partition of the status rows' minutes is ever executed (run-time pruning), and
    # only through its primary key, one minute per vehicle.
    assert {n["Relation Name"] for n in executed} == {f"vehicle_readings_p{T0:%Y%m%d}"}
    assert {n["Node Type"] for n in executed} == {"Index Only Scan"}
    assert all(n["Index Name"].endswith("_pkey") for n in executed)
    assert all(n["Actual Rows"] <= 1 for n in executed)  # LIMIT 1 per vehicle
    # The planner may plan a Seq Scan where a partition is empty (nothing to scan); never
    # elsewhere.
    for n in history:
        if n["Node Type"] not in ("Index Only Scan", "Index Scan"):
            empty = await conn.fetchval(f'SELECT NOT EXISTS (SELECT FROM "{n["Relation Name"]}")')
            assert empty and n.get("Actual Loops", 0) == 0, n["Relation Name"]
