"""EXPLAIN the analytics statements on seeded days: window partitions only, no history Seq Scan."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from kilowatch.db import sqlfile

VEHICLES, STEP_MIN = 240, 10
FIRST_DAY = datetime.now(UTC).date() - timedelta(days=5)
DAYS = [FIRST_DAY + timedelta(days=n) for n in range(4)]
# The window spans the middle two days only: [day1 06:00, day2 06:00).
WINDOW_FROM = datetime(DAYS[1].year, DAYS[1].month, DAYS[1].day, 6, tzinfo=UTC)
WINDOW_TO = WINDOW_FROM + timedelta(days=1)
HISTORY = ("vehicle_readings", "meter_readings")


async def seed(conn: asyncpg.Connection) -> None:
    """Four days of 240 vehicles on 120 dual-port meters; odd vehicles rely on assignments."""
    start = datetime(FIRST_DAY.year, FIRST_DAY.month, FIRST_DAY.day, tzinfo=UTC)
    vehicles, meters = [], []
    for step in range(len(DAYS) * 24 * 60 // STEP_MIN):
        ts = start + timedelta(minutes=step * STEP_MIN)
        for m in range(VEHICLES // 2):
            meters.append((f"m{m:03}", ts + timedelta(seconds=3), 1.1 + m % 7 * 0.1, 400.0))
        for v in range(VEHICLES):
            meter_id = f"m{v // 2:03}" if v % 2 == 0 else None
            vehicles.append((f"v{v:03}", ts + timedelta(seconds=5), 50.0, 1.0, 30.0, meter_id))
    await conn.copy_records_to_table(
        "vehicle_readings",
        records=vehicles,
        columns=[
            "vehicle_id",
            "recorded_at",
            "soc",
            "kwh_delivered_dc",
            "battery_temp",
            "meter_id",
        ],
    )
    await conn.copy_records_to_table(
        "meter_readings",
        records=meters,
        columns=["meter_id", "recorded_at", "kwh_consumed_ac", "voltage"],
    )
    await conn.executemany(
        "INSERT INTO assignments (vehicle_id, meter_id, valid_from) VALUES ($1, $2, $3)",
        [(f"v{v:03}", f"m{v // 2:03}", start) for v in range(1, VEHICLES, 2)],
    )
    await conn.executemany(
        "INSERT INTO vehicle_status (vehicle_id, recorded_at, soc, kwh_delivered_dc, battery_temp)"
        " VALUES ($1, $2, 50, 1, 30)",
        [(f"v{v:03}", start) for v in range(VEHICLES)],
    )
    await conn.execute("ANALYZE")


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def partition_day(relation: str) -> date:
    return datetime.strptime(relation.rsplit("_p", 1)[1], "%Y%m%d").date()


async def explain(
    conn: asyncpg.Connection, sql: str, args: tuple[Any, ...], generic: bool
) -> list[dict[str, Any]]:
    if not generic:
        return json.loads(await conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args))  # type: ignore[no-any-return]
    # What a long-lived pooled connection runs after a few executions: a generic plan, pruned
    # at executor start-up rather than at planning.
    await conn.execute("SET plan_cache_mode = force_generic_plan")
    await conn.execute(f"PREPARE analytics_q(text, timestamptz, timestamptz) AS {sql}")
    # EXECUTE takes literals, not protocol parameters: let PostgreSQL quote them.
    statement = await conn.fetchval(
        "SELECT format('EXPLAIN (FORMAT JSON) EXECUTE analytics_q(%L, %L, %L)', $1::text,"
        " $2::timestamptz, $3::timestamptz)",
        *args,
    )
    plan = await conn.fetchval(statement)
    await conn.execute("DEALLOCATE analytics_q")
    await conn.execute("RESET plan_cache_mode")
    return json.loads(plan)  # type: ignore[no-any-return]


@pytest.mark.parametrize("generic", [False, True], ids=["custom_plan", "generic_plan"])
async def test_analytics_reads_only_window_partitions_through_indexes(
    conn: asyncpg.Connection, generic: bool
) -> None:
    await seed(conn)
    queries = sqlfile.load("kilowatch.analytics")
    window_days = {DAYS[1], DAYS[2]}
    for name in ("performance_raw", "vehicle_floor"):
        # v010 reports meterId and shares its meter with v011, which needs its assignment.
        for vehicle_id in ("v010", "v011"):
            plan = (
                await explain(conn, queries[name], (vehicle_id, WINDOW_FROM, WINDOW_TO), generic)
            )[0]["Plan"]
            scans = [n for n in nodes(plan) if str(n.get("Relation Name", "")).startswith(HISTORY)]
            assert scans, f"{name}: no history scan found in the plan"
            seq = [n["Relation Name"] for n in scans if n["Node Type"] == "Seq Scan"]
            assert not seq, f"{name}({vehicle_id}): Seq Scan on {seq}"
            assert {n["Node Type"] for n in scans} <= {
                "Index Scan",
                "Index Only Scan",
                "Bitmap Heap Scan",
            }, name
            assert {partition_day(n["Relation Name"]) for n in scans} <= window_days, name
            if name == "performance_raw":
                tables = {n["Relation Name"].rsplit("_p", 1)[0] for n in scans}
                assert tables == set(HISTORY), f"performance reads both histories: {tables}"
                # The sharers are found through the meter index, not by scanning vehicles.
                assert any(
                    n.get("Index Name", "").startswith("vehicle_readings_p")
                    and "meter_id" in n["Index Name"]
                    for n in nodes(plan)
                ), "expected the partitions' copy of vehicle_readings_meter_idx in the plan"
