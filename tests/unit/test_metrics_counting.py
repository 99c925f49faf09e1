"""Metrics without a server: label bounds, the kind split, and the batcher's observer calls."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kilowatch.ingest.batcher import Batcher
from kilowatch.ingest.schemas import FieldError, MeterRow, Rejection, Row, VehicleRow
from kilowatch.metrics import Metrics, reason

T0 = datetime(2026, 11, 23, tzinfo=UTC)


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.exposition().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def events(metrics: Metrics, kind: str, result: str) -> float:
    return samples(metrics)[("kilowatch_ingest_events_total", (("kind", kind), ("result", result)))]


def test_rejected_fields_are_bounded_labels() -> None:
    assert reason("soc") == "soc"
    assert reason("payload.kwhConsumedAc") == "kwhConsumedAc"
    assert reason("body") == "body"
    assert reason("type") == "type"
    # Unknown field names are the client's choice: one label for all of them.
    assert reason("payload.x-attacker-1") == reason("whatever") == "unknown"


def test_count_ingest_splits_kinds_and_results() -> None:
    metrics = Metrics()
    rows: list[Row] = [
        MeterRow("M", T0, 1.0, 230.0),
        VehicleRow("V", T0, 50, 1.0, 30.0, None),
        MeterRow("M2", T0, 1.0, 230.0),
        VehicleRow("V2", T0, 50, 1.0, 30.0, None),
        VehicleRow("V3", T0, 50, 1.0, 30.0, None),
    ]
    new = [True, True, False, False, False]
    rejected = [
        Rejection(index=5, errors=[FieldError("soc", "too high")]),
        Rejection(index=6, errors=[FieldError("payload.soc", "too low")]),
        Rejection(index=7, errors=[FieldError("foo", "unknown field 'foo'")]),
    ]
    metrics.count_ingest(rows, new, sum(new), rejected)
    assert events(metrics, "meter", "accepted") == 1
    assert events(metrics, "meter", "duplicate") == 1
    assert events(metrics, "vehicle", "accepted") == 1
    assert events(metrics, "vehicle", "duplicate") == 2
    values = samples(metrics)
    assert values[("kilowatch_ingest_rejected_total", (("field", "soc"),))] == 2
    assert values[("kilowatch_ingest_rejected_total", (("field", "unknown"),))] == 1


def test_series_exist_at_zero_before_any_event() -> None:
    # rate() over a series that appears mid-way misses its first increments.
    assert events(Metrics(), "vehicle", "accepted") == 0


class Recorder:
    def __init__(self) -> None:
        self.depths: list[int] = []
        self.flushes: list[int] = []
        self.failures: list[int] = []

    def queue_depth(self, events: int) -> None:
        self.depths.append(events)

    def flushed(self, events: int, seconds: float) -> None:
        assert seconds >= 0
        self.flushes.append(events)

    def flush_failed(self, events: int) -> None:
        self.failures.append(events)


class GatedSink:
    def __init__(self, fail: bool = False) -> None:
        self.release = asyncio.Event()
        self.fail = fail

    async def __call__(self, rows: Sequence[Row]) -> list[bool]:
        await self.release.wait()
        if self.fail:
            raise OSError("database gone")
        return [True] * len(rows)


def meters(n: int) -> list[Row]:
    return [MeterRow(f"M{i}", T0, 1.0, 230.0) for i in range(n)]


async def test_batcher_reports_queue_depth_and_each_flush() -> None:
    sink, recorder = GatedSink(), Recorder()
    batcher = Batcher(sink, max_events=100, concurrency=1, observer=recorder)
    batcher.start()
    first = asyncio.create_task(batcher.submit(meters(3)))
    second = asyncio.create_task(batcher.submit(meters(2)))
    await asyncio.sleep(0)
    assert recorder.depths == [3, 5]
    sink.release.set()
    await asyncio.gather(first, second)
    await batcher.close()
    assert sum(recorder.flushes) == 5
    assert recorder.depths[-1] == 0 and recorder.failures == []


async def test_batcher_reports_a_failed_flush() -> None:
    sink, recorder = GatedSink(fail=True), Recorder()
    batcher = Batcher(sink, observer=recorder)
    batcher.start()
    sink.release.set()
    with pytest.raises(OSError):
        await batcher.submit(meters(4))
    await batcher.close()
    assert recorder.failures == [4] and recorder.flushes == []
    assert recorder.depths[-1] == 0
