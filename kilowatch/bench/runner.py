"""`kilowatch bench`: every figure of SPEC §8, side by side in one run, from client processes."""
from __future__ import annotations

import asyncio
import multiprocessing
import os
import platform
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from rich.console import Console

from kilowatch.bench import datasets, load, server


@dataclass
class Options:
    duration_s: float = 10.0
    warmup_s: float = 2.0
    connections: int = 64        # single-event and read figures
    batch_connections: int = 4   # batches of 1,000 over HTTP and their SQL twins
    analytics_connections: int = 8  # per-vehicle analytics and its SQL floor (a dashboard's load)
    processes: int = 2           # client processes
    vehicles: int = 500          # analytics data sets (meters: 4 per 5 vehicles)
    meters: int = 400
    seed: int = 1
    only: frozenset[str] | None = None  # figure names or prefixes; None: all
    prefix: str = "kwbench"      # of the databases the bench creates (and caches)

    def wants(self, name: str) -> bool:
        return self.only is None or any(name == o or name.startswith(o + ".") for o in self.only)


@dataclass
class Figure:
    name: str
    unit: str
    rate: float
    p50_ms: float | None
    p99_ms: float | None
    count: int
    errors: int
    error_kinds: dict[str, int]
    seconds: float
    client_cpu: float  # client processes' CPU time / (elapsed × cores)
    note: str = ""


@dataclass
class Ratio:
    name: str
    value: float | None
    target: str
    ok: bool | None


@dataclass
class Report:
    machine: dict[str, Any]
    options: dict[str, Any]
    figures: list[Figure] = field(default_factory=list)
    ratios: list[Ratio] = field(default_factory=list)

    def get(self, name: str) -> Figure | None:
        return next((f for f in self.figures if f.name == name), None)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


class Bench:
    def __init__(self, admin_url: str, options: Options, console: Console) -> None:
        self.admin_url = admin_url
        self.options = options
        self.console = console
        self.pool = ProcessPoolExecutor(options.processes,
                                        mp_context=multiprocessing.get_context("spawn"))
        self.report = Report(machine={}, options=options.__dict__ | {
            "only": sorted(options.only) if options.only else None})
        self.tags = iter(f"b{i}" for i in range(1000))

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)

    def measure(self, name: str, unit: str, workload: str, target: str, connections: int, *,
                total: int | None = None, note: str = "", **params: Any) -> Figure:
        """Runs one figure from every client process at once and adds it to the report."""
        opts = self.options
        processes = min(opts.processes, connections)
        params.setdefault("tag", next(self.tags))
        params.setdefault("base", (datetime.now(UTC) - timedelta(minutes=1)).isoformat())
        start_at = time.time() + 1.0 + connections * 0.01  # after every process has connected
        tasks = [load.Task(
            workload=workload, process=p, connections=_share(connections, processes, p),
            start_at=start_at, warmup_s=0 if total else opts.warmup_s,
            duration_s=None if total else opts.duration_s,
            total=_share(total, processes, p) if total else None, target=target, params=params)
            for p in range(processes)]
        self.console.print(f"  {name} …", end="")
        outcomes = list(self.pool.map(load.run, tasks))
        latencies = [x for o in outcomes for x in o.latencies]
        errors: Counter[str] = Counter()
        for outcome in outcomes:
            errors.update(outcome.errors)
        units = sum(o.units for o in outcomes)
        if total:
            seconds = max(o.last_done for o in outcomes) - min(o.first_send for o in outcomes)
        else:
            seconds = opts.duration_s
        wall = max(o.wall_s for o in outcomes)
        figure = Figure(
            name=name, unit=unit, rate=units / seconds if seconds > 0 else 0.0,
            p50_ms=_percentile(latencies, 0.50), p99_ms=_percentile(latencies, 0.99),
            count=len(latencies) + sum(errors.values()), errors=sum(errors.values()),
            error_kinds=dict(errors), seconds=seconds,
            client_cpu=sum(o.cpu_s for o in outcomes) / (wall * (os.cpu_count() or 1)),
            note=note)
        self.console.print(f" {figure.rate:,.0f} {unit}")
        self.report.figures.append(figure)
        return figure

    def run(self) -> Report:
        opts = self.options
        self.pool.submit(int).result()  # start the client processes before timing anything
        self.report.machine = _machine(self.admin_url)
        ingest_names = ("http.no_db", "ingest.per_event_txn", "ingest.group_commit",
                        "ingest.burst_20k", "ingest.batch", "sql.dual_write", "sql.dual_write.staged",
                        "copy.raw")
        if any(opts.wants(n) for n in ingest_names):
            self._ingest()
        if any(opts.wants(n) for n in ("analytics", "sql.vehicle_floor", "status.lookup")):
            self._analytics()
        self.report.ratios = ratios(self.report)
        return self.report

    def _ingest(self) -> None:
        opts = self.options
        name = f"{opts.prefix}_ingest"
        self.console.print(f"[bold]ingest[/] (fresh database {name})")
        url = asyncio.run(datasets.recreate(self.admin_url, name))
        singles = dict(workload="single", connections=opts.connections)
        for name, writer in (("http.no_db", "none"), ("ingest.per_event_txn", "per_event"),
                             ("ingest.group_commit", "group")):
            if opts.wants(name):
                with server.running(url, writer=writer) as target:
                    self.measure(name, "events/s", target=target, **singles,  # type: ignore[arg-type]
                                 note=f"writer={writer}, {opts.connections} connections")
        batches = ("ingest.burst_20k", "ingest.batch")
        if any(opts.wants(n) for n in batches):
            with server.running(url, writer="group") as target:
                if opts.wants("ingest.burst_20k"):
                    self.measure("ingest.burst_20k", "events/s", "single", target, 64,
                                 total=20_000, note="20,000 single events, 64 connections")
                    self.measure("ingest.burst_20k.batch100", "events/s", "batch", target, 64,
                                 total=200, batch=100, note="20,000 events as 200 batches of 100")
                if opts.wants("ingest.batch"):
                    self.measure("ingest.batch", "rows/s", "batch", target,
                                 opts.batch_connections, batch=1000,
                                 note=f"batches of 1,000, {opts.batch_connections} connections")
        if opts.wants("sql.dual_write"):
            self.measure("sql.dual_write", "rows/s", "dual_write", url, opts.batch_connections,
                         batch=1000, note="the writer's statement from the client, no HTTP")
        if opts.wants("sql.dual_write.staged"):
            self.measure("sql.dual_write.staged", "rows/s", "staged_write", url,
                         opts.batch_connections, batch=1000,
                         note="the same write fed by COPY into staging tables, not unnest()")
        if opts.wants("copy.raw"):
            self.measure("copy.raw", "rows/s", "copy", url, opts.batch_connections, batch=1000,
                         note="COPY of the same rows: no dedup, no status")

    def _analytics(self) -> None:
        opts = self.options
        sets = {days: asyncio.run(datasets.ensure(self.admin_url, days, opts.vehicles,
                                                  opts.meters, opts.seed, self.console,
                                                  opts.prefix))
                for days in (1, 7) if days == 1 or opts.wants("analytics.vehicle.7d")}
        for days, data in sets.items():
            start, end = data.window(24)
            paths = [f"/v1/analytics/performance/{v}?from={_z(start)}&to={_z(end)}"
                     for v in data.vehicles]
            window = f"24 h window, {days} d of history, {len(data.vehicles):,} vehicles"
            with server.running(data.url) as target:
                if opts.wants(f"analytics.vehicle.{days}d"):
                    self.measure(f"analytics.vehicle.{days}d", "req/s", "get", target,
                                 opts.analytics_connections, paths=paths,
                                 note=f"{window}, {opts.analytics_connections} connections")
                if days == 1 and opts.wants("status.lookup"):
                    self.measure("status.lookup", "req/s", "get", target, opts.connections,
                                 paths=[f"/v1/vehicles/{v}/status" for v in data.vehicles],
                                 note=f"GET /v1/vehicles/{{id}}/status, {opts.connections} connections")
            if days == 1 and opts.wants("sql.vehicle_floor"):
                self.measure("sql.vehicle_floor", "req/s", "floor", data.url,
                             opts.analytics_connections, vehicles=data.vehicles,
                             window=[start.isoformat(), end.isoformat()],
                             note="bare SUM over the primary-key range, same windows")


def _share(total: int, parts: int, index: int) -> int:
    return total // parts + (1 if index < total % parts else 0)


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _machine(url: str) -> dict[str, Any]:
    async def server_facts() -> dict[str, str]:
        conn = await asyncpg.connect(url)
        try:
            return {key: await conn.fetchval(f"SHOW {key}")  # fixed names
                    for key in ("server_version", "fsync", "synchronous_commit")}
        finally:
            await conn.close()

    facts = asyncio.run(server_facts())
    return {"platform": platform.platform(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "postgres": facts["server_version"],
            "fsync": facts["fsync"], "synchronous_commit": facts["synchronous_commit"]}


def _ratio(report: Report, name: str, a: str, b: str, value: Callable[[Figure], float | None],
           target: Callable[[float], bool], text: str) -> Ratio:
    fa, fb = report.get(a), report.get(b)
    va, vb = (value(fa) if fa else None), (value(fb) if fb else None)
    result = va / vb if va is not None and vb else None
    return Ratio(name, result, text, None if result is None else target(result))


def ratios(report: Report) -> list[Ratio]:
    """The targets of the issues, as ratios of figures measured in this run."""
    def rate(f: Figure) -> float:
        return f.rate

    def p99(f: Figure) -> float | None:
        return f.p99_ms

    found = [
        _ratio(report, "group_commit / per_event_txn", "ingest.group_commit",
               "ingest.per_event_txn", rate, lambda r: r >= 3, "≥ 3"),
        _ratio(report, "group_commit / http.no_db", "ingest.group_commit", "http.no_db",
               rate, lambda r: r >= 0.7, "≥ 0.70"),
        _ratio(report, "group_commit p99 / http.no_db p99", "ingest.group_commit", "http.no_db",
               p99, lambda r: r <= 2, "≤ 2"),
        _ratio(report, "ingest.batch / sql.dual_write", "ingest.batch", "sql.dual_write",
               rate, lambda r: r >= 0.7, "≥ 0.70"),
        _ratio(report, "sql.dual_write.staged / sql.dual_write", "sql.dual_write.staged",
               "sql.dual_write", rate, lambda r: True, "context"),
        _ratio(report, "sql.dual_write / copy.raw", "sql.dual_write", "copy.raw",
               rate, lambda r: True, "context"),
        _ratio(report, "analytics.vehicle.1d p99 / sql.vehicle_floor p99", "analytics.vehicle.1d",
               "sql.vehicle_floor", p99, lambda r: r <= 2, "≤ 2"),
        _ratio(report, "analytics.vehicle.7d p99 / 1d p99", "analytics.vehicle.7d",
               "analytics.vehicle.1d", p99, lambda r: r <= 1.2, "≤ 1.2"),
    ]
    return [r for r in found if r.value is not None]
