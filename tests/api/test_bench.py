"""`kilowatch bench` runs every figure end to end (tiny settings: behaviour, not timings)."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg

FIGURES = {"http.no_db", "ingest.per_event_txn", "ingest.group_commit", "ingest.burst_20k",
           "ingest.burst_20k.batch100", "ingest.batch", "sql.dual_write", "sql.dual_write.staged",
           "copy.raw", "analytics.vehicle.1d", "analytics.vehicle.7d", "status.lookup",
           "sql.vehicle_floor"}


async def _drop_databases(server_url: str, prefix: str) -> list[str]:
    admin = await asyncpg.connect(server_url)
    try:
        names = [r[0] for r in await admin.fetch(
            "SELECT datname FROM pg_database WHERE starts_with(datname, $1)", prefix)]
        for name in names:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')  # names from the catalog
        return names
    finally:
        await admin.close()


def test_bench_measures_every_figure_with_no_errors(server_url: str, tmp_path: Path) -> None:
    prefix = f"kwb{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "DATABASE_URL": server_url, "KILOWATCH_DATA_DIR": str(tmp_path)}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "kilowatch", "bench", "--json", "--duration", "0.5",
             "--warmup", "0", "--connections", "4", "--processes", "1", "--vehicles", "6",
             "--meters", "4", "--prefix", prefix],
            env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        report = json.loads(done.stdout)
    finally:
        created = asyncio.run(_drop_databases(server_url, prefix))
    assert {f["name"] for f in report["figures"]} == FIGURES
    for figure in report["figures"]:
        assert figure["count"] > 0 and figure["errors"] == 0, figure
    burst = next(f for f in report["figures"] if f["name"] == "ingest.burst_20k")
    assert burst["count"] == 20_000  # every event of the burst answered 2xx
    assert {r["name"] for r in report["ratios"]} >= {"group_commit / per_event_txn",
                                                     "ingest.batch / sql.dual_write"}
    assert report["machine"]["fsync"] == "on"
    # the data sets were made for this run: ingest, 1 day and 7 days
    assert len(created) == 3
