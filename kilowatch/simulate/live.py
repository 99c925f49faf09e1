"""`simulate --live`: the simulated window replayed over HTTP, in time order, faults included."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import httpx
import msgspec

from kilowatch.simulate.events import Assignment, Event, assignment_json, to_json
from kilowatch.simulate.fleet import FleetConfig
from kilowatch.simulate.simulation import Simulation
from kilowatch.simulate.truth import Truth

ATTEMPTS = 8


class ReplayFailed(Exception):
    """The server refused part of the replay with a client error."""


class _Sender:
    """Posts batches with bounded concurrency; retries 503 (after Retry-After) and dropped links."""

    def __init__(self, client: httpx.AsyncClient, concurrency: int) -> None:
        self.client = client
        self.slots = asyncio.Semaphore(concurrency)
        self.stats: dict[str, int] = defaultdict(int)

    async def post(self, path: str, payload: Any, expect: tuple[int, ...]) -> dict[str, Any]:
        body = msgspec.json.encode(payload)
        async with self.slots:
            for attempt in range(ATTEMPTS):
                self.stats["requests"] += 1
                try:
                    response = await self.client.post(
                        path, content=body, headers={"content-type": "application/json"}
                    )
                except httpx.TransportError:
                    self.stats["retries"] += 1
                    await asyncio.sleep(min(0.1 * 2**attempt, 5.0))
                    continue
                if response.status_code == 503 and attempt + 1 < ATTEMPTS:
                    self.stats["retries"] += 1
                    await asyncio.sleep(float(response.headers.get("retry-after", "1")))
                    continue
                if response.status_code not in expect:
                    raise ReplayFailed(f"POST {path} -> {response.status_code}: {response.text}")
                result: dict[str, Any] = response.json()
                return result
        raise ReplayFailed(f"POST {path}: no answer after {ATTEMPTS} attempts")

    async def ingest(self, events: list[Event], batch_size: int) -> None:
        batches = [events[i : i + batch_size] for i in range(0, len(events), batch_size)]
        results = await asyncio.gather(
            *(
                self.post("/v1/ingest", [to_json(event) for event in batch], (200, 201))
                for batch in batches
            )
        )
        for result in results:
            self.stats["accepted"] += result["accepted"]
            self.stats["duplicates"] += result["duplicates"]
            self.stats["rejected"] += len(result["rejected"])
        self.stats["sent"] += len(events)

    async def assign(self, assignments: list[Assignment]) -> None:
        await asyncio.gather(
            *(self.post("/v1/assignments", assignment_json(a), (201,)) for a in assignments)
        )
        self.stats["assignments"] += len(assignments)


async def replay(
    base_url: str,
    fleet: FleetConfig,
    *,
    speed: float = 0.0,
    concurrency: int = 4,
    batch_size: int = 1_000,
    report: Callable[[int, int], None] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Truth:
    """Sends the fleet's window minute by minute; returns the ground truth.

    `speed` is simulated minutes per real second (0: as fast as the server answers). Each minute's
    heartbeats go out in timestamp order, a retried copy beside or a minute after its original,
    a late one 2–10 minutes after its minute; a minute's batches are sent concurrently and all
    acknowledged before the next minute. An operator's assignment is posted when its session
    ends (back-dated), and open sessions' assignments at the end, open-ended.
    """
    simulation = Simulation(fleet)
    delayed: dict[int, list[Event]] = defaultdict(list)
    open_sessions: dict[int, Assignment] = {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base_url, limits=limits, timeout=60.0, transport=transport
    ) as client:
        sender = _Sender(client, concurrency)
        started = time.monotonic()
        for minute in simulation.minutes():
            if speed > 0:
                await asyncio.sleep(max(0.0, started + minute.number / speed - time.monotonic()))
            for assignment in minute.opened:
                open_sessions[id(assignment)] = assignment
            on_time = sorted(
                (event for delay, event in minute.deliveries if delay == 0),
                key=lambda event: event[1],
            )
            for delay, event in minute.deliveries:
                if delay:
                    delayed[minute.number + delay].append(event)
            await sender.ingest(on_time + delayed.pop(minute.number, []), batch_size)
            for assignment in minute.closed:
                open_sessions.pop(id(assignment), None)
            await sender.assign(minute.closed)
            if report is not None:
                report(minute.number + 1, sender.stats["sent"])
        for index in sorted(delayed):
            await sender.ingest(delayed.pop(index), batch_size)
        await sender.assign(list(open_sessions.values()))
    truth = simulation.truth()
    truth.stats.update(sender.stats)
    return truth
