"""Prometheus metrics at /metrics, summed over uvicorn workers (PROMETHEUS_MULTIPROC_DIR)."""

from __future__ import annotations

import os
import time
from collections import Counter as Tally
from collections.abc import Sequence
from itertools import compress
from operator import countOf
from pathlib import Path

import msgspec
from litestar import Response, get
from litestar.di import NamedDependency
from litestar.types import Message, Scope
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from kilowatch.ingest.schemas import MeterEvent, Rejection, Row, VehicleEvent, VehicleRow

# Rejected fields are labels; any other name is client-chosen (an unknown field) and counted as
# "unknown", so a client cannot create unbounded series (each one a file row per worker).
_FIELDS = frozenset(
    {"body", "type", "payload"}
    | {f.encode_name for event in (MeterEvent, VehicleEvent) for f in msgspec.structs.fields(event)}
)
_BATCH_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10_000)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def reason(field: str) -> str:
    """The label a rejected field is counted under: its name without `payload.`, or "unknown"."""
    name = field.removeprefix("payload.")
    return name if name in _FIELDS else "unknown"


class Metrics:
    """One app's metrics; in multiprocess mode the values live in files that every worker reads."""

    def __init__(self) -> None:
        # prometheus_client picks file-backed values at import when this variable is set, so the
        # process that starts the workers sets it (`kilowatch serve`); without it, plain values.
        self.multiprocess = "PROMETHEUS_MULTIPROC_DIR" in os.environ
        # Per app, not the global REGISTRY: tests build many apps in one process.
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        events = Counter(
            "kilowatch_ingest_events",
            "Valid events stored (accepted) or already stored (duplicate)",
            ["kind", "result"],
            registry=reg,
        )
        self.rejected = Counter(
            "kilowatch_ingest_rejected",
            "Events rejected, by the field at fault",
            ["field"],
            registry=reg,
        )
        self.requests = Counter(
            "kilowatch_http_requests", "HTTP responses, by status", ["status"], registry=reg
        )
        self.batch_events = Histogram(
            "kilowatch_flush_batch_events",
            "Events per group-commit flush",
            buckets=_BATCH_BUCKETS,
            registry=reg,
        )
        self.flush_seconds = Histogram(
            "kilowatch_flush_seconds",
            "Group-commit flush duration, to COMMIT",
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        self.flush_failures = Counter(
            "kilowatch_flush_failures", "Flushes that failed (their requests got 503)", registry=reg
        )
        self.db_errors = Counter(
            "kilowatch_database_errors",
            "Database failures that answered 503 (link lost, timed out, refused), by cause",
            ["cause"],
            registry=reg,
        )
        self.rollup_lag_s = Gauge(
            "kilowatch_rollup_lag_seconds",
            "How far the rollups' frontier trails the clock (reads above it are raw)",
            multiprocess_mode="min",
            registry=reg,
        )
        self.rollup_dirty = Gauge(
            "kilowatch_rollup_dirty_marks",
            "Dirty marks waiting for the refresher (late events, assignment changes)",
            multiprocess_mode="min",
            registry=reg,
        )
        self.queued = Gauge(
            "kilowatch_ingest_queued_events",
            "Events submitted and not yet committed",
            multiprocess_mode="livesum",
            registry=reg,
        )
        self.maintenance_last_success = Gauge(
            "kilowatch_partition_maintenance_last_success_timestamp_seconds",
            "Unix time of the last successful partition maintenance pass (newest of live workers)",
            multiprocess_mode="livemax",
            registry=reg,
        )
        self.maintenance_failures = Counter(
            "kilowatch_partition_maintenance_failures",
            "Partition maintenance passes that failed (each is logged, then retried)",
            registry=reg,
        )
        self.partitions_created = Counter(
            "kilowatch_partitions_created", "Daily partitions created and attached", registry=reg
        )
        self.partitions_dropped = Counter(
            "kilowatch_partitions_dropped",
            "Expired daily partitions detached and dropped",
            registry=reg,
        )
        # Children bound once: .labels() takes a lock and builds a key on every call.
        self._meter_accepted = events.labels("meter", "accepted")
        self._meter_duplicate = events.labels("meter", "duplicate")
        self._vehicle_accepted = events.labels("vehicle", "accepted")
        self._vehicle_duplicate = events.labels("vehicle", "duplicate")
        self._statuses: dict[int, Counter] = {}
        if self.multiprocess:
            self._exposed = CollectorRegistry()
            multiprocess.MultiProcessCollector(self._exposed)  # type: ignore[no-untyped-call]
        else:
            self._exposed = reg

    def count_ingest(
        self, rows: Sequence[Row], new: Sequence[bool], accepted: int, rejected: Sequence[Rejection]
    ) -> None:
        """Counts one request's outcome (`accepted` = sum(new)): increments by n, no Python loop
        over the events."""
        if rows:
            # countOf/map/compress iterate in C: the kind split costs no bytecode per event
            # (about 60 ns an event; isinstance or a generator would cost two to ten times that).
            vehicles = countOf(map(type, rows), VehicleRow)
            new_vehicles = countOf(map(type, compress(rows, new)), VehicleRow)
            self._add(self._vehicle_accepted, new_vehicles)
            self._add(self._vehicle_duplicate, vehicles - new_vehicles)
            self._add(self._meter_accepted, accepted - new_vehicles)
            self._add(self._meter_duplicate, len(rows) - vehicles - (accepted - new_vehicles))
        if rejected:
            # Rejected events are the exception: a loop over them is fine.
            for field, n in Tally(
                reason(e.field) for item in rejected for e in item.errors
            ).items():
                self.rejected.labels(field).inc(n)

    @staticmethod
    def _add(counter: Counter, n: int) -> None:
        if n:
            counter.inc(n)

    def rollup_lag(self, seconds: float, dirty_marks: int) -> None:
        """The refresher's observer: how far the frontier trails now, and the dirty backlog."""
        self.rollup_lag_s.set(seconds)
        self.rollup_dirty.set(dirty_marks)

    def database_error(self, cause: str) -> None:
        """The gateway's observer: one database failure (an exception class name)."""
        self.db_errors.labels(cause).inc()

    # The batcher's FlushObserver.
    def queue_depth(self, events: int) -> None:
        self.queued.set(events)

    def flushed(self, events: int, seconds: float) -> None:
        self.batch_events.observe(events)
        self.flush_seconds.observe(seconds)

    def flush_failed(self, events: int) -> None:
        self.flush_failures.inc()

    # partitions.run_forever's MaintenanceObserver.
    def maintenance_succeeded(self, created: int, dropped: int) -> None:
        self.maintenance_last_success.set(time.time())
        self._add(self.partitions_created, created)
        self._add(self.partitions_dropped, dropped)

    def maintenance_failed(self) -> None:
        self.maintenance_failures.inc()

    async def count_response(self, message: Message, _: Scope) -> None:
        """A before_send hook: sees every response, including errors and unknown routes."""
        if message["type"] == "http.response.start":
            status: int = message["status"]
            counter = self._statuses.get(status)
            if counter is None:
                counter = self._statuses[status] = self.requests.labels(str(status))
            counter.inc()

    def forget_dead_workers(self) -> None:
        """Removes the live gauges (queue depth, ...) of workers that no longer run.

        A worker that was killed or crashed never ran its shutdown, so its files would keep its
        last queue depth in the sum forever. A pid is judged by this process's view: in a
        directory shared across PID namespaces (containers), do not rely on this.
        """
        if not self.multiprocess:
            return
        directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
        pids = {
            int(suffix)
            for path in Path(directory).glob("*.db")
            if (suffix := path.stem.rpartition("_")[2]).isdigit()
        }
        for pid in pids - {os.getpid()}:
            if not _running(pid):
                multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]

    def forget_this_worker(self) -> None:
        """At a worker's shutdown: its live gauges leave the sum (counters stay, as they should)."""
        if self.multiprocess:
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

    def exposition(self) -> bytes:
        return generate_latest(self._exposed)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


@get("/metrics", include_in_schema=False, summary="Prometheus metrics, all workers")
async def scrape(metrics: NamedDependency[Metrics]) -> Response[bytes]:
    # Reading the workers' files takes well under a millisecond: not worth a thread.
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
