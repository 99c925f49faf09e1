"""Bench workloads make unique, recent events (no server: the generators alone)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import msgspec

from kilowatch.bench import load, workloads


def task(workload: str, **params: object) -> load.Task:
    return load.Task(workload=workload, process=1, connections=4, start_at=0, params=params)


def keys(body: bytes) -> Iterator[tuple[str, datetime]]:
    events = msgspec.json.decode(body[body.index(b"\r\n\r\n") + 4 :])
    for event in events if isinstance(events, list) else [events]:
        kind = "vehicle" if "vehicleId" in event else "meter"
        stamp = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
        yield f"{kind}:{event.get('vehicleId') or event['meterId']}", stamp


def test_timed_single_events_are_unique_and_recent() -> None:
    single = workloads.SingleEvents(task("single", tag="t1"))
    before = datetime.now(UTC)
    # Far more requests than devices per connection: every device gets several events.
    sent = [
        k
        for n in range(3 * workloads.SINGLE_DEVICES)
        for c in range(2)
        for k in keys(single.next(c, n)[0])
    ]
    after = datetime.now(UTC)
    assert len(set(sent)) == len(sent) == 6 * workloads.SINGLE_DEVICES
    assert all(before - timedelta(milliseconds=1) <= at <= after for _, at in sent)


def test_timed_batches_stay_recent_however_many_requests() -> None:
    batches = workloads.HttpBatches(task("batch", tag="t2", batch=50))
    before = datetime.now(UTC)
    sent = [k for n in range(2_000) for k in keys(batches.next(0, n)[0])]  # was 33 min back
    assert len(set(sent)) == len(sent) == 100_000
    assert min(at for _, at in sent) >= before - timedelta(milliseconds=1)
    assert max(at for _, at in sent) <= datetime.now(UTC)


def test_a_fixed_total_from_a_base_is_the_same_events_every_time() -> None:
    base = datetime(2026, 11, 23, 12, tzinfo=UTC)

    def burst() -> list[tuple[str, datetime]]:
        single = workloads.SingleEvents(task("single", tag="b", base=base.isoformat()))
        return [k for n in range(20_000) for k in keys(single.next(0, n)[0])]

    first = burst()
    assert first == burst()
    assert len(set(first)) == 20_000
    assert max(at for _, at in first) - base < timedelta(seconds=1)
