"""The database stops and comes back under ingest load: 503s, no 500, every acknowledged event stored.

The app runs under uvicorn in its own process, reaching PostgreSQL through tests/dbproxy.py, which
plays the stopped or hung server. Many keep-alive clients post in a loop and record what was
acknowledged.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from tests.dbproxy import DatabaseProxy
from tests.servers import Http, serving

CLIENTS = 24
# A hung database costs a request at most the flush in flight (flush_timeout_s, 2) and its own
# reconnect (connect_timeout_s, 1); a stopped one, next to nothing. A hang guard, not a timing test.
HANG_S = 5.0
OUTAGE_S = 3.0  # how long the database stays down
DEADLINE_S = 60.0  # for waiting on the load to reach a phase; never reached when things work
Key = tuple[str, str, datetime]


@dataclass
class Answer:
    keys: list[Key]
    sent: float
    done: float
    status: int  # 0: no answer within DEADLINE_S
    retry_after: str | None


class Load:
    """CLIENTS concurrent clients, each posting a meter and a vehicle event per request."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.answers: list[Answer] = []
        self.base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
        self.stopping = False

    def body(self, client: int, n: int) -> tuple[bytes, list[Key]]:
        at = self.base + timedelta(milliseconds=n)
        stamp = at.isoformat().replace("+00:00", "Z")
        meter, vehicle = f"down-m{client}", f"down-v{client}"
        events = [
            {"meterId": meter, "kwhConsumedAc": 1.0, "voltage": 230.0, "timestamp": stamp},
            {
                "vehicleId": vehicle,
                "soc": 50,
                "kwhDeliveredDc": 0.9,
                "batteryTemp": 25.0,
                "timestamp": stamp,
            },
        ]
        return json.dumps(events).encode(), [("meter", meter, at), ("vehicle", vehicle, at)]

    async def client(self, index: int) -> None:
        http = Http(self.address)
        try:
            for n in itertools.count():
                if self.stopping:
                    return
                body, keys = self.body(index, n)
                sent = time.monotonic()
                try:
                    async with asyncio.timeout(DEADLINE_S):
                        status, headers, _ = await http.request("POST", "/v1/ingest", body)
                except TimeoutError:
                    status, headers = 0, {}  # the client starts over on a new connection
                self.answers.append(
                    Answer(keys, sent, time.monotonic(), status, headers.get("retry-after"))
                )
        finally:
            http.close()

    async def wait_for(self, condition: Callable[[list[Answer]], bool]) -> None:
        async with asyncio.timeout(DEADLINE_S):
            while not condition(self.answers):
                await asyncio.sleep(0.05)


async def stored_keys(conn: asyncpg.Connection) -> set[Key]:
    meters = await conn.fetch("SELECT meter_id, recorded_at FROM meter_readings")
    vehicles = await conn.fetch("SELECT vehicle_id, recorded_at FROM vehicle_readings")
    return {("meter", r[0], r[1]) for r in meters} | {("vehicle", r[0], r[1]) for r in vehicles}


def acknowledged(answer: Answer) -> bool:
    return 200 <= answer.status < 300


# stopped: links cut, connections refused (a stopped or restarting server); hung: nothing answers
# (a frozen server, a lost network), caught only by the flush timeout and the connect timeout.
@pytest.mark.parametrize("outage", ["stopped", "hung"])
async def test_database_outage_under_load_answers_503_then_recovers_keeping_every_ack(
    db_url: str, conn: asyncpg.Connection, outage: str
) -> None:
    async with DatabaseProxy(db_url) as proxy, serving(proxy.url) as live:
        address = live.address
        load = Load(address)
        clients = asyncio.gather(*(load.client(i) for i in range(CLIENTS)))
        probe = Http(address)
        try:
            await load.wait_for(lambda answers: sum(map(acknowledged, answers)) >= CLIENTS)

            if outage == "stopped":
                proxy.stop()
            else:
                proxy.stall()
            down_at = time.monotonic()
            await asyncio.sleep(OUTAGE_S)
            await load.wait_for(
                lambda answers: sum(a.sent > down_at for a in answers) >= 2 * CLIENTS
            )
            ready_while_down = await probe.request("GET", "/readyz")

            proxy.start()
            up_at = time.monotonic()
            await load.wait_for(
                lambda answers: (
                    sum(acknowledged(a) for a in answers if a.sent > up_at) >= 2 * CLIENTS
                )
            )
            ready_after = await probe.request("GET", "/readyz")
        finally:
            load.stopping = True
            await clients
            probe.close()

    answers = load.answers
    assert {a.status for a in answers} <= {201, 503}, sorted({a.status for a in answers})
    assert all(a.retry_after and a.retry_after.isdigit() for a in answers if a.status == 503)
    slowest = max(a.done - a.sent for a in answers)
    assert slowest < HANG_S, f"a request took {slowest:.1f} s"

    while_down = [a.status for a in answers if down_at < a.sent and a.done < up_at]
    assert while_down and set(while_down) == {503}
    assert ready_while_down[0] == 503 and ready_while_down[1]["retry-after"] == "1"

    first_ack = min(a.done for a in answers if a.sent > up_at and acknowledged(a))
    assert all(acknowledged(a) for a in answers if a.sent > first_ack), "503s after recovery"
    assert ready_after[0] == 200

    acked = {key for a in answers if acknowledged(a) for key in a.keys}
    missing = acked - await stored_keys(conn)
    assert not missing, f"{len(missing)} acknowledged events are not stored, e.g. {min(missing)}"
