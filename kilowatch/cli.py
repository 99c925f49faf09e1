"""The `kilowatch` command line: serve, migrate, simulate, bench."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

import typer
from rich.console import Console

from kilowatch import logs
from kilowatch.db import embedded, gateway, partitions
from kilowatch.db import migrate as migrations
from kilowatch.settings import Settings

if TYPE_CHECKING:
    import uvicorn

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
HTTP_PROTOCOL = "kilowatch.http:BoundedProtocol"
console = Console(stderr=True)


def _exit_on_signal(signum: int, _frame: FrameType | None) -> None:
    # Raising turns SIGTERM into an unwinding exit, so the `finally` that stops the embedded
    # database runs: during start-up, during migrations, and after uvicorn re-raises the signal.
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def database(settings: Settings) -> Iterator[Settings]:
    """Yields settings with a database URL; starts and stops the embedded server if needed."""
    if settings.database_url:
        yield settings
        return
    previous = {sig: signal.signal(sig, _exit_on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        # Started here unless another command on the same data dir runs it (then shared, and
        # left running for it); stopped on the way out by whichever user leaves last.
        with contextlib.ExitStack() as stack:
            with console.status(f"starting embedded PostgreSQL in {settings.data_dir}"):
                url = stack.enter_context(embedded.used(settings.data_dir))
            os.environ["KILOWATCH_DATABASE_URL"] = url
            yield settings.model_copy(update={"database_url": url})
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


async def prepare(settings: Settings) -> list[int]:
    """Applies migrations and creates the accepted range's partitions.

    Retention is left to the app's maintenance loop: a drop waits for old reads to finish,
    which must not hold up a start-up.
    """
    conn = await gateway.connect(settings)
    try:
        applied = await migrations.migrate(conn)
        # Partition steps wait at most this long for a lock, then retry (partitions.maintain).
        await conn.execute("SET lock_timeout = '1s'")
        await partitions.maintain(conn, settings, retention=False)
        return applied
    finally:
        await conn.close()


def _settings(**env: object) -> Settings:
    for key, value in env.items():
        if value is not None:
            os.environ[f"KILOWATCH_{key.upper()}"] = str(value)
    return Settings()


@contextlib.contextmanager
def _metrics_dir(workers: int) -> Iterator[None]:
    """With several workers, a fresh PROMETHEUS_MULTIPROC_DIR for this run, removed at exit.

    Workers are spawned, so they import prometheus_client with it set and write their values to
    files there; /metrics in any worker sums them. This process never imports prometheus_client.
    """
    if workers == 1 or "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        yield  # one process: in-memory values; a directory set by the user is theirs to manage
        return
    # A signal before uvicorn installs its handlers must still unwind through the `finally`.
    previous = {sig: signal.signal(sig, _exit_on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    path = tempfile.mkdtemp(prefix="kilowatch-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    try:
        yield
    finally:
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]
        shutil.rmtree(path, ignore_errors=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes")] = 1,
    data_dir: Annotated[Path | None, typer.Option(help="Embedded database directory")] = None,
) -> None:
    """Run the API (on the embedded PostgreSQL unless DATABASE_URL is set)."""
    import uvicorn

    settings = _settings(host=host, port=port, workers=workers, data_dir=data_dir)
    with database(settings) as settings:
        applied = asyncio.run(prepare(settings))
        console.print(f"[green]database ready[/] (migrations applied now: {applied or 'none'})")
        options: dict[str, Any] = {
            "factory": True,
            "host": host,
            "port": port,
            "workers": workers,
            "log_level": "warning",
            "log_config": logs.config(),  # uvicorn's own lines as JSON too
            "access_log": False,
            # Header and body timeouts, the request cap and keep-alive, from the settings (an
            # import string: each worker process imports it).
            "http": HTTP_PROTOCOL,
        }
        with _metrics_dir(workers):
            if workers > 1:  # the supervisor binds, then handles the signals itself at once
                uvicorn.run("kilowatch.app:create_app", **options)
            else:
                _serve_one(uvicorn.Config("kilowatch.app:create_app", **options))


_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def _serve_one(config: uvicorn.Config) -> None:
    """uvicorn.run for one process, with SIGTERM and SIGINT held until uvicorn handles them.

    Raised as SystemExit while uvicorn imports the app (`load_app`, before it handles signals),
    a signal could be lost: caught and dropped by the code it interrupted (seen: the server then
    ran on, SIGTERM ignored), or turned into another error. Held (blocked), it arrives once
    uvicorn's own handler is in place, which shuts down gracefully and raises it again on the
    way out.
    """
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            with super().capture_signals():
                signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
                yield

    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        config.load_app()
        server = Server(config)
        with contextlib.suppress(KeyboardInterrupt):  # as uvicorn.run: SIGINT re-raised at exit
            server.run()
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
    if not server.started:
        raise SystemExit(3)  # uvicorn's STARTUP_FAILURE: the port taken, the app failing


@app.command()
def migrate(
    data_dir: Annotated[Path | None, typer.Option(help="Embedded database directory")] = None,
) -> None:
    """Apply pending migrations and create partitions, then exit."""
    settings = _settings(data_dir=data_dir)
    with database(settings) as settings:
        applied = asyncio.run(prepare(settings))
    console.print(f"applied migrations: {applied or 'none (up to date)'}")


@app.command()
def simulate(
    truth: Annotated[Path, typer.Option(help="Where to write the ground-truth JSON")],
    vehicles: Annotated[int, typer.Option(min=0, help="Vehicles in the fleet")] = 100,
    meters: Annotated[int, typer.Option(min=1, help="Meters (chargers), some dual-port")] = 80,
    hours: Annotated[int, typer.Option(min=1, help="Simulate [now - hours, now)")] = 24,
    seed: Annotated[int, typer.Option(help="Random seed: same seed and window, same events")] = 1,
    live: Annotated[str | None, typer.Option(help="Replay over HTTP to this base URL")] = None,
    speed: Annotated[
        float,
        typer.Option(
            min=0, help="--live: simulated minutes per real second (0: as fast as possible)"
        ),
    ] = 0.0,
    backfill: Annotated[bool, typer.Option(help="COPY straight into PostgreSQL")] = False,
    scenario: Annotated[
        str,
        typer.Option(
            help="roaming (vehicles charge where they are) or depot (side by side "
            "overnight on multi-port meters)"
        ),
    ] = "roaming",
    data_dir: Annotated[Path | None, typer.Option(help="Embedded database directory")] = None,
) -> None:
    """Simulate a fleet over [now - H h, now): replay it (--live URL) or COPY it (--backfill)."""
    from kilowatch.simulate import command, fleet

    if (live is None) == (not backfill):
        raise typer.BadParameter("give exactly one of --live URL and --backfill")
    if scenario not in fleet.SCENARIOS:
        raise typer.BadParameter(f"one of {', '.join(fleet.SCENARIOS)}", param_hint="--scenario")
    settings = _settings(data_dir=data_dir)
    if hours > settings.max_event_age_days * 24:
        raise typer.BadParameter(
            f"at most {settings.max_event_age_days * 24} hours (older events are refused)",
            param_hint="--hours",
        )
    if live is not None:
        command.run_live(
            live, vehicles, meters, hours, seed, speed, truth, console, scenario=scenario
        )
        return
    with database(settings) as settings:
        asyncio.run(prepare(settings))
        assert settings.database_url
        command.run_backfill(
            settings.database_url, vehicles, meters, hours, seed, truth, console, scenario=scenario
        )


@app.command()
def bench(
    duration: Annotated[
        float, typer.Option(min=0.1, help="Measured seconds per figure and round")
    ] = 5.0,
    warmup: Annotated[float, typer.Option(min=0, help="Unmeasured seconds before each")] = 1.0,
    rounds: Annotated[
        int, typer.Option(min=1, help="Rounds; each measures every figure once, interleaved")
    ] = 5,
    connections: Annotated[
        int, typer.Option(min=1, help="Connections for single events, reads")
    ] = 64,
    processes: Annotated[int, typer.Option(min=1, help="Client processes (wrk threads)")] = 2,
    client: Annotated[
        str,
        typer.Option(help="Single-event and status figures: auto (wrk if on PATH), wrk, python"),
    ] = "auto",
    vehicles: Annotated[int, typer.Option(min=1, help="Analytics data sets: vehicles")] = 500,
    meters: Annotated[int, typer.Option(min=1, help="Analytics data sets: meters")] = 400,
    fleet_vehicles: Annotated[
        int, typer.Option(min=1, help="Fleet-wide figures' data set: vehicles")
    ] = 10_000,
    fleet_meters: Annotated[
        int, typer.Option(min=1, help="Fleet-wide figures' data set: meters")
    ] = 8_000,
    only: Annotated[
        str | None,
        typer.Option(help="Comma-separated figures or prefixes (e.g. ingest,http.no_db)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
    markdown: Annotated[bool, typer.Option(help="Print the report as Markdown tables")] = False,
    prefix: Annotated[
        str, typer.Option(help="Name prefix of the databases it creates and caches")
    ] = "kwbench",
    data_dir: Annotated[Path | None, typer.Option(help="Embedded database directory")] = None,
) -> None:
    """Measure SPEC §8's figures in interleaved rounds: own server (2 workers), separate clients."""
    from kilowatch.bench import output, runner, wrk

    if client not in ("auto", "wrk", "python"):
        raise typer.BadParameter("auto, wrk or python", param_hint="--client")
    if client == "wrk" and wrk.find() is None:
        raise typer.BadParameter(
            "wrk is not on PATH (Debian: apt-get install wrk)", param_hint="--client"
        )
    options = runner.Options(
        duration_s=duration,
        warmup_s=warmup,
        rounds=rounds,
        connections=connections,
        processes=processes,
        client=cast(Literal["auto", "wrk", "python"], client),
        vehicles=vehicles,
        meters=meters,
        fleet_vehicles=fleet_vehicles,
        fleet_meters=fleet_meters,
        only=frozenset(only.split(",")) if only else None,
        prefix=prefix,
    )
    try:
        runner.selected(options)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--only") from exc
    settings = _settings(data_dir=data_dir)
    if not settings.database_url:
        # Its own embedded server: cached data sets live there, and a running `serve` is untouched.
        settings = settings.model_copy(update={"data_dir": settings.data_dir / "bench"})
    with database(settings) as settings:
        assert settings.database_url
        runs = runner.Bench(settings.database_url, options, console)
        try:
            report = runs.run()
        finally:
            runs.close()
    if as_json:
        print(output.as_json(report))
    elif markdown:
        print(output.as_markdown(report))
    else:
        # Piped output (a file, CI logs) is not cut to 80 columns.
        output.print_table(report, Console(width=None if sys.stdout.isatty() else 200))


@app.command("bench-compare")
def bench_compare(
    reports: Annotated[
        list[Path], typer.Argument(help="Reports of `kilowatch bench --json`, one per run")
    ],
) -> None:
    """Do the ratios hold from run to run? Each run's spread side by side, as Markdown."""
    from kilowatch.bench import compare

    if len(reports) < 2:
        raise typer.BadParameter("two reports or more", param_hint="REPORTS")
    try:
        loaded = [compare.load(path) for path in reports]
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="REPORTS") from exc
    print(compare.as_markdown(loaded))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
