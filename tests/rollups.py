"""Rollup helpers for tests: start the materialized region where the test's data is, refresh, and
compare every analytics read with the reference statements over raw history."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import asyncpg

from kilowatch.analytics import fleet, service, vehicle
from kilowatch.db.memo import Memo
from kilowatch.rollups import refresher
from kilowatch.settings import Settings

REL = 1e-9
FIGURES = (
    "totalAcKwh",
    "totalDcKwh",
    "attachedDcKwh",
    "efficiency",
    "coverage",
    "lossKwh",
    "vehicleReadings",
    "meterReadings",
    "estimate",
    "estimateReason",
    "faultSuspected",
    "belowThreshold",
)


async def start_at(conn: asyncpg.Connection, moment: datetime) -> None:
    """Puts the (empty) materialized region's floor and frontier at `moment`, an hour start.

    The migration starts them 37 days back; walking that far through empty hours would only
    cost the test time.
    """
    await conn.execute("UPDATE rollup_state SET floor = $1, frontier = $1", moment)


async def refresh(
    conn: asyncpg.Connection, until: datetime | None = None, max_marks: int = 5000
) -> None:
    """Advances the frontier (to `until`, or as far as it may go) and repairs every dirty hour."""
    while await refresher.advance(conn, until) is not None:
        pass
    while (await refresher.repair(conn, max_marks))[0]:
        pass


async def frontier(conn: asyncpg.Connection) -> datetime:
    value: datetime = await conn.fetchval("SELECT frontier FROM rollup_state")
    return value


def same(expected: Any, actual: Any, where: str = "") -> None:
    """Equal, numbers within REL (absolute 1e-12 near zero), recursively."""
    if isinstance(expected, bool) or isinstance(actual, bool) or expected is None or actual is None:
        assert expected == actual, f"{where}: {expected!r} != {actual!r}"
    elif isinstance(expected, int | float) and isinstance(actual, int | float):
        assert math.isclose(expected, actual, rel_tol=REL, abs_tol=1e-12), (
            f"{where}: {expected!r} != {actual!r}"
        )
    elif isinstance(expected, dict):
        assert isinstance(actual, dict) and expected.keys() == actual.keys(), (
            f"{where}: keys {sorted(expected)} != {sorted(actual) if isinstance(actual, dict) else actual}"
        )
        for key in expected:
            same(expected[key], actual[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(expected) == len(actual), (
            f"{where}: {len(expected)} items != {actual!r}"
        )
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            same(e, a, f"{where}[{i}]")
    else:
        assert expected == actual, f"{where}: {expected!r} != {actual!r}"


async def check_window(
    conn: asyncpg.Connection,
    settings: Settings,
    vehicles: list[str],
    start: datetime,
    end: datetime,
    memo: Memo | None = None,
) -> None:
    """Every endpoint's figures for [start, end) against the references over raw history;
    the fleet reads through `memo` (kept across calls: a stale result it serves fails here)."""
    listing = await fleet.vehicles(conn, settings, start, end, limit=1000, memo=memo)
    listed = {item["vehicleId"]: item for item in listing["items"]}
    raw_listing = await fleet.vehicles(conn, settings, start, end, limit=1000, raw=True)
    same(raw_listing, listing, f"vehicles {start}..{end}")
    for vehicle_id in vehicles:
        for hourly in (False, True):
            expected = await service.performance(conn, settings, vehicle_id, start, end, hourly)
            actual = await vehicle.performance(conn, settings, vehicle_id, start, end, hourly)
            same(expected, actual, f"{vehicle_id} {start}..{end} hourly={hourly}")
        if expected["vehicleReadings"]:
            item = listed.pop(vehicle_id)
            for name in FIGURES:
                same(expected[name], item[name], f"listing {vehicle_id}.{name}")
    assert not listed, f"listed without readings in the window: {sorted(listed)}"
    for hourly in (False, True):
        same(
            await fleet.summary(conn, settings, start, end, hourly, raw=True),
            await fleet.summary(conn, settings, start, end, hourly, memo=memo),
            f"fleet {start}..{end}",
        )
    if memo is not None:  # sorted by the estimate: every vehicle's fit, kept too
        same(
            await fleet.vehicles(conn, settings, start, end, sort="estimate", raw=True),
            await fleet.vehicles(conn, settings, start, end, sort="estimate", memo=memo),
            f"vehicles by estimate {start}..{end}",
        )
    same(
        await fleet.meters(conn, start, end, limit=1000, raw=True),
        await fleet.meters(conn, start, end, limit=1000),
        f"meters {start}..{end}",
    )
