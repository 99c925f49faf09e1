"""JSON logs of a real server: an outage is logged once at its start and once at its end."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from kilowatch.app import create_app
from kilowatch.settings import Settings
from tests.dbproxy import DatabaseProxy
from tests.servers import Http, serving

OUTAGE_S = 3.0  # shorter than the gateway's 10 s between "still unavailable" lines
CLIENTS = 8
HANG_S = 60  # hang guard only


def skip_pg15(request: pytest.FixtureRequest) -> None:
    # The proxy plays the outage; the PostgreSQL version behind it does not matter.
    if request.node.callspec.params.get("server_url") == "pg15":
        pytest.skip("log lines are checked on one server version")


def event(n: int) -> dict[str, Any]:
    at = datetime.now(UTC) - timedelta(minutes=1)
    stamp = (at + timedelta(microseconds=n)).isoformat().replace("+00:00", "Z")
    return {"meterId": "log-m1", "kwhConsumedAc": 1.0, "voltage": 230.0, "timestamp": stamp}


def read_log(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text().splitlines()
    docs = []
    for line in lines:
        doc = json.loads(line)  # every line is one JSON object
        assert isinstance(doc, dict) and {"ts", "level", "logger", "msg"} <= set(doc), line
        docs.append(doc)
    return docs


@pytest.mark.parametrize("outage", ["hung", "stopped"])
async def test_an_outage_under_load_is_logged_once_at_start_and_once_at_recovery(
    db_url: str, tmp_path: Path, request: pytest.FixtureRequest, outage: str
) -> None:
    skip_pg15(request)
    log = tmp_path / "server.log"
    statuses: list[int] = []
    # No rollup refresher: its next pass could meet the outage before the probe does.
    async with (
        DatabaseProxy(db_url) as proxy,
        serving(proxy.url, log=log, rollup_refresh=False) as live,
    ):
        probe = Http(live.address)
        assert (await probe.request("POST", "/v1/ingest", event(0)))[0] == 201
        proxy.stall() if outage == "hung" else proxy.stop()
        # The first request to meet the outage is this read: its id is on the first line.
        status, headers, _ = await probe.request(
            "GET", "/v1/meters/log-m1/status", headers={"X-Request-ID": "probe-outage-1"}
        )
        assert status == 503 and headers["x-request-id"] == "probe-outage-1"

        until = time.monotonic() + OUTAGE_S

        async def client(index: int) -> None:
            http = Http(live.address)
            n = 0
            try:
                while time.monotonic() < until:
                    n += 1
                    statuses.append(
                        (await http.request("POST", "/v1/ingest", event(index * 100_000 + n)))[0]
                    )
            finally:
                http.close()

        async with asyncio.timeout(HANG_S):
            await asyncio.gather(*(client(i) for i in range(1, CLIENTS + 1)))
            # Nothing in flight now: the next answer is the recovery.
            proxy.start()
            while (await probe.request("POST", "/v1/ingest", event(1)))[0] != 201:
                await asyncio.sleep(0.05)
        probe.close()
    assert statuses and set(statuses) == {503}

    docs = read_log(log)  # the server has exited: its writer flushed every line
    messages = [d["msg"] for d in docs]
    assert messages.count("database unavailable") == 1, messages
    assert "database still unavailable" not in messages
    down = docs[messages.index("database unavailable")]
    assert down["level"] == "ERROR" and down["role"] == "read" and down["cause"]
    assert down["request_id"] == "probe-outage-1"
    assert messages.count("database available again") == 1, messages
    up = docs[messages.index("database available again")]
    assert messages.index("database available again") > messages.index("database unavailable")
    # Counted per database failure (a flush fails for all its requests at once).
    assert up["failures"] >= 2 and up["seconds"] >= OUTAGE_S


async def test_every_response_carries_a_request_id() -> None:
    app = create_app(Settings(database_url="postgresql://postgres@127.0.0.1:1/x"))
    async with AsyncTestClient(app=app) as client:
        fresh = await client.get("/healthz")
        kept = await client.get("/healthz", headers={"X-Request-ID": "abc-1"})
        replaced = await client.get("/healthz", headers={"X-Request-ID": "no spaces please"})
    assert len(fresh.headers["x-request-id"]) == 16
    assert kept.headers["x-request-id"] == "abc-1"
    assert replaced.headers["x-request-id"] not in (
        "no spaces please",
        fresh.headers["x-request-id"],
    )
