"""`kilowatch bench`: the figures of figures.py in interleaved rounds, from client processes."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import platform
import secrets
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import asyncpg
from rich.console import Console

from kilowatch.bench import datasets, figures, load, results, server, wrk
from kilowatch.bench.figures import INGEST, INGEST_PLAIN, Database, FigureSpec, Needs, Writer
from kilowatch.bench.results import Report, Sample
from kilowatch.settings import Settings

WRK_DEVICES = 10_000  # devices per wrk thread: 20,000 with 2 threads, the SPEC's fleet


@dataclass
class Options:
    duration_s: float = 5.0  # per figure and round
    warmup_s: float = 1.0
    rounds: int = 5  # two runs of 3 rounds miss each other 1 time in 10 (bench/compare.py)
    connections: int = 64  # single-event and read figures
    batch_connections: int = 4  # batches of 1,000 over HTTP and their SQL twins
    analytics_connections: int = 8  # per-vehicle analytics and its SQL floor (a dashboard's load)
    processes: int = 2  # Python client processes; wrk threads
    client: Literal["auto", "wrk", "python"] = "auto"  # single-event and status figures
    vehicles: int = 500  # analytics data sets (meters: 4 per 5 vehicles)
    meters: int = 400
    fleet_vehicles: int = 10_000  # the fleet-wide figures' data set: the mission's scale
    fleet_meters: int = 8_000
    seed: int = 1
    only: frozenset[str] | None = None  # figure names or prefixes; None: all
    prefix: str = "kwbench"  # of the databases the bench creates (and caches)

    def wants(self, name: str) -> bool:
        return self.only is None or any(name == o or name.startswith(o + ".") for o in self.only)


@dataclass
class Context:
    """What a figure's measure function gets for one round (see figures.py)."""

    bench: Bench
    options: Options
    round: int
    tag: str  # unique to this figure, round and run: put it in device ids
    url: str  # the figure's database
    server: str | None  # "127.0.0.1:port" of the app the figure's Needs name
    data: datasets.Dataset | None

    def clients(
        self,
        workload: str,
        target: str,
        connections: int,
        *,
        total: int | None = None,
        note: str = "",
        **params: Any,
    ) -> Sample:
        """A workload of workloads.py from the Python client processes, against target."""
        return self.bench.python(self, workload, target, connections, total, note, params)

    def single_events(self, note: str) -> Sample:
        """Unique single events to the figure's server: wrk when available, else Python."""
        connections = self.options.connections
        if self.bench.wrk_binary:
            args = ["ingest", self.tag, str(WRK_DEVICES)]
            return self.bench.wrk(self, args, connections, note)
        assert self.server
        return self.clients("single", self.server, connections, note=note)

    def gets(self, paths: list[str], connections: int, note: str) -> Sample:
        """GETs of paths in random order: wrk when available, else Python."""
        if self.bench.wrk_binary:
            listing = self.bench.scratch / f"{self.tag}.paths"
            listing.write_text("\n".join(paths) + "\n")
            return self.bench.wrk(self, ["get", str(listing)], connections, note)
        assert self.server
        return self.clients("get", self.server, connections, paths=paths, note=note)


@dataclass(frozen=True)
class _Setup:
    url: str
    data: datasets.Dataset | None
    server: str | None


class Bench:
    def __init__(self, admin_url: str, options: Options, console: Console) -> None:
        self.admin_url = admin_url
        self.options = options
        self.console = console
        self.pool = ProcessPoolExecutor(
            options.processes, mp_context=multiprocessing.get_context("spawn")
        )
        self.wrk_binary = wrk.find() if options.client != "python" else None
        if options.client == "wrk" and not self.wrk_binary:
            raise RuntimeError("--client wrk: wrk is not on PATH (Debian: apt-get install wrk)")
        self.run_id = secrets.token_hex(2)
        self.scratch = Path()  # a temporary directory while run() runs
        self._databases: dict[Database, tuple[str, datasets.Dataset | None]] = {}
        # (database URL, writer, settings): address
        self._servers: dict[tuple[str, Writer, tuple[tuple[str, str], ...]], str] = {}
        self.report = Report(
            machine={},
            options=options.__dict__ | {"only": sorted(options.only) if options.only else None},
        )

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)

    def run(self) -> Report:
        opts = self.options
        specs = selected(opts)
        self.pool.submit(int).result()  # start the client processes before timing anything
        self.report.machine = _machine(self.admin_url)
        self.report.clients = self._clients()
        samples: dict[str, list[Sample]] = {spec.name: [] for spec in specs}
        with contextlib.ExitStack() as stack:
            self.scratch = Path(stack.enter_context(tempfile.TemporaryDirectory("kwbench")))
            # Every database and server once, before the first round: rounds are not interrupted
            # by set-up, and an idle server costs about 0.5 % of a core.
            # Databases first: a copy is made from its data set as a template, which needs
            # nothing connected to the data set yet.
            for spec in specs:
                self._prepare_database(spec.needs.database)
            setups = {spec.name: self._prepare(spec.needs, stack) for spec in specs}
            for r in range(opts.rounds):
                self.console.print(f"[bold]round {r + 1} of {opts.rounds}[/]")
                # Each round starts one figure further on: what a figure leaves behind (its
                # rows to refresh, a warmer cache) falls on a different neighbour each round,
                # into the spread rather than into one figure's median.
                order, start = list(enumerate(specs)), r % len(specs)
                for i, spec in order[start:] + order[:start]:
                    if spec.once and r > 0:
                        continue
                    setup = setups[spec.name]
                    ctx = Context(
                        self,
                        opts,
                        r,
                        f"k{self.run_id}r{r}f{i}",
                        setup.url,
                        setup.server,
                        setup.data,
                    )
                    self.console.print(f"  {spec.name} …", end="")
                    asyncio.run(_settle(self.admin_url))
                    sample = spec.measure(ctx)
                    errors = f", [red]{sample.errors:,} errors[/]" if sample.errors else ""
                    self.console.print(f" {sample.rate:,.0f} {spec.unit} ({sample.client}{errors})")
                    samples[spec.name].append(sample)
        self.report.figures = [results.summarize(s.name, s.unit, samples[s.name]) for s in specs]
        by_name = {f.name: f for f in self.report.figures}
        found = (results.ratio(spec, by_name) for spec in figures.RATIOS)
        self.report.ratios = [r for r in found if r is not None]
        self.report.machine["load_after"] = _load()
        self._accuracy()
        return self.report

    def _accuracy(self) -> None:
        """The estimate against the simulator's truth, on each multi-day data set used."""
        settings = Settings(database_url=self.admin_url)
        for database, (_, data) in self._databases.items():
            copied = isinstance(database, figures.DataSet) and bool(database.copy)
            if data is None or data.days < 7 or copied:
                continue
            scored = asyncio.run(datasets.accuracy(data, settings))
            name = f"{len(data.vehicles)} vehicles × {data.days} d"
            self.report.accuracy[name] = [*scored.lines(), f"targets met: {scored.meets_targets()}"]

    # --- set-up ----------------------------------------------------------------------------

    def _prepare_database(self, database: Database) -> tuple[str, datasets.Dataset | None]:
        if database not in self._databases:
            self._databases[database] = self._database(database)
        return self._databases[database]

    def _prepare(self, needs: Needs, stack: contextlib.ExitStack) -> _Setup:
        url, data = self._prepare_database(needs.database)
        address = None
        if needs.server:
            key = (url, needs.server, needs.settings)
            if key not in self._servers:
                settings: dict[str, Any] = {"writer": needs.server, **dict(needs.settings)}
                self._servers[key] = stack.enter_context(server.running(url, 2, **settings))
                extra = "".join(f", {k}={v}" for k, v in needs.settings)
                self.console.print(
                    f"server writer={needs.server}{extra} on {urlsplit(url).path[1:]}"
                )
            address = self._servers[key]
        return _Setup(url, data, address)

    def _database(self, database: Database) -> tuple[str, datasets.Dataset | None]:
        opts = self.options
        if database in (INGEST, INGEST_PLAIN):
            name = f"{opts.prefix}_{database}"
            self.console.print(f"fresh database {name}")
            return asyncio.run(datasets.recreate(self.admin_url, name)), None
        assert isinstance(database, figures.DataSet)
        if database.copy:
            _, base = self._prepare_database(replace(database, copy=""))
            assert base is not None
            name = f"{opts.prefix}_{database.copy}"
            self.console.print(f"fresh copy {name} of {urlsplit(base.url).path[1:]}")
            copied = asyncio.run(datasets.copy(self.admin_url, base, name))
            return copied.url, copied
        data = asyncio.run(
            datasets.ensure(
                self.admin_url,
                database.days,
                opts.fleet_vehicles if database.fleet else database.vehicles or opts.vehicles,
                opts.fleet_meters if database.fleet else database.meters or opts.meters,
                opts.seed,
                self.console,
                opts.prefix,
            )
        )
        return data.url, data

    def _clients(self) -> dict[str, Any]:
        python = f"python ({self.options.processes} processes)"
        if self.wrk_binary:
            threads = min(self.options.processes, self.options.connections)
            driver = f"{wrk.version(self.wrk_binary)} ({threads} threads)"
        else:
            driver = python
        return {"single_events": driver, "other": python}

    # --- load ------------------------------------------------------------------------------

    def wrk(self, ctx: Context, args: list[str], connections: int, note: str) -> Sample:
        binary, opts = self.wrk_binary, self.options
        assert binary and ctx.server

        def once(seconds: float, args: list[str]) -> Sample:
            return wrk.run(
                binary,
                f"http://{ctx.server}/",
                "load.lua",
                threads=opts.processes,
                connections=connections,
                seconds=seconds,
                args=args,
                note=note,
            )

        if opts.warmup_s > 0:
            # Its own events (another tag): warm-up rows never collide with measured ones.
            once(
                opts.warmup_s, [args[0], args[1] + "w", *args[2:]] if args[0] == "ingest" else args
            )
        return once(opts.duration_s, args)

    def python(
        self,
        ctx: Context,
        workload: str,
        target: str,
        connections: int,
        total: int | None,
        note: str,
        params: dict[str, Any],
    ) -> Sample:
        """Runs one figure from every client process at once."""
        opts = self.options
        processes = min(opts.processes, connections)
        params.setdefault("tag", ctx.tag)
        if total:
            # A fixed sequence of events, stepped in milliseconds from just now.
            params.setdefault("base", (datetime.now(UTC) - timedelta(seconds=1)).isoformat())
        start_at = time.time() + 1.0 + connections * 0.01  # after every process has connected
        tasks = [
            load.Task(
                workload=workload,
                process=p,
                connections=_share(connections, processes, p),
                start_at=start_at,
                warmup_s=0 if total else opts.warmup_s,
                duration_s=None if total else opts.duration_s,
                total=_share(total, processes, p) if total else None,
                target=target,
                params=params,
            )
            for p in range(processes)
        ]
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
        return Sample(
            rate=units / seconds if seconds > 0 else 0.0,
            p50_ms=results.percentile_ms(latencies, 0.50),
            p99_ms=results.percentile_ms(latencies, 0.99),
            count=len(latencies) + sum(errors.values()),
            errors=sum(errors.values()),
            error_kinds=dict(errors),
            seconds=seconds,
            client_cpu=sum(o.cpu_s for o in outcomes) / (wall * (os.cpu_count() or 1)),
            client="python",
            total=total,
            note=note,
        )


def selected(options: Options) -> list[FigureSpec]:
    """The figures --only asks for, in round order; ValueError for a name that matches none."""
    names = [f.name for f in figures.FIGURES]
    unknown = sorted(
        o for o in options.only or () if not any(n == o or n.startswith(o + ".") for n in names)
    )
    if unknown:
        raise ValueError(f"no figure is named or starts with {', '.join(unknown)}")
    return [f for f in figures.FIGURES if options.wants(f.name)]


def _share(total: int, parts: int, index: int) -> int:
    return total // parts + (1 if index < total % parts else 0)


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


SETTLE_S = 15.0  # at most, before each figure


async def _settle(url: str) -> None:
    """Every figure starts from the same state: no checkpoint or autovacuum from an earlier
    figure's writes half-way through it. Measured on the write figures in three runs each:
    without it, single rounds at about half their run's median (66 k against 104 k rows/s);
    with it, none below 0.87 of it."""
    conn = await asyncpg.connect(url)
    try:
        with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CHECKPOINT")
        until = time.monotonic() + SETTLE_S
        while time.monotonic() < until and await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'"
        ):
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


def _machine(url: str) -> dict[str, Any]:
    async def server_facts() -> dict[str, str]:
        conn = await asyncpg.connect(url)
        try:
            return {
                key: await conn.fetchval(f"SHOW {key}")  # fixed names
                for key in ("server_version", "fsync", "synchronous_commit")
            }
        finally:
            await conn.close()

    facts = asyncio.run(server_facts())
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "postgres": facts["server_version"],
        "fsync": facts["fsync"],
        "synchronous_commit": facts["synchronous_commit"],
        "load_before": _load(),  # 1, 5, 15 min load averages: how shared the machine was
    }
