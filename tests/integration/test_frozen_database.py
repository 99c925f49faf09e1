"""A frozen database, end to end through a real server: every route answers 503 + Retry-After
within a bound, recovers by itself, and SIGTERM still ends the server promptly.

"Frozen" is tests/dbproxy.py's `stall()`: links stay open and nothing answers, as with a hung
server or a lost network; only the gateway's deadlines stand between a request and a hang.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.dbproxy import DatabaseProxy
from tests.servers import Http, serving

# DB_TIMEOUT_S and FLUSH_TIMEOUT_S are 1.5 s; this only guards against a hang.
BOUND_S = 5.0
HANG_S = 60.0
_seq = itertools.count()


def stamp() -> str:
    # Distinct instants, a minute ago: every ingest is new, so a stored one answers 201.
    at = datetime.now(UTC) - timedelta(minutes=1) + timedelta(microseconds=next(_seq))
    return at.isoformat().replace("+00:00", "Z")


def meter() -> dict[str, Any]:
    return {"meterId": "fz-m1", "kwhConsumedAc": 1.0, "voltage": 230.0, "timestamp": stamp()}


def vehicle() -> dict[str, Any]:
    return {
        "vehicleId": "fz-v1",
        "soc": 50,
        "kwhDeliveredDc": 0.9,
        "batteryTemp": 25.0,
        "meterId": "fz-m1",
        "timestamp": stamp(),
    }


def assignment(hours_ago: int) -> dict[str, Any]:
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start -= timedelta(hours=hours_ago)
    end = start + timedelta(minutes=30)
    return {
        "vehicleId": "fz-v1",
        "meterId": "fz-m1",
        "from": start.isoformat().replace("+00:00", "Z"),
        "to": end.isoformat().replace("+00:00", "Z"),
    }


Route = tuple[str, str, Callable[[], Any], int]


def routes(doomed: list[int]) -> dict[str, Route]:
    """name: (method, path, body factory, status once the database answers)."""
    return {
        "ingest single": ("POST", "/v1/ingest", vehicle, 201),
        "ingest batch": ("POST", "/v1/ingest", lambda: [meter(), vehicle(), meter()], 201),
        "vehicle status": ("GET", "/v1/vehicles/fz-v1/status", lambda: b"", 200),
        "meter status": ("GET", "/v1/meters/fz-m1/status", lambda: b"", 200),
        "vehicle listing": ("GET", "/v1/vehicles/status?meterId=fz-m1", lambda: b"", 200),
        "meter listing": ("GET", "/v1/meters/status?active=true", lambda: b"", 200),
        "assignment create": (
            "POST",
            "/v1/assignments",
            lambda: assignment(10 + next(_seq) % 1000),
            201,
        ),
        "assignment list": ("GET", "/v1/assignments?vehicleId=fz-v1", lambda: b"", 200),
        "assignment delete": (
            "DELETE",
            f"/v1/assignments/{doomed.pop() if doomed else 999_999}",
            lambda: b"",
            204,
        ),
        "analytics": ("GET", "/v1/analytics/performance/fz-v1?granularity=hour", lambda: b"", 200),
        # Fleet-wide reads have a longer deadline (ANALYTICS_TIMEOUT_S), not their statements.
        "fleet summary": ("GET", "/v1/analytics/fleet", lambda: b"", 200),
        "fleet listing": ("GET", "/v1/analytics/vehicles?sort=estimate", lambda: b"", 200),
        "readyz": ("GET", "/readyz", lambda: b"", 200),
    }


async def timed(address: str, route: Route) -> tuple[int, str | None, float]:
    method, path, body, _ = route
    http = Http(address)  # its own connection: nothing queues behind another route
    started = time.monotonic()
    try:
        async with asyncio.timeout(HANG_S):
            status, headers, _ = await http.request(method, path, body())
    finally:
        http.close()
    return status, headers.get("retry-after"), time.monotonic() - started


async def seed(address: str) -> list[int]:
    """Data every read finds; returns ids of assignments to delete (while frozen, then after)."""
    http = Http(address)
    try:
        assert (await http.request("POST", "/v1/ingest", [meter(), vehicle()]))[0] == 201
        ids = []
        for hours_ago in (3, 5):
            status, _, body = await http.request("POST", "/v1/assignments", assignment(hours_ago))
            assert status == 201, body
            ids.append(int(__import__("json").loads(body)["id"]))
        return ids
    finally:
        http.close()


async def test_every_route_answers_503_in_time_while_frozen_and_recovers(db_url: str) -> None:
    async with DatabaseProxy(db_url) as proxy, serving(proxy.url) as live:
        doomed = await seed(live.address)
        proxy.stall()
        frozen = routes(doomed)
        answers = dict(
            zip(
                frozen,
                await asyncio.gather(*(timed(live.address, r) for r in frozen.values())),
                strict=True,
            )
        )
        proxy.start()
        recovered: dict[str, int] = {}
        async with asyncio.timeout(HANG_S):
            for name, route in routes(doomed).items():
                while (status := (await timed(live.address, route))[0]) == 503:
                    await asyncio.sleep(0.1)
                recovered[name] = status

    worst = max(elapsed for _, _, elapsed in answers.values())
    # Reported, not asserted (run with -s to see it).
    print(
        f"frozen database: slowest 503 took {worst:.2f} s;",
        {n: round(a[2], 2) for n, a in answers.items()},
    )
    for name, (status, retry_after, elapsed) in answers.items():
        assert status == 503, f"{name}: {status}"
        assert retry_after is not None and retry_after.isdigit(), name
        assert elapsed < BOUND_S, f"{name} took {elapsed:.1f} s"
    assert recovered == {name: route[3] for name, route in routes([1]).items()}


@pytest.mark.parametrize("in_flight", [0, 8])
async def test_sigterm_while_frozen_exits_promptly(db_url: str, in_flight: int) -> None:
    async with DatabaseProxy(db_url) as proxy, serving(proxy.url) as live:
        await seed(live.address)
        proxy.stall()
        pending = [
            asyncio.create_task(timed(live.address, route))
            for route in itertools.islice(itertools.cycle(routes([]).values()), in_flight)
        ]
        await asyncio.sleep(0.2)  # let them reach the database
        started = time.monotonic()
        status = await asyncio.to_thread(live.stop, HANG_S)
        elapsed = time.monotonic() - started
        answers = await asyncio.gather(*pending, return_exceptions=True)
    print(f"SIGTERM while frozen ({in_flight} in flight): exited in {elapsed:.2f} s")
    # uvicorn re-raises SIGTERM once it has shut down; -SIGKILL would mean stop() gave up.
    assert status in (0, -signal.SIGTERM), f"exit status {status}"
    assert elapsed < HANG_S
    # Requests in flight got their 503, or the connection closed as the server went away.
    assert all(
        isinstance(a, (ConnectionError, asyncio.IncompleteReadError)) or a[0] == 503
        for a in answers
    )
