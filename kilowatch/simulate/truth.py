"""Ground truth: the simulated physics, and SPEC §5's rules applied in Python to the events."""

from __future__ import annotations

import bisect
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from kilowatch.simulate.events import Assignment, Event, MeterEvent, iso

MINUTE = timedelta(minutes=1)


class AssignmentBook:
    """A vehicle's assignments by start; an open one ends where the vehicle's next one begins."""

    def __init__(self, assignments: Iterable[Assignment] = ()) -> None:
        self._by_vehicle: dict[str, list[Assignment]] = defaultdict(list)
        for assignment in assignments:
            self.add(assignment)

    def add(self, assignment: Assignment) -> None:
        entries = self._by_vehicle[assignment.vehicle_id]
        bisect.insort(entries, assignment, key=lambda a: a.start)

    def meter_at(self, vehicle_id: str, at: datetime) -> str | None:
        entries = self._by_vehicle.get(vehicle_id)
        if not entries:
            return None
        position = bisect.bisect_right(entries, at, key=lambda a: a.start) - 1
        if position < 0:
            return None
        found = entries[position]
        end = found.end
        if end is None and position + 1 < len(entries):
            end = entries[position + 1].start
        return found.meter_id if end is None or at < end else None


@dataclass(slots=True)
class RuleTotals:
    total_ac_kwh: float = 0.0
    total_dc_kwh: float = 0.0
    attached_dc_kwh: float = 0.0
    shared: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "totalAcKwh": self.total_ac_kwh,
            "totalDcKwh": self.total_dc_kwh,
            "attachedDcKwh": self.attached_dc_kwh,
            "coverage": _ratio(self.attached_dc_kwh, self.total_dc_kwh),
            "efficiency": _ratio(self.attached_dc_kwh, self.total_ac_kwh),
        }


class RuleAccumulator:
    """SPEC §5 per vehicle over [start, end), fed events in arrival order, one minute at a time.

    Dedup by (kind, device, instant), first copy wins; a minute is settled by `settle(before)`,
    so a stream needs memory for its open minutes and one total per vehicle only.
    """

    def __init__(self, start: datetime, end: datetime, book: AssignmentBook) -> None:
        self.start, self.end, self.book = start, end, book
        self.totals: dict[str, RuleTotals] = defaultdict(RuleTotals)
        self._minutes: dict[datetime, dict[tuple[bool, str, datetime], Event]] = defaultdict(dict)

    def add(self, events: Iterable[Event]) -> None:
        start, end, minutes = self.start, self.end, self._minutes
        for event in events:
            at = event[1]
            if start <= at < end:
                seen = minutes[at.replace(second=0, microsecond=0)]
                key = (type(event) is MeterEvent, event[0], at)
                if key not in seen:
                    seen[key] = event

    def add_minute(self, minute: datetime, events: Iterable[Event]) -> None:
        """Adds and settles minute `minute` at once; every event must be stamped inside it."""
        if not self.start <= minute < self.end:
            return
        seen: dict[tuple[bool, str, datetime], Event] = {}
        for event in events:
            seen.setdefault((type(event) is MeterEvent, event[0], event[1]), event)
        self._settle_minute(minute, seen.values())

    def settle(self, before: datetime | None = None) -> None:
        for minute in sorted(m for m in self._minutes if before is None or m < before):
            self._settle_minute(minute, self._minutes.pop(minute).values())

    def _settle_minute(self, minute: datetime, events: Iterable[Event]) -> None:
        meter_ac: dict[str, float] = {}
        vehicle_dc: dict[str, float] = {}
        reported: dict[str, tuple[datetime, str]] = {}
        for event in events:
            if isinstance(event, MeterEvent):
                meter_ac[event[0]] = meter_ac.get(event[0], 0.0) + event[2]
                continue
            vehicle_id, at, _, dc, _, meter_id = event
            vehicle_dc[vehicle_id] = vehicle_dc.get(vehicle_id, 0.0) + dc
            if meter_id is not None and (
                vehicle_id not in reported or reported[vehicle_id][0] < at
            ):
                reported[vehicle_id] = (at, meter_id)
        attached: dict[str, list[str]] = defaultdict(list)
        for vehicle_id, dc in vehicle_dc.items():
            self.totals[vehicle_id].total_dc_kwh += dc
            meter_id = (
                reported[vehicle_id][1]
                if vehicle_id in reported
                else (self.book.meter_at(vehicle_id, minute))
            )
            if meter_id is not None:
                attached[meter_id].append(vehicle_id)
        for meter_id, vehicles in attached.items():
            if meter_id not in meter_ac:
                continue  # no meter reading: unmatched, so neither AC nor attached DC
            ac = meter_ac[meter_id]
            dc_sum = sum(vehicle_dc[v] for v in vehicles)
            for vehicle_id in vehicles:
                totals = self.totals[vehicle_id]
                share = vehicle_dc[vehicle_id] / dc_sum if dc_sum > 0 else 1.0 / len(vehicles)
                totals.total_ac_kwh += ac * share
                totals.attached_dc_kwh += vehicle_dc[vehicle_id]
                totals.shared = totals.shared or len(vehicles) > 1


def rule(
    events: Iterable[Event], assignments: Iterable[Assignment], start: datetime, end: datetime
) -> dict[str, RuleTotals]:
    """SPEC §5 for every vehicle, from a whole event list in arrival order."""
    accumulator = RuleAccumulator(start, end, AssignmentBook(assignments))
    accumulator.add(events)
    accumulator.settle()
    return dict(accumulator.totals)


@dataclass
class VehicleTruth:
    vehicle_id: str
    true_efficiency: float
    faulty: bool
    shared_charger: bool
    physical_ac_kwh: float
    physical_dc_kwh: float
    # Not in the file: the standby its meters drew in the minutes it charged (split among the
    # vehicles charging there), which the rule attributes to it along with its own AC.
    standby_kwh: float = 0.0
    rule: RuleTotals = field(default_factory=RuleTotals)

    def as_json(self) -> dict[str, Any]:
        return {
            "vehicleId": self.vehicle_id,
            "trueEfficiency": self.true_efficiency,
            "faulty": self.faulty,
            "sharedCharger": self.shared_charger,
            "physical": {
                "acKwh": self.physical_ac_kwh,
                "dcKwh": self.physical_dc_kwh,
                "efficiency": _ratio(self.physical_dc_kwh, self.physical_ac_kwh),
            },
            "rule": self.rule.as_json(),
        }


@dataclass
class Truth:
    start: datetime
    end: datetime
    vehicles: list[VehicleTruth]
    stats: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "from": iso(self.start),
            "to": iso(self.end),
            "vehicles": [vehicle.as_json() for vehicle in self.vehicles],
        }

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.as_json(), indent=1) + "\n", encoding="utf-8")


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None
