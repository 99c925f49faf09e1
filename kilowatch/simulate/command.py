"""`kilowatch simulate`: a backfill or a live replay with progress, then the report and truth."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.table import Table

from kilowatch.simulate import backfill, live, progress, simulation
from kilowatch.simulate.fleet import Scenario
from kilowatch.simulate.truth import Truth


def run_backfill(
    database_url: str,
    vehicles: int,
    meters: int,
    hours: int,
    seed: int,
    truth_path: Path,
    console: Console,
    scenario: Scenario = "roaming",
) -> Truth:
    started = time.perf_counter()
    with progress.minute_bar(console, "backfill", hours * 60) as report, _refusal(console):
        truth = asyncio.run(
            backfill.backfill(
                database_url, vehicles, meters, hours, seed, scenario=scenario, report=report
            )
        )
    elapsed = time.perf_counter() - started
    rows = truth.stats["rows"]
    console.print(
        f"wrote {rows:,} readings in {elapsed:.1f} s ({rows / elapsed:,.0f} rows/s), "
        f"{truth.stats['deliveries'] - rows:,} retried copies deduplicated, "
        f"{truth.stats['assignments']:,} assignments"
    )
    _finish(truth, truth_path, console)
    return truth


def run_live(
    base_url: str,
    vehicles: int,
    meters: int,
    hours: int,
    seed: int,
    speed: float,
    truth_path: Path,
    console: Console,
    scenario: Scenario = "roaming",
) -> Truth:
    started = time.perf_counter()
    with progress.minute_bar(console, "live", hours * 60) as report, _refusal(console):
        fleet = simulation.config(vehicles, meters, hours, seed, scenario=scenario)
        truth = asyncio.run(live.replay(base_url, fleet, speed=speed, report=report))
    elapsed = time.perf_counter() - started
    stats = truth.stats
    console.print(
        f"sent {stats['sent']:,} events in {elapsed:.1f} s "
        f"({stats['sent'] / elapsed:,.0f}/s, {stats['requests']:,} requests): "
        f"{stats['accepted']:,} accepted, {stats['duplicates']:,} duplicates, "
        f"{stats['rejected']:,} rejected; {stats['assignments']:,} assignments"
    )
    _finish(truth, truth_path, console)
    return truth


@contextlib.contextmanager
def _refusal(console: Console) -> Iterator[None]:
    """A refused write (occupied window, client error from the server) exits 1 with its reason."""
    try:
        yield
    except (backfill.WindowOccupied, live.ReplayFailed) as exc:
        console.print(f"[red]simulation refused:[/] {exc.__doc__}\n{exc}")
        raise SystemExit(1) from None


def _finish(truth: Truth, path: Path, console: Console) -> None:
    truth.write(path)
    charged = [v for v in truth.vehicles if v.physical_dc_kwh > 0]
    table = Table(title=f"ground truth -> {path}")
    columns = (
        "vehicles",
        "charged",
        "faulty",
        "shared charger",
        "rule < 0.85",
        "faulty, rule ≥ 0.85",
    )
    for column in columns:
        table.add_column(column, justify="right")
    flagged = {v.vehicle_id for v in charged if (v.rule.as_json()["efficiency"] or 1.0) < 0.85}
    table.add_row(
        str(len(truth.vehicles)),
        str(len(charged)),
        str(sum(v.faulty for v in truth.vehicles)),
        str(sum(v.shared_charger for v in truth.vehicles)),
        str(len(flagged)),
        str(sum(v.faulty and v.vehicle_id not in flagged for v in charged)),
    )
    console.print(table)
