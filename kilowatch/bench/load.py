"""Load for `kilowatch bench`, run inside client processes: one asyncio loop, many connections.

HTTP is spoken directly (pre-built HTTP/1.1 requests over keep-alive sockets), because a
general-purpose client would spend more CPU than the server it measures on a 2-core machine.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from kilowatch.bench import workloads


@dataclass
class Task:
    """One client process's share of a figure."""

    workload: str  # a name in workloads.WORKLOADS
    process: int
    connections: int
    start_at: float  # time.time() when every process starts sending
    warmup_s: float = 0.0
    duration_s: float | None = None  # measured seconds after the warm-up ...
    total: int | None = None  # ... or exactly this many requests from this process
    target: str = ""  # "host:port" for HTTP, a database URL for SQL
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    latencies: list[float] = field(default_factory=list)  # seconds, measured requests only
    units: int = 0  # events, rows or requests done in the measured interval
    errors: Counter[str] = field(default_factory=Counter)
    first_send: float = float("inf")  # time.time() of the first and last measured request
    last_done: float = 0.0
    cpu_s: float = 0.0
    wall_s: float = 0.0


def run(task: Task) -> Outcome:
    """Entry point in the client process."""
    return asyncio.run(_run(task))


async def _run(task: Task) -> Outcome:
    workload = workloads.WORKLOADS[task.workload](task)
    sessions = [await _open(task) for _ in range(task.connections)]
    outcome = Outcome()
    remaining = [task.total] if task.total is not None else None
    await asyncio.sleep(max(0.0, task.start_at - time.time()))
    cpu0, wall0 = time.process_time(), time.time()
    measure_from = task.start_at + task.warmup_s
    stop_at = measure_from + (task.duration_s or 0.0)

    pace_s = float(task.params.get("pace_s", 0.0))

    async def loop(index: int) -> None:
        session = sessions[index]
        n = 0
        while True:
            if remaining is not None:
                if remaining[0] <= 0:
                    return
                remaining[0] -= 1
                # A fixed total is one sequence, whichever connection sends each request:
                # sent twice, it is the same events twice.
                request, units = workload.next(0, remaining[0])
            elif time.time() >= stop_at:
                return
            else:
                request, units = workload.next(index, n)
                n += 1
            sent = time.time()
            try:
                ok, error = await session.send(request)
            except (
                OSError,
                asyncio.IncompleteReadError,
                asyncpg.PostgresError,
                asyncpg.InterfaceError,
            ) as exc:
                ok, error = False, type(exc).__name__
                await session.close()
                session = sessions[index] = await _open(task)
            done = time.time()
            if pace_s:  # a paced workload: one request per pace_s on each connection
                await asyncio.sleep(max(0.0, sent + pace_s - done))
            # A timed figure counts what completes inside its interval (as wrk does): a request
            # in flight when the warm-up ends counts once it is done, so a round of requests
            # slower than half the interval still measures them.
            if remaining is None and not (measure_from <= done <= stop_at):
                continue
            outcome.first_send = min(outcome.first_send, sent)
            outcome.last_done = max(outcome.last_done, done)
            if ok:
                outcome.units += units
                outcome.latencies.append(done - sent)
            else:
                outcome.errors[error or "error"] += 1

    try:
        await asyncio.gather(*(loop(i) for i in range(task.connections)))
    finally:
        outcome.cpu_s = time.process_time() - cpu0
        outcome.wall_s = time.time() - wall0
        for session in sessions:
            await session.close()
    return outcome


async def _open(task: Task) -> HttpSession | SqlSession:
    if task.target.startswith("postgres"):
        return SqlSession(await asyncpg.connect(task.target))
    host, port = task.target.rsplit(":", 1)
    return HttpSession(*await asyncio.open_connection(host, int(port)))


class HttpSession:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(self, request: Any) -> tuple[bool, str | None]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        at = lower.find(b"content-length:")
        if at >= 0:
            end = lower.find(b"\r\n", at)
            await self.reader.readexactly(int(lower[at + 15 : end]))
        return 200 <= status < 300, None if status < 300 else str(status)

    async def close(self) -> None:
        self.writer.close()


class SqlSession:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def send(self, request: Any) -> tuple[bool, str | None]:
        await request(self.conn)
        return True, None

    async def close(self) -> None:
        await self.conn.close()
