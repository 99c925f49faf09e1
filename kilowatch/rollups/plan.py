"""Which parts of a window the rollups answer and which are read raw (SPEC §5.1).

Pure: given the materialized region [floor, frontier) and the days that hold dirty marks, a
window [start, end) becomes whole days, whole hours (an hour row covers [hour, min(hour + 1 h,
frontier))) and raw ranges: the partial hours at its edges, everything outside the region, and
whatever the caller adds (dirty hours of one vehicle).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

Range = tuple[datetime, datetime]


@dataclass
class Plan:
    days: list[datetime] = field(default_factory=list)
    hours: list[datetime] = field(default_factory=list)
    raw: list[Range] = field(default_factory=list)
    frontier: datetime | None = None

    def hour_end(self, hour: datetime) -> datetime:
        """Where the hour row of `hour` ends: the hour's end, or the frontier inside it."""
        assert self.frontier is not None
        return min(hour + HOUR, self.frontier)

    def read_raw(self, hours: Iterable[datetime]) -> None:
        """Moves these hour units to the raw ranges (a dirty hour of the one vehicle read)."""
        moved = set(hours) & set(self.hours)
        if moved:
            self.hours = [h for h in self.hours if h not in moved]
            self.raw = merge([*self.raw, *((h, self.hour_end(h)) for h in moved)])


def _aligned(moment: datetime, step: timedelta) -> bool:
    """On a UTC hour (or day) boundary; every moment here is a UTC datetime."""
    on_hour = moment.minute == moment.second == moment.microsecond == 0
    return on_hour and (step == HOUR or moment.hour == 0)


def _next_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0) + HOUR


def plan(
    start: datetime,
    end: datetime,
    floor: datetime,
    frontier: datetime,
    *,
    dirty_days: Iterable[datetime] = (),
    days: bool = True,
) -> Plan:
    """The decomposition of [start, end); `days=False` when hourly figures are wanted."""
    result = Plan(frontier=frontier)
    skip_days = set(dirty_days)
    raw: list[Range] = []
    t = start
    while t < end:
        if t < floor:
            step_end = min(end, floor)
        elif t >= frontier:
            step_end = end
        elif days and _aligned(t, DAY) and t + DAY <= min(end, frontier) and t not in skip_days:
            result.days.append(t)
            t += DAY
            continue
        elif _aligned(t, HOUR) and min(t + HOUR, frontier) <= end:
            result.hours.append(t)
            t = min(t + HOUR, frontier)
            continue
        else:
            step_end = min(end, _next_hour(t), frontier)
        raw.append((t, step_end))
        t = step_end
    result.raw = merge(raw)
    return result


def merge(ranges: Iterable[Range]) -> list[Range]:
    """Sorted, with touching and overlapping ranges joined."""
    merged: list[Range] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged
