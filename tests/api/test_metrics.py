"""/metrics: what one app counts, and the sum over worker processes (multiprocess mode)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kilowatch.bench import server

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
TIMEOUT_S = 90  # hang guard only; nothing asserts a duration


def parse(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def events(samples: Samples, kind: str, result: str) -> float:
    return samples.get(("kilowatch_ingest_events_total", (("kind", kind), ("result", result))), 0)


def meters(n: int, prefix: str = "M") -> list[dict[str, Any]]:
    ts = (datetime.now(UTC) - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    return [
        {"meterId": f"{prefix}{i}", "kwhConsumedAc": 1.0, "voltage": 230.0, "timestamp": ts}
        for i in range(n)
    ]


def skip_pg15(request: pytest.FixtureRequest) -> None:
    # Process wiring does not depend on the PostgreSQL version: run the servers once, not twice.
    if request.node.callspec.params.get("server_url") == "pg15":
        pytest.skip("multiprocess metrics are checked on one server version")


async def test_metrics_count_events_rejects_statuses_and_flushes(client: Any) -> None:
    ts = (datetime.now(UTC) - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    batch = [
        *meters(1),
        {"vehicleId": "V-1", "soc": 50, "kwhDeliveredDc": 1.0, "batteryTemp": 30, "timestamp": ts},
        {"vehicleId": "V-2", "soc": 101, "kwhDeliveredDc": 1.0, "batteryTemp": 30, "timestamp": ts},
        {**meters(1, "X")[0], "x-client-chosen": 1},
    ]
    assert (await client.post("/v1/ingest", json=batch)).status_code == 201
    assert (await client.post("/v1/ingest", json=batch)).status_code == 200  # all duplicates
    assert (await client.post("/v1/ingest", content=b"{}")).status_code == 415
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = parse(response.text)
    assert events(samples, "meter", "accepted") == events(samples, "vehicle", "accepted") == 1
    assert events(samples, "meter", "duplicate") == events(samples, "vehicle", "duplicate") == 1
    assert samples[("kilowatch_ingest_rejected_total", (("field", "soc"),))] == 2
    assert samples[("kilowatch_ingest_rejected_total", (("field", "unknown"),))] == 2
    for status, n in (("201", 1), ("200", 1), ("415", 1)):
        assert samples[("kilowatch_http_requests_total", (("status", status),))] == n
    assert samples[("kilowatch_flush_batch_events_sum", ())] == 4
    assert (
        samples[("kilowatch_flush_seconds_count", ())]
        == samples[("kilowatch_flush_batch_events_count", ())]
        >= 1
    )
    assert samples[("kilowatch_flush_failures_total", ())] == 0
    assert samples[("kilowatch_ingest_queued_events", ())] == 0


async def test_metrics_is_not_in_the_openapi_schema(client: Any) -> None:
    assert "/metrics" not in (await client.get("/docs/openapi.json")).json()["paths"]


def scrape(address: str) -> Samples:
    # A new connection each time, so a multi-worker server may answer from any worker.
    return parse(httpx.get(f"http://{address}/metrics", timeout=10).text)


def test_two_processes_sharing_a_directory_report_the_sum(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    skip_pg15(request)
    # Two single-worker servers stand for two workers: deterministic about who counted what.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    with server.running(db_url, workers=1) as a, server.running(db_url, workers=1) as b:
        assert httpx.post(f"http://{a}/v1/ingest", json=meters(3, "A")).status_code == 201
        assert httpx.post(f"http://{b}/v1/ingest", json=meters(5, "B")).status_code == 201
        for address in (a, b):
            samples = scrape(address)
            assert events(samples, "meter", "accepted") == 8
            assert samples[("kilowatch_http_requests_total", (("status", "201"),))] == 2
            assert samples[("kilowatch_flush_batch_events_sum", ())] == 8
            assert samples[("kilowatch_ingest_queued_events", ())] == 0


def kilowatch() -> list[str]:
    script = Path(sys.executable).with_name("kilowatch")
    return [str(script)] if script.exists() else [sys.executable, "-m", "kilowatch"]


@contextlib.contextmanager
def serve(db_url: str, tmp: Path, workers: int) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = server.free_port()
    env = {**os.environ, "KILOWATCH_DATABASE_URL": db_url, "TMPDIR": str(tmp)}
    env.pop("DATABASE_URL", None)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc = subprocess.Popen(
        [*kilowatch(), "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            assert proc.poll() is None, f"kilowatch serve exited with {proc.returncode}"
            assert time.monotonic() < deadline, "kilowatch serve was not ready in time"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            time.sleep(0.1)
        yield f"127.0.0.1:{port}", proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail("kilowatch serve ignored SIGTERM")


def test_serve_with_workers_sums_them_in_a_directory_it_removes(
    db_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    skip_pg15(request)
    with serve(db_url, tmp_path, workers=2) as (address, _):
        [directory] = tmp_path.glob("kilowatch-metrics-*")
        for i in range(10):
            response = httpx.post(f"http://{address}/v1/ingest", json=meters(2, f"W{i}-"))
            assert response.status_code == 201
        # Both workers keep value files there (one set per pid); any of them answers the sum.
        pids = {path.stem.rsplit("_", 1)[-1] for path in directory.glob("counter_*.db")}
        assert len(pids) == 2, sorted(p.name for p in directory.iterdir())
        for _ in range(4):
            assert events(scrape(address), "meter", "accepted") == 20
    assert list(tmp_path.iterdir()) == [], "the metrics directory outlived kilowatch serve"


def test_serve_with_one_worker_keeps_metrics_in_memory(
    db_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    skip_pg15(request)
    with serve(db_url, tmp_path, workers=1) as (address, _):
        assert list(tmp_path.glob("kilowatch-metrics-*")) == []
        assert httpx.post(f"http://{address}/v1/ingest", json=meters(2)).status_code == 201
        assert events(scrape(address), "meter", "accepted") == 2


def queued(samples: Samples) -> float:
    return samples[("kilowatch_ingest_queued_events", ())]


def live_gauge_pids(directory: Path) -> set[int]:
    return {int(p.stem.rsplit("_", 1)[1]) for p in directory.glob("gauge_live*.db")}


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for: {what}"
        time.sleep(0.1)


def test_a_dead_workers_queue_depth_leaves_the_sum(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    skip_pg15(request)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    # A worker that died with 7 events queued, never reaching its shutdown.
    script = (
        "from kilowatch import metrics; metrics.Metrics().queue_depth(7); import os; os._exit(0)"
    )
    dead = subprocess.run([sys.executable, "-c", script], check=True)
    assert dead.returncode == 0 and live_gauge_pids(tmp_path)
    started = server.Server(db_url, workers=2)
    try:
        started.wait_ready()
        workers = {
            p.pid
            for p in psutil.Process(started.pid).children()
            if "spawn" in " ".join(p.cmdline())
        }
        assert len(workers) == 2
        # The workers' start-up removed the dead one's live gauges; its counters stay counted.
        wait_until(lambda: live_gauge_pids(tmp_path) == workers, "both workers started")
        for _ in range(4):
            assert queued(scrape(started.address)) == 0

        # A worker killed now is replaced by uvicorn; its replacement forgets it.
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        wait_until(
            lambda: victim not in (pids := live_gauge_pids(tmp_path)) and len(pids) == 2,
            "the killed worker's gauges removed by its replacement",
        )
    finally:
        started.stop()
    # Each worker's own shutdown removed its live gauges.
    assert live_gauge_pids(tmp_path) == set()
    assert list(tmp_path.glob("counter_*.db")), "counters stay: they are cumulative"
