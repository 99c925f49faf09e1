"""What each bench client connection sends: unique events, batches, SQL twins, reads.

Every generated event is new (a figure's tag, the process and the connection are in its device
id), so ingest figures measure stores, not duplicates. A batch is one minute of a slice of the
fleet: distinct devices, half meters and half vehicles, as the heartbeats of a real minute.
Event times stay recent (the server will treat events older than a couple of minutes as late):
timed figures stamp each request with the clock, fixed totals step from a given base by a
millisecond per request.
"""

from __future__ import annotations

import random
import time
import weakref
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import asyncpg
import msgspec

from kilowatch.db import sqlfile
from kilowatch.ingest.schemas import MeterRow, VehicleRow
from kilowatch.ingest.writer import write_batch

if TYPE_CHECKING:
    from kilowatch.bench.load import Task

SINGLE_DEVICES = 1_000  # devices per connection for single events: one status row each
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_encode = msgspec.json.Encoder().encode


class Workload(Protocol):
    def next(self, connection: int, n: int) -> tuple[Any, int]: ...


def http_post(path: str, body: bytes) -> bytes:
    return (
        b"POST %s HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (path.encode(), len(body), body)
    )


def http_get(path: str) -> bytes:
    return b"GET %s HTTP/1.1\r\nHost: bench\r\n\r\n" % path.encode()


class _Events:
    """Rows with unique keys: device `{tag}p{process}c{connection}d{k}`, a recent time.

    With a `base` parameter (a fixed total: sent twice, it is the same events twice) the time is
    `base + step` milliseconds. Without one it is the clock at generation, in microseconds, and
    strictly increasing per connection: a connection's devices never get the same time twice,
    whatever `step` is, and no event is older than the request that carries it.
    """

    def __init__(self, task: Task) -> None:
        self.prefix = f"{task.params['tag']}p{task.process}c"
        base = task.params.get("base")
        self.base = datetime.fromisoformat(base) if base else None
        self.last_us: dict[int, int] = {}

    def stamp(self, connection: int, step: int) -> datetime:
        if self.base is not None:
            return self.base + timedelta(milliseconds=step)
        us = max(time.time_ns() // 1000, self.last_us.get(connection, 0) + 1)
        self.last_us[connection] = us
        return _EPOCH + timedelta(microseconds=us)

    def row(self, device: int, at: datetime, connection: int) -> MeterRow | VehicleRow:
        name = f"{self.prefix}{connection}d{device}"
        if device % 2:
            return MeterRow(name, at, 0.75 + device % 7 / 100, 229.0 + device % 5)
        return VehicleRow(name, at, 40.0 + device % 50, 0.62 + device % 7 / 100, 31.5, None)

    def batch(self, connection: int, size: int, step: int) -> list[MeterRow | VehicleRow]:
        at = self.stamp(connection, step)
        return [self.row(device, at, connection) for device in range(size)]


def _json(row: MeterRow | VehicleRow) -> dict[str, Any]:
    stamp = row.recorded_at.isoformat().replace("+00:00", "Z")
    if isinstance(row, MeterRow):
        return {
            "meterId": row.meter_id,
            "kwhConsumedAc": row.kwh_consumed_ac,
            "voltage": row.voltage,
            "timestamp": stamp,
        }
    return {
        "vehicleId": row.vehicle_id,
        "soc": row.soc,
        "kwhDeliveredDc": row.kwh_delivered_dc,
        "batteryTemp": row.battery_temp,
        "timestamp": stamp,
    }


class SingleEvents(_Events):
    def next(self, connection: int, n: int) -> tuple[bytes, int]:
        at = self.stamp(connection, n // SINGLE_DEVICES)
        row = self.row(n % SINGLE_DEVICES, at, connection)
        return http_post("/v1/ingest", _encode(_json(row))), 1


class HttpBatches(_Events):
    def __init__(self, task: Task) -> None:
        super().__init__(task)
        self.size = int(task.params["batch"])

    def next(self, connection: int, n: int) -> tuple[bytes, int]:
        rows = self.batch(connection, self.size, n)
        return http_post("/v1/ingest", _encode([_json(row) for row in rows])), self.size


SqlRequest = Callable[[asyncpg.Connection], Awaitable[Any]]


def _by_kind(rows: list[MeterRow | VehicleRow]) -> tuple[list[MeterRow], list[VehicleRow]]:
    return (
        [r for r in rows if isinstance(r, MeterRow)],
        [r for r in rows if isinstance(r, VehicleRow)],
    )


class SqlDualWrite(HttpBatches):
    """The statement the server's writer sends, straight from the client: no HTTP, no validation."""

    def next(self, connection: int, n: int) -> tuple[SqlRequest, int]:  # type: ignore[override]
        rows = self.batch(connection, self.size, n)
        return (lambda conn: write_batch(conn, rows)), self.size


class CopyRaw(HttpBatches):
    """The same rows COPYed into the history tables: no dedup, no status."""

    def next(self, connection: int, n: int) -> tuple[SqlRequest, int]:  # type: ignore[override]
        meters, vehicles = _by_kind(self.batch(connection, self.size, n))

        async def copy(conn: asyncpg.Connection) -> None:
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "meter_readings", records=meters, columns=MeterRow._fields
                )
                await conn.copy_records_to_table(
                    "vehicle_readings", records=vehicles, columns=VehicleRow._fields
                )

        return copy, self.size


_STAGED: weakref.WeakSet[asyncpg.Connection] = weakref.WeakSet()


class SqlStagedWrite(HttpBatches):
    """The writer's statement fed by COPY into temporary staging tables instead of unnest()."""

    def next(self, connection: int, n: int) -> tuple[SqlRequest, int]:  # type: ignore[override]
        meters, vehicles = _by_kind(sorted(self.batch(connection, self.size, n)))
        queries = sqlfile.load("kilowatch.bench")

        async def write(conn: asyncpg.Connection) -> None:
            if conn not in _STAGED:
                await conn.execute(queries["create_staging"])
                _STAGED.add(conn)
            async with conn.transaction():
                await conn.copy_records_to_table("stage_meter", records=meters)
                await conn.copy_records_to_table("stage_vehicle", records=vehicles)
                await conn.fetch(queries["write_staged"])

        return write, self.size


class HttpGets:
    """GETs of the given paths, in a seeded random order per connection."""

    def __init__(self, task: Task) -> None:
        self.requests = [http_get(path) for path in task.params["paths"]]
        self.rng = random.Random(task.process)

    def next(self, connection: int, n: int) -> tuple[bytes, int]:
        return self.rng.choice(self.requests), 1


class VehicleFloor:
    """The bare primary-key range SUM for a random vehicle's window."""

    def __init__(self, task: Task) -> None:
        self.vehicles: list[str] = task.params["vehicles"]
        self.window = tuple(datetime.fromisoformat(t) for t in task.params["window"])
        self.query = sqlfile.load("kilowatch.analytics")["vehicle_floor"]
        self.rng = random.Random(task.process)

    def next(self, connection: int, n: int) -> tuple[SqlRequest, int]:
        vehicle = self.rng.choice(self.vehicles)
        return (lambda conn: conn.fetchval(self.query, vehicle, *self.window)), 1


class LateEvents:
    """Batches of late heartbeats of a data set's devices, at random instants of the last 35
    days (unique per connection and request): each one dirties its hour in the rollups."""

    def __init__(self, task: Task) -> None:
        self.vehicles: list[str] = task.params["vehicles"]
        self.meters: list[str] = task.params["meters"]
        self.size = int(task.params["batch"])
        self.now = datetime.fromisoformat(task.params["base"])
        self.rng = random.Random(f"{task.params['tag']}/{task.process}")
        self.micro = task.process  # microseconds make every instant new

    def next(self, connection: int, n: int) -> tuple[bytes, int]:
        events = []
        for _ in range(self.size):
            self.micro += 7
            at = self.now - timedelta(days=self.rng.uniform(0.01, 34.9))
            at = at.replace(microsecond=self.micro % 1_000_000)
            stamp = at.isoformat().replace("+00:00", "Z")
            if self.rng.random() < 0.5:
                events.append(
                    {
                        "vehicleId": self.rng.choice(self.vehicles),
                        "soc": 50.0,
                        "kwhDeliveredDc": 0.05,
                        "batteryTemp": 25.0,
                        "timestamp": stamp,
                    }
                )
            else:
                events.append(
                    {
                        "meterId": self.rng.choice(self.meters),
                        "kwhConsumedAc": 0.06,
                        "voltage": 230.0,
                        "timestamp": stamp,
                    }
                )
        return http_post("/v1/ingest", _encode(events)), self.size


class SqlStatement:
    """A named analytics statement with random vehicles or fixed arguments (references)."""

    def __init__(self, task: Task) -> None:
        self.query = sqlfile.load("kilowatch.analytics")[task.params["query"]]
        self.vehicles: list[str] = task.params.get("vehicles", [])
        self.args: list[Any] = task.params.get("args", [])
        self.rng = random.Random(task.process)

    def next(self, connection: int, n: int) -> tuple[SqlRequest, int]:
        args = [self.rng.choice(self.vehicles), *self.args] if self.vehicles else self.args
        return (lambda conn: conn.fetch(self.query, *args)), 1


WORKLOADS: dict[str, Callable[[Task], Workload]] = {
    "single": SingleEvents,
    "batch": HttpBatches,
    "dual_write": SqlDualWrite,
    "staged_write": SqlStagedWrite,
    "copy": CopyRaw,
    "get": HttpGets,
    "floor": VehicleFloor,
    "late": LateEvents,
    "sql": SqlStatement,
}
