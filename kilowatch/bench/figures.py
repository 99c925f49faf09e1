"""The figures `kilowatch bench` measures (SPEC §8) and the ratios between them, each declared once.

A figure is a function that measures one round and returns its `Sample`, registered with
`@figure(name, unit, Needs(database, server=writer))`. `Needs` says what it runs on: a database
(`INGEST`, the run's fresh ingest database, or a cached simulator `DataSet(days, vehicles,
meters)`, fleet size from the options when not given) and optionally the app under test with
that writer (2 workers). The runner makes every database and server the selected figures need
once, before the first round, and keeps them for the whole run. Every round then measures each
selected figure once, in the order they are declared here, so that drift on a shared machine
hits them all alike.

A figure function gets a `runner.Context`: `options`, the database `url`, the `server` address,
the `data` set, a `tag` unique to this figure and round (for device ids), and three ways to
send load — `ctx.clients(workload, target, connections, …)` (the Python client processes;
workloads are in workloads.py), `ctx.single_events(note)` and `ctx.gets(paths, connections,
note)` (wrk with lua/load.lua when it is on PATH, else the Python clients).

Adding, say, `analytics.fleet` on a 10,000-vehicle fleet is one function here:

    FLEET = DataSet(1, fleet=True)  # 10,000 vehicles + 8,000 meters by default

    @figure("analytics.fleet", "req/s", Needs(FLEET, server="group"))
    def analytics_fleet(ctx: Context) -> Sample:
        start, end = _data(ctx).window(24)
        path = f"/v1/analytics/fleet?from={_z(start)}&to={_z(end)}"
        return ctx.gets([path], ctx.options.analytics_connections, note="fleet, 24 h")

and a ratio is one line in RATIOS, computed in every round and reported as the median with its
min–max: `RatioSpec("analytics.fleet p99 / analytics.fleet.raw p99", "analytics.fleet",
"analytics.fleet.raw", "p99_ms", at_most(0.5))` (target None: shown for context). A figure
that needs a new kind of load adds a workload class to workloads.py (or a mode to lua/load.lua).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

import asyncpg

from kilowatch.bench.results import RatioSpec, Sample, at_least, at_most
from kilowatch.rollups import refresher, window

if TYPE_CHECKING:
    from kilowatch.bench import datasets
    from kilowatch.bench.runner import Context

Writer = Literal["group", "per_event", "none"]


@dataclass(frozen=True)
class DataSet:
    """A simulator data set of `days` of history, cached in the bench's server."""

    days: int
    vehicles: int | None = None  # None: --vehicles
    meters: int | None = None  # None: --meters
    copy: str = ""  # a name: a fresh copy of the cached set, for figures that change it
    fleet: bool = False  # the mission's fleet: sized by --fleet-vehicles / --fleet-meters


INGEST: Literal["ingest"] = "ingest"  # the run's fresh, empty ingest database
# Another fresh one, for the app with the rollup refresher off (SPEC §8: ingest is not slowed
# down by the rollup layer): two apps on one database would share one refresher.
INGEST_PLAIN: Literal["ingest_plain"] = "ingest_plain"
Database = Literal["ingest", "ingest_plain"] | DataSet
NO_REFRESHER = (("rollup_refresh", "false"),)
NO_ESTIMATE = (("estimate", "false"), *NO_REFRESHER)
# Nothing kept between reads (kilowatch/db/memo.py): what a read of a window costs the first
# time, or every time for windows with raw minutes (the open hour, edges, dirty hours).
COLD = (("read_memo_size", "0"), *NO_REFRESHER)


@dataclass(frozen=True)
class Needs:
    database: Database
    server: Writer | None = None  # the app on that database with this writer; None: no server
    settings: tuple[tuple[str, str], ...] = ()  # more KILOWATCH_* settings of that app


Measure = Callable[["Context"], Sample]


@dataclass(frozen=True)
class FigureSpec:
    name: str
    unit: str
    needs: Needs
    measure: Measure
    once: bool = False  # measured in the first round only (minutes per sample)


FIGURES: list[FigureSpec] = []


def figure(
    name: str, unit: str, needs: Needs, *, once: bool = False
) -> Callable[[Measure], Measure]:
    """Registers a figure; figures are measured in the order they are registered."""

    def register(measure: Measure) -> Measure:
        if any(f.name == name for f in FIGURES):
            raise ValueError(f"figure {name!r} registered twice")
        FIGURES.append(FigureSpec(name, unit, needs, measure, once))
        return measure

    return register


ONE_DAY = DataSet(1)
SEVEN_DAYS = DataSet(7)


def _server(ctx: Context) -> str:
    assert ctx.server, "the figure's Needs name a server"
    return ctx.server


def _data(ctx: Context) -> datasets.Dataset:
    assert ctx.data, "the figure's Needs name a data set"
    return ctx.data


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- ingest: single events, bursts, batches and their SQL twins --------------------------------


@figure("http.no_db", "events/s", Needs(INGEST, server="none"))
def http_no_db(ctx: Context) -> Sample:
    return ctx.single_events(f"writer=none, {ctx.options.connections} connections")


@figure("ingest.per_event_txn", "events/s", Needs(INGEST, server="per_event"))
def ingest_per_event_txn(ctx: Context) -> Sample:
    return ctx.single_events(f"writer=per_event, {ctx.options.connections} connections")


@figure("ingest.group_commit", "events/s", Needs(INGEST, server="group"))
def ingest_group_commit(ctx: Context) -> Sample:
    return ctx.single_events(f"writer=group, {ctx.options.connections} connections")


@figure("ingest.burst_20k", "events/s", Needs(INGEST, server="group"))
def ingest_burst_20k(ctx: Context) -> Sample:
    return ctx.clients(
        "single", _server(ctx), 64, total=20_000, note="20,000 single events, 64 connections"
    )


@figure("ingest.burst_20k.batch100", "events/s", Needs(INGEST, server="group"))
def ingest_burst_20k_batch100(ctx: Context) -> Sample:
    return ctx.clients(
        "batch",
        _server(ctx),
        64,
        total=200,
        batch=100,
        note="20,000 events as 200 batches of 100",
    )


@figure("ingest.batch", "rows/s", Needs(INGEST, server="group"))
def ingest_batch(ctx: Context) -> Sample:
    n = ctx.options.batch_connections
    return ctx.clients(
        "batch", _server(ctx), n, batch=1000, note=f"batches of 1,000, {n} connections"
    )


@figure(
    "ingest.plain.group_commit",
    "events/s",
    Needs(INGEST_PLAIN, server="group", settings=NO_REFRESHER),
)
def ingest_group_commit_plain(ctx: Context) -> Sample:
    return ctx.single_events(
        f"writer=group, rollup refresher off, {ctx.options.connections} connections"
    )


@figure(
    "ingest.plain.batch",
    "rows/s",
    Needs(INGEST_PLAIN, server="group", settings=NO_REFRESHER),
)
def ingest_batch_plain(ctx: Context) -> Sample:
    n = ctx.options.batch_connections
    return ctx.clients(
        "batch",
        _server(ctx),
        n,
        batch=1000,
        note=f"batches of 1,000, {n} connections, rollup refresher off",
    )


@figure("sql.dual_write", "rows/s", Needs(INGEST))
def sql_dual_write(ctx: Context) -> Sample:
    return ctx.clients(
        "dual_write",
        ctx.url,
        ctx.options.batch_connections,
        batch=1000,
        note="the writer's statement from the client, no HTTP",
    )


@figure("sql.dual_write.staged", "rows/s", Needs(INGEST))
def sql_dual_write_staged(ctx: Context) -> Sample:
    return ctx.clients(
        "staged_write",
        ctx.url,
        ctx.options.batch_connections,
        batch=1000,
        note="the same write fed by COPY into staging tables, not unnest()",
    )


@figure("copy.raw", "rows/s", Needs(INGEST))
def copy_raw(ctx: Context) -> Sample:
    return ctx.clients(
        "copy",
        ctx.url,
        ctx.options.batch_connections,
        batch=1000,
        note="COPY of the same rows: no dedup, no status",
    )


# --- reads: per-vehicle analytics, its SQL floor, status ---------------------------------------


def _vehicle_paths(data: datasets.Dataset, *, edges: bool = False) -> list[str]:
    start, end = data.window(24, edges=edges)
    return [f"/v1/analytics/performance/{v}?from={_z(start)}&to={_z(end)}" for v in data.vehicles]


def _analytics_vehicle(ctx: Context, *, edges: bool = False) -> Sample:
    data = _data(ctx)
    n = ctx.options.analytics_connections
    window = "24 h window, minute edges" if edges else "24 whole hours"
    return ctx.clients(
        "get",
        _server(ctx),
        n,
        paths=_vehicle_paths(data, edges=edges),
        note=f"{window}, {data.days} d of history, {len(data.vehicles):,} vehicles, "
        f"{n} connections",
    )


# The data sets do not change: their apps run no refresher (the rollups were materialized when
# the data set was made), so nothing but the figure runs while it is measured.
READS: Writer = "group"
figure("analytics.vehicle.1d", "req/s", Needs(ONE_DAY, READS, NO_REFRESHER))(_analytics_vehicle)


@figure("analytics.vehicle.1d.no_estimate", "req/s", Needs(ONE_DAY, READS, NO_ESTIMATE))
def analytics_vehicle_no_estimate(ctx: Context) -> Sample:
    """The same reads with the estimate off: what the estimate costs, side by side."""
    return _analytics_vehicle(ctx)


@figure("analytics.vehicle.1d.edges", "req/s", Needs(ONE_DAY, READS, NO_REFRESHER))
def analytics_vehicle_edges(ctx: Context) -> Sample:
    return _analytics_vehicle(ctx, edges=True)


@figure("analytics.vehicle.raw", "req/s", Needs(ONE_DAY))
def analytics_vehicle_raw(ctx: Context) -> Sample:
    data = _data(ctx)
    start, end = data.window(24)
    n = ctx.options.analytics_connections
    return ctx.clients(
        "sql",
        ctx.url,
        n,
        query="performance_raw",
        vehicles=data.vehicles,
        args=[start, end],
        note=f"the §5 reference statement over raw rows, same windows, {n} connections",
    )


@figure("status.lookup", "req/s", Needs(ONE_DAY, READS, NO_REFRESHER))
def status_lookup(ctx: Context) -> Sample:
    n = ctx.options.connections
    return ctx.gets(
        [f"/v1/vehicles/{v}/status" for v in _data(ctx).vehicles],
        n,
        f"GET /v1/vehicles/{{id}}/status, {n} connections",
    )


@figure("sql.vehicle_floor", "req/s", Needs(ONE_DAY))
def sql_vehicle_floor(ctx: Context) -> Sample:
    data = _data(ctx)
    start, end = data.window(24)
    return ctx.clients(
        "floor",
        ctx.url,
        ctx.options.analytics_connections,
        vehicles=data.vehicles,
        window=[start.isoformat(), end.isoformat()],
        note="bare SUM over the primary-key range, same windows",
    )


figure("analytics.vehicle.7d", "req/s", Needs(SEVEN_DAYS, READS, NO_REFRESHER))(_analytics_vehicle)


# --- fleet-wide analytics on the mission's scale, and the window ratio on a smaller fleet -------

FLEET = DataSet(1, fleet=True)  # 10,000 vehicles + 8,000 meters by default
FLEET_CONNECTIONS = 2  # a couple of dashboards at once: each read is fleet-wide


def _fleet_paths(data: datasets.Dataset, hours: int, what: str) -> list[str]:
    start, end = data.window(hours)
    window = f"from={_z(start)}&to={_z(end)}"
    return {
        "fleet": [f"/v1/analytics/fleet?{window}"],
        "vehicles": [f"/v1/analytics/vehicles?{window}&sort=efficiency&limit=100"],
        "meters": [f"/v1/analytics/meters?{window}&sort=-unattributedAcKwh&limit=100"],
    }[what]


def _fleet(ctx: Context, what: str, hours: int = 24, *, cold: bool = False) -> Sample:
    data = _data(ctx)
    kept = "computed every time" if cold else "kept between reads"
    return ctx.clients(
        "get",
        _server(ctx),
        FLEET_CONNECTIONS,
        paths=_fleet_paths(data, hours, what),
        note=f"{hours} whole hours, {len(data.vehicles):,} vehicles, {len(data.meters):,} "
        f"meters, {FLEET_CONNECTIONS} connections, {kept}",
    )


@figure("analytics.fleet", "req/s", Needs(FLEET, READS, NO_REFRESHER))
def analytics_fleet(ctx: Context) -> Sample:
    return _fleet(ctx, "fleet")


@figure("analytics.fleet.no_estimate", "req/s", Needs(FLEET, READS, (("estimate", "false"), *COLD)))
def analytics_fleet_no_estimate(ctx: Context) -> Sample:
    """The fleet summary with the estimate off, computed every time: the rollups' part, and
    (beside `analytics.fleet.cold`) what the count costs."""
    return _fleet(ctx, "fleet", cold=True)


@figure("analytics.fleet.cold", "req/s", Needs(FLEET, READS, COLD))
def analytics_fleet_cold(ctx: Context) -> Sample:
    """The fleet summary computed every time: the first read of a window, or any read of one
    with raw minutes."""
    return _fleet(ctx, "fleet", cold=True)


@figure("analytics.vehicles", "req/s", Needs(FLEET, READS, NO_REFRESHER))
def analytics_vehicles(ctx: Context) -> Sample:
    return _fleet(ctx, "vehicles")


@figure("analytics.vehicles.cold", "req/s", Needs(FLEET, READS, COLD))
def analytics_vehicles_cold(ctx: Context) -> Sample:
    return _fleet(ctx, "vehicles", cold=True)


@figure("analytics.meters", "req/s", Needs(FLEET, READS, NO_REFRESHER))
def analytics_meters(ctx: Context) -> Sample:
    return _fleet(ctx, "meters")


# Minutes per request at the mission's scale: measured once, in the first round.
@figure("analytics.fleet.raw", "req/s", Needs(FLEET), once=True)
def analytics_fleet_raw(ctx: Context) -> Sample:
    data = _data(ctx)
    start, end = data.window(24)
    return ctx.clients(
        "sql",
        ctx.url,
        1,
        total=1,
        query="fleet_summary",
        args=[*window.raw(start, end).fleet_args(), 0.85],
        note="the same fleet figures from raw history, one set-based statement",
    )


# What a longer window costs to compute: nothing kept, or both would be served from the memo.
@figure("analytics.fleet.1d", "req/s", Needs(SEVEN_DAYS, READS, COLD))
def analytics_fleet_1d(ctx: Context) -> Sample:
    return _fleet(ctx, "fleet", 24, cold=True)


@figure("analytics.fleet.7d", "req/s", Needs(SEVEN_DAYS, READS, COLD))
def analytics_fleet_7d(ctx: Context) -> Sample:
    return _fleet(ctx, "fleet", 24 * 7, cold=True)


# --- the refresher: materializing, and absorbing late events ------------------------------------

REFRESH_HOURS = 2
LATE = DataSet(1, copy="late")  # late events change the data set: a copy of it


@figure("rollup.refresh", "rows/s", Needs(ONE_DAY))
def rollup_refresh(ctx: Context) -> Sample:
    data = _data(ctx)
    readings, seconds = asyncio.run(
        _rematerialize(ctx.url, data.end - timedelta(hours=REFRESH_HOURS))
    )
    return _timed(
        readings,
        seconds,
        f"the last {REFRESH_HOURS} h of the 1-day data set "
        f"materialized again ({readings:,} readings)",
    )


async def _rematerialize(url: str, start: datetime) -> tuple[int, float]:
    conn = await asyncpg.connect(url)
    try:
        await refresher.rewind(conn, start)
        began = time.perf_counter()
        readings = 0
        while (step := await refresher.advance(conn)) is not None:
            readings += step[1]
        return readings, time.perf_counter() - began
    finally:
        await conn.close()


@figure("rollup.late", "events/s", Needs(LATE, server="group"))
def rollup_late(ctx: Context) -> Sample:
    data = _data(ctx)
    n, batch, pace = 4, 25, 0.5  # 4 connections × 25 events every 0.5 s: 200 late events/s
    return ctx.clients(
        "late",
        _server(ctx),
        n,
        batch=batch,
        pace_s=pace,
        vehicles=data.vehicles,
        meters=data.meters,
        base=datetime.now(UTC).isoformat(),
        note=f"{n * batch / pace:.0f}/s offered: heartbeats of the fleet at random instants of "
        "the last 35 days, each dirtying its hour",
    )


@figure("rollup.late.backlog", "marks/s", Needs(LATE, server="group"))
def rollup_late_backlog(ctx: Context) -> Sample:
    marks, seconds = asyncio.run(_drain(ctx.url))
    return _timed(
        marks,
        seconds,
        f"{marks:,} dirty marks left after rollup.late, "
        f"cleared in {seconds:.1f} s by the app's refresher",
    )


async def _drain(url: str, timeout_s: float = 300.0) -> tuple[int, float]:
    conn = await asyncpg.connect(url)
    try:
        began = time.perf_counter()
        first = await conn.fetchval("SELECT count(*) FROM rollup_dirty")
        while await conn.fetchval("SELECT count(*) FROM rollup_dirty"):
            if time.perf_counter() - began > timeout_s:
                break
            await asyncio.sleep(0.2)
        return int(first), time.perf_counter() - began
    finally:
        await conn.close()


def _timed(units: int, seconds: float, note: str) -> Sample:
    return Sample(
        rate=units / seconds if seconds > 0 else 0.0,
        p50_ms=None,
        p99_ms=None,
        count=units,
        errors=0,
        seconds=seconds,
        client_cpu=0.0,
        client="bench",
        note=note,
    )


# --- ratios: the issues' targets, each computed per round ---------------------------------------

RATIOS: list[RatioSpec] = [
    RatioSpec(
        "group_commit / per_event_txn",
        "ingest.group_commit",
        "ingest.per_event_txn",
        "rate",
        at_least(3),
    ),
    RatioSpec(
        "group_commit / http.no_db", "ingest.group_commit", "http.no_db", "rate", at_least(0.7)
    ),
    RatioSpec(
        "group_commit p99 / http.no_db p99",
        "ingest.group_commit",
        "http.no_db",
        "p99_ms",
        at_most(2),
    ),
    RatioSpec(
        "ingest.batch / sql.dual_write", "ingest.batch", "sql.dual_write", "rate", at_least(0.7)
    ),
    RatioSpec(
        "sql.dual_write.staged / sql.dual_write",
        "sql.dual_write.staged",
        "sql.dual_write",
        "rate",
        None,
    ),
    RatioSpec("sql.dual_write / copy.raw", "sql.dual_write", "copy.raw", "rate", None),
    RatioSpec(
        "analytics.vehicle.1d p99 / sql.vehicle_floor p99",
        "analytics.vehicle.1d",
        "sql.vehicle_floor",
        "p99_ms",
        at_most(1),
    ),
    RatioSpec(
        "analytics.vehicle.1d p99 / 1d.no_estimate p99",
        "analytics.vehicle.1d",
        "analytics.vehicle.1d.no_estimate",
        "p99_ms",
        at_most(1.5),
    ),
    RatioSpec(
        "analytics.vehicle.7d p99 / 1d p99",
        "analytics.vehicle.7d",
        "analytics.vehicle.1d",
        "p99_ms",
        at_most(1.2),
    ),
    RatioSpec(
        "analytics.vehicle.raw p99 / 1d p99",
        "analytics.vehicle.raw",
        "analytics.vehicle.1d",
        "p99_ms",
        None,
    ),
    RatioSpec(
        "analytics.vehicle.1d.edges p99 / sql.vehicle_floor p99",
        "analytics.vehicle.1d.edges",
        "sql.vehicle_floor",
        "p99_ms",
        None,
    ),
    RatioSpec(
        "analytics.fleet / analytics.fleet.raw",
        "analytics.fleet",
        "analytics.fleet.raw",
        "rate",
        at_least(50),
    ),
    RatioSpec(
        "analytics.fleet.no_estimate / analytics.fleet.raw",
        "analytics.fleet.no_estimate",
        "analytics.fleet.raw",
        "rate",
        None,
    ),
    RatioSpec(
        "analytics.fleet.cold / analytics.fleet.raw",
        "analytics.fleet.cold",
        "analytics.fleet.raw",
        "rate",
        None,
    ),
    RatioSpec(
        "fleet.cold p99 / fleet.no_estimate p99",
        "analytics.fleet.cold",
        "analytics.fleet.no_estimate",
        "p99_ms",
        None,
    ),
    RatioSpec(
        "analytics.vehicles.cold / analytics.fleet.raw",
        "analytics.vehicles.cold",
        "analytics.fleet.raw",
        "rate",
        None,
    ),
    RatioSpec(
        "analytics.vehicles / analytics.fleet.raw",
        "analytics.vehicles",
        "analytics.fleet.raw",
        "rate",
        at_least(50),
    ),
    RatioSpec(
        "analytics.fleet.7d p99 / 1d p99",
        "analytics.fleet.7d",
        "analytics.fleet.1d",
        "p99_ms",
        at_most(2),
    ),
    RatioSpec(
        "rollup.refresh / ingest.batch", "rollup.refresh", "ingest.batch", "rate", at_least(1)
    ),
    RatioSpec(
        "ingest.batch / ingest.plain.batch",
        "ingest.batch",
        "ingest.plain.batch",
        "rate",
        at_least(0.95),
    ),
    RatioSpec(
        "ingest.group_commit / ingest.plain.group_commit",
        "ingest.group_commit",
        "ingest.plain.group_commit",
        "rate",
        at_least(0.95),
    ),
]
