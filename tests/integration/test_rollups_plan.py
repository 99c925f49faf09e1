"""Which history the analytics reads touch (SPEC §3, §5.1): rollups, plus index ranges of the
partitions of the edge, open and dirty hours only — never a scan of history.

The reads run PL/pgSQL functions, whose statements EXPLAIN does not show: auto_explain logs every
nested statement's executed plan to the client, and the test reads those plans.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from kilowatch.analytics import fleet, vehicle
from kilowatch.settings import Settings
from tests.readings import T0
from tests.rollups import refresh, start_at

DAY = T0.replace(hour=0)
VEHICLES, METERS = 40, 30
HISTORY_SCANS = {"Index Scan", "Index Only Scan", "Bitmap Heap Scan"}


async def _seed(conn: asyncpg.Connection) -> None:
    """Two days of a small fleet, one reading a minute: enough rows that a scan would be cheap
    to plan for and costly to run, so the plans below are chosen, not forced by emptiness."""
    await conn.execute(
        """INSERT INTO meter_readings (meter_id, recorded_at, kwh_consumed_ac, voltage)
           SELECT 'm' || m, $1::timestamptz + make_interval(mins => t) + interval '20 seconds',
                  0.2 + (m * t) % 7 / 10.0, 400
           FROM generate_series(0, $2 - 1) m, generate_series(0, 2 * 1440 - 1) t""",
        DAY,
        METERS,
    )
    await conn.execute(
        """INSERT INTO vehicle_readings (vehicle_id, recorded_at, soc, kwh_delivered_dc,
                                         battery_temp, meter_id)
           SELECT 'v' || v, $1::timestamptz + make_interval(mins => t) + interval '30 seconds', 50,
                  CASE WHEN (t / 90 + v) % 3 = 0 THEN 0.15 ELSE 0 END, 25,
                  CASE WHEN (t / 90 + v) % 3 = 0 THEN 'm' || (v % $3) END
           FROM generate_series(0, $2 - 1) v, generate_series(0, 2 * 1440 - 1) t""",
        DAY,
        VEHICLES,
        METERS,
    )
    await conn.execute(
        """INSERT INTO vehicle_status (vehicle_id, recorded_at, soc, kwh_delivered_dc,
                                       battery_temp)
           SELECT 'v' || v, $1::timestamptz, 50, 0, 25 FROM generate_series(0, $2 - 1) v""",
        DAY,
        VEHICLES,
    )
    await conn.execute("ANALYZE")


async def _plans(conn: asyncpg.Connection, read: Any) -> list[dict[str, Any]]:
    """Every plan node executed by `read()` and the statements it runs, nested ones included."""
    logged: list[str] = []

    def listen(_: Any, message: asyncpg.PostgresLogMessage) -> None:
        logged.append(message.message)

    await conn.execute("LOAD 'auto_explain'")
    for setting in (
        "auto_explain.log_min_duration = 0",
        "auto_explain.log_analyze = on",
        "auto_explain.log_timing = off",
        "auto_explain.log_nested_statements = on",
        "auto_explain.log_format = json",
        "client_min_messages = log",
    ):
        await conn.execute(f"SET {setting}")
    conn.add_log_listener(listen)
    try:
        await read()
    finally:
        conn.remove_log_listener(listen)
        await conn.execute("RESET client_min_messages; RESET auto_explain.log_min_duration")
    nodes: list[dict[str, Any]] = []
    for message in logged:
        start = message.find("{")
        if start < 0:
            continue

        def walk(node: dict[str, Any]) -> None:
            nodes.append(node)
            for child in node.get("Plans", []):
                walk(child)

        walk(json.loads(message[start:])["Plan"])
    assert nodes, "auto_explain logged no plan"
    return nodes


def _history(nodes: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(node type, partition) of every executed read of a history partition."""
    return [
        (n["Node Type"], n["Relation Name"])
        for n in nodes
        if n.get("Relation Name", "").startswith(("vehicle_readings_p", "meter_readings_p"))
        and n.get("Actual Loops", 0) > 0
    ]


def _day(partition: str) -> datetime:
    return datetime.strptime(partition[-8:], "%Y%m%d").replace(tzinfo=DAY.tzinfo)


@pytest.fixture
async def materialized(conn: asyncpg.Connection) -> asyncpg.Connection:
    await start_at(conn, DAY)
    await _seed(conn)
    await refresh(conn, DAY + timedelta(days=2))
    await conn.execute("VACUUM ANALYZE")
    return conn


async def test_a_vehicles_whole_hours_read_no_history(
    materialized: asyncpg.Connection, settings: Settings
) -> None:
    start, end = DAY + timedelta(hours=20), DAY + timedelta(hours=44)
    nodes = await _plans(
        materialized, lambda: vehicle.performance(materialized, settings, "v1", start, end, False)
    )
    assert _history(nodes) == []
    assert {n.get("Relation Name") for n in nodes} & {"rollup_vehicle_hour", "rollup_attr_hour"}


async def test_a_vehicles_edges_read_index_ranges_of_their_days_only(
    materialized: asyncpg.Connection, settings: Settings
) -> None:
    start, end = DAY + timedelta(hours=20, minutes=17), DAY + timedelta(hours=44, minutes=40)
    nodes = await _plans(
        materialized, lambda: vehicle.performance(materialized, settings, "v1", start, end, True)
    )
    reads = _history(nodes)
    assert reads, "the partial edge hours are read raw"
    assert {kind for kind, _ in reads} <= HISTORY_SCANS, reads
    assert {_day(p) for _, p in reads} <= {DAY, DAY + timedelta(days=1)}


async def test_fleet_reads_touch_history_only_for_edges_and_dirty_hours(
    materialized: asyncpg.Connection, settings: Settings
) -> None:
    start, end = DAY + timedelta(hours=2), DAY + timedelta(hours=26, minutes=30)
    # A late heartbeat of the first day: its hour is read raw, for its closure only.
    await materialized.execute(
        "INSERT INTO vehicle_readings (vehicle_id, recorded_at, soc, kwh_delivered_dc,"
        " battery_temp, meter_id) VALUES ('v3', $1, 50, 0.2, 25, 'm3')",
        DAY + timedelta(hours=5, minutes=10, seconds=45),
    )
    for read in (
        lambda: fleet.summary(materialized, settings, start, end, False),
        lambda: fleet.vehicles(materialized, settings, start, end, sort="efficiency"),
        lambda: fleet.meters(materialized, start, end),
    ):
        reads = _history(await _plans(materialized, read))
        assert reads, "the dirty hour and the partial last hour are read raw"
        assert {kind for kind, _ in reads} <= HISTORY_SCANS, reads
        assert {_day(p) for _, p in reads} <= {DAY, DAY + timedelta(days=1)}
