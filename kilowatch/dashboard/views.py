"""What each page shows, gathered from the services the API is built on (in-process, no HTTP).

Every page is a handful of service calls, run concurrently, each on its own connection from
`gateway.read()`: the analytics ones read the rollups (kilowatch.analytics), the live ones the
hot tables (kilowatch.status, and this folder's queries.sql). Each function's docstring lists
its calls, which is what the bench compares a page with.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from kilowatch import timestamps
from kilowatch.analytics import fleet, vehicle
from kilowatch.assignments import service as assignments
from kilowatch.dashboard import display
from kilowatch.dashboard.window import Window, today
from kilowatch.db import sqlfile
from kilowatch.db.gateway import Conn, Gateway
from kilowatch.db.memo import Memo
from kilowatch.errors import NotFound
from kilowatch.metrics import Metrics
from kilowatch.rollups import refresher
from kilowatch.settings import Settings
from kilowatch.status import service as status

PAGE = 50  # rows per table page
ATTENTION = 10  # fault-suspected vehicles previewed on the fleet page
BOARD = 60  # chargers per board page
# Sorts the vehicles listing does itself (SPEC §5.2); coverage it does not, so for that one the
# page reads the whole listing (at most this many vehicles) and sorts it here.
SERVICE_SORTS = {"efficiency": "efficiency", "estimate": "estimate", "loss": "-lossKwh"}
SORTS = (*SERVICE_SORTS, "coverage")
WHOLE_LISTING = 100_000


async def _read(
    gateway: Gateway, call: Callable[..., Awaitable[Any]], *args: Any, **kw: Any
) -> Any:
    # The dashboard's views are fleet-wide reads: the analytics deadline (ANALYTICS_TIMEOUT_S).
    async with gateway.read(gateway.settings.analytics_timeout_s) as conn:
        return await call(conn, *args, **kw)


async def _together(*calls: Coroutine[Any, Any, Any]) -> list[Any]:
    """Awaits independent reads concurrently; the first failure (e.g. 503) is the page's."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(call) for call in calls]
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]


async def _live_counts(conn: Conn, settings: Settings) -> dict[str, int]:
    row = await conn.fetchrow(
        sqlfile.load("kilowatch.dashboard")["live_counts"],
        settings.stale_after_s,
        settings.meter_idle_kwh,
    )
    assert row is not None
    return {key: int(value) for key, value in row.items()}


async def _today(conn: Conn, settings: Settings, now: datetime) -> dict[str, Any]:
    from_, to = today(now)
    if from_ == to:  # 00:00 UTC: nothing of today is a whole minute yet
        return {"from": timestamps.format_z(from_), "to": timestamps.format_z(to), "empty": True}
    return await fleet.summary(conn, settings, from_, to, False)


async def _rollup_lag(conn: Conn) -> dict[str, float]:
    lag_s, marks = await refresher.lag(conn)
    return {"lagSeconds": lag_s, "dirtyMarks": marks}


def counters(metrics: Metrics) -> dict[str, int]:
    """Rejected and duplicate events since the service started (all workers), from /metrics."""
    totals = {"rejected": 0, "duplicates": 0}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            if family.name == "kilowatch_ingest_rejected":
                totals["rejected"] += int(sample.value)
            elif family.name == "kilowatch_ingest_events" and (
                sample.labels.get("result") == "duplicate"
            ):
                totals["duplicates"] += int(sample.value)
    return totals


async def live_tiles(gateway: Gateway, settings: Settings, metrics: Metrics) -> dict[str, Any]:
    """The fleet's live tiles. Calls: queries.sql `live_counts`; fleet.summary(today, hourly=False);
    rollups.refresher.lag; /metrics counters (in-process, no database)."""
    now = datetime.now(UTC)
    counts, energy, lag = await _together(
        _read(gateway, _live_counts, settings),
        _read(gateway, _today, settings, now),
        _read(gateway, _rollup_lag),
    )
    return {
        "now": now,
        "counts": counts,
        "today": energy,
        "rollups": lag,
        "counters": counters(metrics),
        "stale_after": display.span(timedelta(seconds=settings.stale_after_s)),
    }


async def fleet_page(
    gateway: Gateway, settings: Settings, metrics: Metrics, window: Window
) -> dict[str, Any]:
    """The fleet view. Calls: fleet.summary(window, hourly=True);
    fleet.vehicles(window, faultSuspected=True, sort=efficiency, limit=10); and live_tiles'."""
    summary, attention, live = await _together(
        _read(gateway, fleet.summary, settings, window.from_, window.to, True, memo=gateway.memo),
        _read(
            gateway,
            fleet.vehicles,
            settings,
            window.from_,
            window.to,
            sort="efficiency",
            limit=ATTENTION,
            fault_suspected=True,
            memo=gateway.memo,
        ),
        live_tiles(gateway, settings, metrics),
    )
    return {"summary": summary, "attention": attention, "live": live}


def coverage_key(item: dict[str, Any]) -> tuple[bool, float, str]:
    """Coverage ascending, nulls last, ties by id. Rounded to 1e-9 first: a vehicle's attached
    and total DC are sums in whatever order PostgreSQL adds the rows, so a whole coverage reads
    1.0 in one request and 0.9999999999999998 in the next, and such noise must not reorder
    vehicles that show the same 100.0 %."""
    coverage = item["coverage"]
    return (coverage is None, round(coverage or 0.0, 9), item["vehicleId"])


async def _vehicle_group(
    conn: Conn,
    settings: Settings,
    window: Window,
    sort: str,
    cursor: str | None,
    faulty: bool,
    memo: Memo,
) -> dict[str, Any]:
    if sort in SERVICE_SORTS:
        return await fleet.vehicles(
            conn,
            settings,
            window.from_,
            window.to,
            sort=SERVICE_SORTS[sort],
            limit=PAGE,
            cursor=cursor,
            fault_suspected=faulty,
            memo=memo,
        )
    # Coverage, ascending (the worst-seen first), nulls last, ties by id; offset paging.
    listing = await fleet.vehicles(
        conn,
        settings,
        window.from_,
        window.to,
        limit=WHOLE_LISTING,
        fault_suspected=faulty,
        memo=memo,
    )
    items = sorted(listing["items"], key=coverage_key)
    start = int(cursor) if cursor and cursor.isdigit() else 0
    page = items[start : start + PAGE]
    more = start + PAGE < len(items)
    return {"items": page, "nextCursor": str(start + PAGE) if more else None}


async def vehicles_page(
    gateway: Gateway,
    settings: Settings,
    window: Window,
    sort: str,
    faulty_cursor: str | None,
    cursor: str | None,
) -> dict[str, Any]:
    """Vehicles needing attention, fault-suspected first. Calls: fleet.vehicles(window,
    faultSuspected=True, sort, limit=50) and fleet.vehicles(window, faultSuspected=False, sort,
    limit=50) (for sort=coverage: each without a limit, sorted here)."""
    faulty, others = await _together(
        _read(gateway, _vehicle_group, settings, window, sort, faulty_cursor, True, gateway.memo),
        _read(gateway, _vehicle_group, settings, window, sort, cursor, False, gateway.memo),
    )
    return {"faulty": faulty, "others": others}


async def vehicle_live(gateway: Gateway, settings: Settings, vehicle_id: str) -> dict[str, Any]:
    """A vehicle's live status. Calls: status.vehicle_status (None before its first heartbeat)."""
    try:
        live = await _read(gateway, status.vehicle_status, settings, vehicle_id)
    except NotFound:
        live = None
    return {"now": datetime.now(UTC), "status": live}


async def vehicle_page(
    gateway: Gateway, settings: Settings, window: Window, vehicle_id: str
) -> dict[str, Any]:
    """A vehicle. Calls: vehicle.performance(window, hourly=True) (NotFound: unknown vehicle);
    status.vehicle_status; assignments.list_(vehicleId, limit=100)."""
    performance, live, listed = await _together(
        _read(gateway, vehicle.performance, settings, vehicle_id, window.from_, window.to, True),
        vehicle_live(gateway, settings, vehicle_id),
        _read(gateway, assignments.list_, vehicle_id, None, 100, None),
    )
    return {"performance": performance, "live": live, "assignments": listed}


async def _attached(conn: Conn, settings: Settings, meter_ids: list[str]) -> dict[str, list[Any]]:
    rows = await conn.fetch(
        sqlfile.load("kilowatch.dashboard")["attached_vehicles"], meter_ids, settings.stale_after_s
    )
    attached: dict[str, list[Any]] = {}
    for row in rows:
        attached.setdefault(row["meter_id"], []).append(dict(row))
    return attached


async def board(gateway: Gateway, settings: Settings, cursor: str | None) -> dict[str, Any]:
    """The chargers' live board. Calls: status.list_meters(limit=60, cursor); queries.sql
    `live_counts`; then queries.sql `attached_vehicles` for the page's meters."""
    meters, counts = await _together(
        _read(
            gateway,
            status.list_meters,
            settings,
            limit=BOARD,
            cursor=cursor,
            active=None,
            stale=None,
        ),
        _read(gateway, _live_counts, settings),
    )
    ids = [item["meterId"] for item in meters["items"]]
    attached = await _read(gateway, _attached, settings, ids) if ids else {}
    return {"now": datetime.now(UTC), "meters": meters, "counts": counts, "attached": attached}


async def chargers_page(
    gateway: Gateway,
    settings: Settings,
    window: Window,
    sort: str,
    cursor: str | None,
    board_cursor: str | None,
) -> dict[str, Any]:
    """Chargers. Calls: board's; fleet.meters(window, sort, limit=50, cursor)."""
    live, ledger = await _together(
        board(gateway, settings, board_cursor),
        _read(gateway, fleet.meters, window.from_, window.to, sort=sort, limit=PAGE, cursor=cursor),
    )
    return {"board": live, "ledger": ledger}


def daily(hours: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Hourly rows summed per UTC day (the data table of a window longer than two days)."""
    days: dict[str, dict[str, Any]] = {}
    for hour in hours:
        day = hour["hour"][:10]
        row = days.setdefault(
            day,
            {
                "day": day,
                "totalAcKwh": 0.0,
                "totalDcKwh": 0.0,
                "attachedDcKwh": 0.0,
                "meterAcKwh": 0.0,
            },
        )
        for key in ("totalAcKwh", "totalDcKwh", "attachedDcKwh", "meterAcKwh"):
            row[key] += hour.get(key, 0.0)
    for row in days.values():
        row["efficiency"] = row["attachedDcKwh"] / row["totalAcKwh"] if row["totalAcKwh"] else None
    return list(days.values())


def chart(hours: list[dict[str, Any]], threshold: float) -> dict[str, Any]:
    """Hourly series for uPlot: unix seconds, kWh and efficiency (null where undefined)."""

    def rounded(key: str) -> list[float | None]:
        return [None if h.get(key) is None else round(h[key], 4) for h in hours]

    return {
        "t": [int(datetime.fromisoformat(h["hour"]).timestamp()) for h in hours],
        "ac": rounded("totalAcKwh"),
        "meterAc": rounded("meterAcKwh") if hours and "meterAcKwh" in hours[0] else [],
        "dc": rounded("totalDcKwh"),
        "attachedDc": rounded("attachedDcKwh"),
        "efficiency": rounded("efficiency"),
        "threshold": threshold,
    }


def utilisation(matched_minutes: int, window: Window) -> float:
    """The share of the window's minutes in which the charger served a vehicle while reporting."""
    return matched_minutes / window.minutes if window.minutes else 0.0
