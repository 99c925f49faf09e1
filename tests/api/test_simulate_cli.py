"""`kilowatch simulate` from the command line: backfill writes rows and the truth file."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
from rich.console import Console

from kilowatch.simulate import command


def kilowatch(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KILOWATCH_DATABASE_URL": database_url, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "kilowatch", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


async def test_simulate_backfill_writes_rows_and_truth(
    db_url: str, tmp_path: Path, conn: asyncpg.Connection
) -> None:
    truth_path = tmp_path / "truth.json"
    result = kilowatch(
        "simulate",
        "--vehicles",
        "6",
        "--meters",
        "4",
        "--hours",
        "1",
        "--seed",
        "3",
        "--truth",
        str(truth_path),
        "--backfill",
        database_url=db_url,
    )
    assert result.returncode == 0, result.stderr
    truth = json.loads(truth_path.read_text())
    assert set(truth) == {"from", "to", "vehicles"}
    assert [v["vehicleId"] for v in truth["vehicles"]] == [f"veh-{i:05d}" for i in range(1, 7)]
    assert set(truth["vehicles"][0]) == {
        "vehicleId",
        "trueEfficiency",
        "faulty",
        "sharedCharger",
        "physical",
        "rule",
    }
    assert set(truth["vehicles"][0]["rule"]) == {
        "totalAcKwh",
        "totalDcKwh",
        "attachedDcKwh",
        "coverage",
        "efficiency",
    }
    assert await conn.fetchval("SELECT count(*) FROM vehicle_readings") == 6 * 60
    assert await conn.fetchval("SELECT count(*) FROM meter_readings") == 4 * 60


def test_simulate_needs_exactly_one_mode(tmp_path: Path) -> None:
    truth = str(tmp_path / "t.json")
    for mode in ([], ["--backfill", "--live", "http://127.0.0.1:9"]):
        result = kilowatch("simulate", "--truth", truth, *mode, database_url="postgresql://x/y")
        assert result.returncode == 2
        assert "exactly one of --live URL and --backfill" in result.stderr


def test_simulate_command_backfills_the_depot_scenario(db_url: str, tmp_path: Path) -> None:
    # What `kilowatch simulate --scenario depot` runs (the option belongs to kilowatch/cli.py).
    output = io.StringIO()
    truth_path = tmp_path / "depot.json"
    truth = command.run_backfill(
        db_url, 6, 3, 2, 1, truth_path, Console(file=output, width=200), scenario="depot"
    )
    assert json.loads(truth_path.read_text()) == truth.as_json()
    assert truth.stats["rows"] == (6 + 3) * 2 * 60
    assert "faulty, rule ≥ 0.85" in output.getvalue()
