"""The deterministic fleet model: vehicles, multi-port meters, charging sessions and heartbeats.

Physics, chosen so that SPEC §5's rules recover a lone vehicle's true efficiency exactly:
- A charging vehicle stores `dc` kWh in a minute and draws `round(dc / efficiency, 6)` kWh of AC
  through its meter; a meter's AC in a minute is the sum of what its plugged vehicles draw, and
  small standby AC only in minutes when nothing charges on it (standby beside a charging vehicle
  would be attributed to it and bias its efficiency).
- A vehicle is plugged only while it charges (`dc` > 0); it unplugs in the minute it reaches its
  target SoC. Power is flat below 80 % SoC and tapers linearly to 10 % of peak at 100 %.
- Every device beats once a minute at a fixed phase of its own skewed clock (phase 5–54 s, skew
  ±4 s), so a reading never crosses into a neighbouring minute; vehicles beat while idle (DC 0),
  meters while idle (standby AC).
- Delivery faults: a share of heartbeats is sent twice (an identical retry, in the same or the
  next minute) and a share arrives 2–10 minutes late.
"""
from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from kilowatch.simulate.events import Assignment, Event, MeterEvent, VehicleEvent

DRIVING, PARKED, WAITING, CHARGING = range(4)
MINUTE = timedelta(minutes=1)


def window_end(now: datetime | None = None) -> datetime:
    """The current UTC minute's start: the simulated window ends there, so nothing is in the future."""
    return (now or datetime.now(UTC)).astimezone(UTC).replace(second=0, microsecond=0)


@dataclass(frozen=True)
class FleetConfig:
    vehicles: int
    meters: int
    hours: int
    seed: int
    end: datetime
    faulty_share: float = 0.12
    reporting_share: float = 0.7
    dual_port_share: float = 0.4
    duplicate_rate: float = 0.01
    late_rate: float = 0.005

    @property
    def start(self) -> datetime:
        return self.end - timedelta(hours=self.hours)

    @property
    def minutes(self) -> int:
        return self.hours * 60


@dataclass(slots=True)
class Vehicle:
    vehicle_id: str
    capacity: float
    max_kw: float
    efficiency: float
    faulty: bool
    reports_meter: bool
    offset: timedelta
    home: int
    charge_below: float
    drive_rate: float
    ambient: float
    soc: float
    temp: float
    mode: int = PARKED
    until: int = 0
    target: float = 90.0
    meter: int = -1
    session: Assignment | None = None
    ac_kwh: float = 0.0
    dc_kwh: float = 0.0


@dataclass(slots=True)
class Meter:
    meter_id: str
    ports: int
    voltage: float
    standby: float
    offset: timedelta
    plugged: list[int] = field(default_factory=list)


class MinuteOutput(NamedTuple):
    index: int
    start: datetime
    deliveries: list[tuple[int, Event]]  # (delivery delay in minutes, event), retries included
    opened: list[Assignment]
    closed: list[Assignment]


class Fleet:
    """Steps every device once per simulated minute; all randomness comes from one seeded Random."""

    def __init__(self, config: FleetConfig) -> None:
        if config.vehicles < 0 or config.meters < 1 or config.hours < 1:
            raise ValueError("a fleet needs at least one meter and one hour")
        self.config = config
        self.rng = rng = random.Random(config.seed)
        self.meters = [
            Meter(f"mtr-{i:05d}", 2 if rng.random() < config.dual_port_share else 1,
                  rng.choice((230.0, 400.0)), rng.uniform(0.0003, 0.0015), _offset(rng))
            for i in range(1, config.meters + 1)
        ]
        self.vehicles: list[Vehicle] = []
        for i in range(1, config.vehicles + 1):
            faulty = rng.random() < config.faulty_share
            ambient = rng.uniform(8.0, 24.0)
            self.vehicles.append(Vehicle(
                vehicle_id=f"veh-{i:05d}", capacity=rng.uniform(45.0, 100.0),
                max_kw=rng.choice((7.4, 11.0, 11.0, 22.0, 50.0)),
                efficiency=rng.uniform(0.70, 0.83) if faulty else rng.uniform(0.88, 0.95),
                faulty=faulty, reports_meter=rng.random() < config.reporting_share,
                offset=_offset(rng), home=rng.randrange(config.meters),
                charge_below=rng.uniform(40.0, 70.0), drive_rate=rng.uniform(0.12, 0.35),
                ambient=ambient, soc=rng.uniform(15.0, 95.0), temp=ambient))
        self.opened: list[Assignment] = []
        for index, vehicle in enumerate(self.vehicles):
            roll = rng.random()
            if roll < 0.4 and vehicle.soc < 85.0:
                backdated = config.start - MINUTE * rng.randint(1, 90)
                if not self._plug(index, vehicle, backdated):
                    vehicle.mode = WAITING
            elif roll < 0.7:
                vehicle.mode, vehicle.until = DRIVING, rng.randint(1, 120)
            else:
                vehicle.mode, vehicle.until = PARKED, rng.randint(1, 240)

    def _plug(self, index: int, vehicle: Vehicle, at: datetime) -> bool:
        meters = self.meters
        for step in range(6):
            number = (vehicle.home + step) % len(meters)
            meter = meters[number]
            if len(meter.plugged) < meter.ports:
                meter.plugged.append(index)
                vehicle.mode, vehicle.meter = CHARGING, number
                vehicle.target = min(100.0, max(vehicle.soc + 5.0, self.rng.uniform(80.0, 100.0)))
                if not vehicle.reports_meter:
                    vehicle.session = Assignment(vehicle.vehicle_id, meter.meter_id, at)
                    self.opened.append(vehicle.session)
                return True
        return False

    def minutes(self) -> Iterator[MinuteOutput]:
        """Yields each simulated minute of [start, end) in order."""
        for index in range(self.config.minutes):
            yield self._step(index)

    def _step(self, k: int) -> MinuteOutput:
        rng, config, meters = self.rng, self.config, self.meters
        start = config.start + MINUTE * k
        after = start + MINUTE
        dup, late = config.duplicate_rate, config.duplicate_rate + config.late_rate
        deliveries: list[tuple[int, Event]] = []
        closed: list[Assignment] = []
        load = [0.0] * len(meters)
        charging = [0] * len(meters)

        def deliver(event: Event) -> None:
            roll = rng.random()
            deliveries.append((0, event))
            if roll < dup:
                deliveries.append((0 if roll < dup / 2 else 1, event))
            elif roll < late:
                deliveries[-1] = (2 + int((roll - dup) / (late - dup) * 9), event)

        for index, v in enumerate(self.vehicles):
            if v.mode == WAITING:
                self._plug(index, v, start)
            dc = 0.0
            meter_id = None
            if v.mode == CHARGING:
                frac = 1.0 if v.soc < 80.0 else max(0.1, (100.0 - v.soc) / 20.0)
                dc = round(v.max_kw * frac / 60.0, 6)
                ac = round(dc / v.efficiency, 6)
                v.soc = min(100.0, v.soc + dc / v.capacity * 100.0)
                v.temp += (v.ambient + 4.0 + 10.0 * frac - v.temp) * 0.1
                v.ac_kwh += ac
                v.dc_kwh += dc
                load[v.meter] += ac
                charging[v.meter] += 1
                if v.reports_meter:
                    meter_id = meters[v.meter].meter_id
                if v.soc >= v.target:
                    meters[v.meter].plugged.remove(index)
                    if v.session is not None:
                        v.session.end = after
                        closed.append(v.session)
                        v.session = None
                    v.meter = -1
                    v.mode, v.until = PARKED, k + rng.randint(10, 180)
            elif v.mode == DRIVING:
                v.soc = max(0.0, v.soc - v.drive_rate)
                v.temp += (v.ambient + 6.0 - v.temp) * 0.1
                if k >= v.until or v.soc < 12.0:
                    v.mode, v.until = PARKED, k + rng.randint(5, 90)
            else:
                v.temp += (v.ambient - v.temp) * 0.05
                if v.mode == PARKED and k >= v.until:
                    if v.soc < v.charge_below:
                        v.mode = WAITING
                    else:
                        v.mode, v.until = DRIVING, k + rng.randint(20, 150)
            deliver(VehicleEvent(v.vehicle_id, start + v.offset, round(v.soc, 3), dc,
                                 round(v.temp, 1), meter_id))

        for number, m in enumerate(meters):
            if charging[number]:
                ac = round(load[number], 6)
                volts = m.voltage * (0.985 + 0.01 * rng.random())
            else:
                ac = round(m.standby * (0.8 + 0.4 * rng.random()), 6)
                volts = m.voltage * (0.995 + 0.01 * rng.random())
            deliver(MeterEvent(m.meter_id, start + m.offset, ac, round(volts, 1)))

        opened, self.opened = self.opened, []
        return MinuteOutput(k, start, deliveries, opened, closed)


def _offset(rng: random.Random) -> timedelta:
    """Heartbeat phase within the minute plus clock skew, to the millisecond; stays in 1–58 s."""
    phase_ms = rng.randint(5_000, 54_000)
    skew_ms = rng.randint(-4_000, 4_000)
    return timedelta(milliseconds=phase_ms + skew_ms)
