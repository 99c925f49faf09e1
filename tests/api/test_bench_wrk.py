"""The bench's wrk script (lua/load.lua): unique, recent, valid events; statuses counted."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Self

import asyncpg
import msgspec
import pytest

from kilowatch import timestamps
from kilowatch.bench import wrk
from kilowatch.ingest.schemas import MeterEvent, VehicleEvent

WRK = wrk.find()
pytestmark = pytest.mark.skipif(
    WRK is None,
    reason="wrk is not on PATH (Debian: apt-get install wrk); the bench uses its Python clients",
)
_LENGTH = re.compile(rb"content-length: *(\d+)", re.IGNORECASE)


class Recorder:
    """A keep-alive HTTP/1.1 server in a thread: records each request, answers 201 or 503."""

    def __init__(self, fail_every: int = 0) -> None:
        self.requests: list[tuple[bytes, bytes]] = []  # (request line, body)
        self.fail_every = fail_every
        self.failed = 0
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = _LENGTH.search(head)
                body = await reader.readexactly(int(length[1])) if length else b""
                self.requests.append((head.split(b"\r\n", 1)[0], body))
                status = b"201 Created"
                if self.fail_every and len(self.requests) % self.fail_every == 0:
                    status, self.failed = b"503 Service Unavailable", self.failed + 1
                writer.write(b"HTTP/1.1 %s\r\nContent-Length: 2\r\n\r\n{}" % status)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def __enter__(self) -> Self:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop and self._stop
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    with Recorder(fail_every=10) as server:
        yield server


def _event(body: bytes) -> tuple[str, str, datetime]:
    raw = msgspec.json.decode(body)
    if "vehicleId" in raw:
        vehicle = msgspec.json.decode(body, type=VehicleEvent)  # the API's own shape and limits
        return "vehicle", vehicle.vehicle_id, timestamps.parse(vehicle.timestamp)
    meter = msgspec.json.decode(body, type=MeterEvent)
    return "meter", meter.meter_id, timestamps.parse(meter.timestamp)


def test_ingest_script_sends_unique_recent_valid_events(recorder: Recorder) -> None:
    assert WRK
    started = datetime.now(UTC)
    # 20 devices per thread: each device gets many events, so uniqueness rests on the stamps.
    sample = wrk.run(
        WRK,
        f"http://127.0.0.1:{recorder.port}/",
        "load.lua",
        threads=2,
        connections=4,
        seconds=1,
        args=["ingest", "u1", "20"],
    )
    ended = datetime.now(UTC)
    events = [_event(body) for line, body in recorder.requests]
    assert {line for line, _ in recorder.requests} == {b"POST /v1/ingest HTTP/1.1"}
    assert len(events) > 100
    assert len(set(events)) == len(events)  # (kind, device, instant): the dedup key
    assert len({device for _, device, _ in events}) == 40  # 2 threads × 20, meters and vehicles
    assert {kind for kind, _, _ in events} == {"meter", "vehicle"}
    stamps = [at for _, _, at in events]
    assert started - timedelta(seconds=1) <= min(stamps) and max(stamps) <= ended
    # Every answer wrk counted: 201s are the rate, 503s the errors.
    assert sample.error_kinds == {"503": sample.errors}
    assert 0 < sample.errors <= recorder.failed and sample.count <= len(events)
    assert sample.rate > 0 and sample.client == "wrk"


def test_get_script_requests_the_listed_paths(recorder: Recorder, tmp_path: Path) -> None:
    assert WRK
    paths = ["/v1/vehicles/V-1/status", "/v1/vehicles/V-2/status", "/v1/meters/M-1/status"]
    listing = tmp_path / "paths"
    listing.write_text("\n".join(paths) + "\n")
    wrk.run(
        WRK,
        f"http://127.0.0.1:{recorder.port}/",
        "load.lua",
        threads=1,
        connections=2,
        seconds=1,
        args=["get", str(listing)],
    )
    lines = {line for line, _ in recorder.requests}
    assert lines == {b"GET %s HTTP/1.1" % p.encode() for p in paths}


async def _stored(db_url: str) -> int:
    conn = await asyncpg.connect(db_url)
    try:
        return int(
            await conn.fetchval(
                "SELECT (SELECT count(*) FROM meter_readings)"
                " + (SELECT count(*) FROM vehicle_readings)"
            )
        )
    finally:
        await conn.close()


def test_ingest_script_events_are_all_stored_by_the_app(live_server: str, db_url: str) -> None:
    assert WRK
    sample = wrk.run(
        WRK,
        f"http://{live_server}/",
        "load.lua",
        threads=2,
        connections=8,
        seconds=1,
        args=["ingest", "app", "50"],
    )
    assert sample.errors == 0 and sample.count > 0
    stored = asyncio.run(_stored(db_url))
    # A duplicate would be answered (200) but stored once: fewer rows than answers. Requests
    # still in flight when wrk stopped may be stored unanswered: at most one per connection.
    assert sample.count <= stored <= sample.count + 8
