"""The deterministic fleet model: vehicles, multi-port meters, charging sessions and heartbeats.

physics.py has the energy model; this module moves vehicles between driving, parking and
charging and turns every minute into heartbeats (docs/simulator.md has the whole picture):
- Scenarios. `roaming` (the default): vehicles drive and park at random and charge when their
  SoC falls below their own threshold. `depot` (FleetConfig.depot): every vehicle works a daily
  shift and charges overnight side by side on multi-port meters; a charge still running at
  departure time is cut short.
- Meters have 1–4 ports (`port_weights`); a vehicle's home meter is drawn in proportion to ports,
  and it charges there or at one of the next five meters with a free port, else waits.
- Pairs. A share of vehicles follow a leader (same home meter, same peak power, similar SoC):
  they change mode 0–2 minutes after it, so the two plug in within a minute or two of each other
  and the shorter session overlaps the longer one almost completely.
- A vehicle is plugged only while it charges (`dc` > 0): it unplugs in the minute it reaches its
  target SoC (or, in the depot, at the start of its departure minute).
- Every device beats once a minute at a fixed phase of its own skewed clock (phase 5–54 s, skew
  ±4 s), so a reading never crosses into a neighbouring minute; vehicles beat while idle (DC 0),
  meters always (standby AC).
- Delivery faults: a share of heartbeats is sent twice (an identical retry, in the same or the
  next minute) and a share arrives 2–10 minutes late.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, NamedTuple

from kilowatch.simulate import physics
from kilowatch.simulate.events import Assignment, Event, MeterEvent, VehicleEvent

DRIVING, PARKED, WAITING, CHARGING = range(4)
MINUTE = timedelta(minutes=1)
DAY = 24 * 60
NEVER = 1 << 62  # a follower's `until`: only its leader's cues move it
Scenario = Literal["roaming", "depot"]
SCENARIOS: tuple[Scenario, ...] = ("roaming", "depot")


def window_end(now: datetime | None = None) -> datetime:
    """The current UTC minute's start: the simulated window ends there, never in the future."""
    return (now or datetime.now(UTC)).astimezone(UTC).replace(second=0, microsecond=0)


@dataclass(frozen=True)
class FleetConfig:
    vehicles: int
    meters: int
    hours: int
    seed: int
    end: datetime
    scenario: Scenario = "roaming"
    faulty_share: float = 0.12
    reporting_share: float = 0.7
    port_weights: tuple[float, float, float, float] = (0.45, 0.3, 0.15, 0.1)  # 1, 2, 3, 4 ports
    follow_share: float = 0.15  # chance a vehicle follows the one before it (if that one is free)
    duplicate_rate: float = 0.01
    late_rate: float = 0.005

    @classmethod
    def depot(
        cls, seed: int, end: datetime, *, vehicles: int = 26, meters: int = 12, hours: int = 48
    ) -> FleetConfig:
        """The hardest case for a per-vehicle estimator: side by side overnight, multi-port only.

        A fifth of the vehicles are faulty and about half belong to a pair that plugs in together.
        Shifts follow the UTC clock, so the outcome depends on `end`'s time of day and the seed.
        """
        return cls(
            vehicles=vehicles,
            meters=meters,
            hours=hours,
            seed=seed,
            end=end,
            scenario="depot",
            faulty_share=0.2,
            port_weights=(0.0, 0.35, 0.35, 0.3),
            follow_share=0.3,
        )

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
    nominal: float  # η at full power
    taper: float  # η lost between full and zero power (physics.efficiency)
    reports_meter: bool
    offset: timedelta
    home: int
    charge_below: float
    drive_rate: float
    ambient: float
    soc: float
    temp: float
    depart_at: int = 0  # depot: minute of the day it leaves
    shift: int = 0  # depot: minutes away
    leader: int = -1
    follower: int = -1
    cue: tuple[int, int] | None = None  # (minute, mode) its leader switched to
    mode: int = PARKED
    until: int = 0
    target: float = 90.0
    meter: int = -1
    session: Assignment | None = None
    drawn: float = 0.0  # AC the vehicle itself drew in the last minute
    ac_kwh: float = 0.0  # physical totals over the window: own AC, DC stored, standby share
    dc_kwh: float = 0.0
    standby_kwh: float = 0.0


@dataclass(slots=True)
class Meter:
    meter_id: str
    ports: int
    voltage: float
    standby: float  # mean kWh per minute
    bias: float  # systematic part of the meter's error
    offset: timedelta
    plugged: list[int] = field(default_factory=list)
    drawn: float = 0.0  # true AC in the last minute, standby included, before the meter's error
    standby_drawn: float = 0.0


class MinuteOutput(NamedTuple):
    number: int
    start: datetime
    deliveries: list[tuple[int, Event]]  # (delivery delay in minutes, event), retries included
    opened: list[Assignment]
    closed: list[Assignment]


class Fleet:
    """Steps every device once per simulated minute; all randomness comes from one seeded Random."""

    def __init__(self, config: FleetConfig) -> None:
        if config.vehicles < 0 or config.meters < 1 or config.hours < 1:
            raise ValueError("a fleet needs at least one meter and one hour")
        if config.scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {config.scenario!r}")
        self.config = config
        self.depot = config.scenario == "depot"
        self.rng = rng = random.Random(config.seed)
        midnight = config.start.replace(hour=0, minute=0, second=0, microsecond=0)
        self.clock = int((config.start - midnight).total_seconds()) // 60  # minute of the day
        self.meters = [
            Meter(
                f"mtr-{i:05d}",
                rng.choices((1, 2, 3, 4), weights=config.port_weights)[0],
                rng.choice((230.0, 400.0)),
                rng.uniform(*physics.STANDBY_KWH),
                rng.uniform(-physics.METER_BIAS, physics.METER_BIAS),
                _offset(rng),
            )
            for i in range(1, config.meters + 1)
        ]
        ports = list(itertools.accumulate(m.ports for m in self.meters))  # cumulative weights
        shared = [number for number, m in enumerate(self.meters) if m.ports > 1]
        self.vehicles: list[Vehicle] = []
        self.opened: list[Assignment] = []
        self.closed: list[Assignment] = []
        for i in range(config.vehicles):
            vehicle = self._build(i, rng.choices(range(config.meters), cum_weights=ports)[0])
            before = self.vehicles[-1] if self.vehicles else None
            if before is not None and before.leader < 0 and rng.random() < config.follow_share:
                if self.meters[before.home].ports < 2 and shared:
                    before.home = rng.choice(shared)
                vehicle.leader, before.follower = i - 1, i
                vehicle.home, vehicle.max_kw = before.home, before.max_kw
                vehicle.capacity = before.capacity * rng.uniform(0.9, 1.1)
                vehicle.drive_rate = before.drive_rate * rng.uniform(0.9, 1.1)
                vehicle.soc = min(95.0, max(15.0, before.soc + rng.uniform(-5.0, 5.0)))
                vehicle.depart_at, vehicle.shift = before.depart_at, before.shift
            self.vehicles.append(vehicle)
        for index, vehicle in enumerate(self.vehicles):
            if vehicle.leader >= 0:
                self._start_following(index, vehicle)
            elif self.depot:
                self._start_at_depot(index, vehicle)
            else:
                self._start_roaming(index, vehicle)

    def _build(self, i: int, home: int) -> Vehicle:
        rng, depot = self.rng, self.depot
        faulty = rng.random() < self.config.faulty_share
        ambient = rng.uniform(8.0, 24.0)
        return Vehicle(
            vehicle_id=f"veh-{i + 1:05d}",
            capacity=rng.uniform(45.0, 100.0),
            max_kw=rng.choice((7.4, 11.0, 11.0, 22.0) if depot else (7.4, 11.0, 11.0, 22.0, 50.0)),
            nominal=rng.uniform(*(physics.FAULTY if faulty else physics.HEALTHY)),
            taper=rng.uniform(*physics.TAPER_K),
            reports_meter=rng.random() < self.config.reporting_share,
            offset=_offset(rng),
            home=home,
            charge_below=rng.uniform(40.0, 70.0),
            drive_rate=rng.uniform(0.05, 0.11) if depot else rng.uniform(0.12, 0.35),
            ambient=ambient,
            soc=rng.uniform(30.0, 90.0) if depot else rng.uniform(15.0, 95.0),
            temp=ambient,
            depart_at=rng.randint(360, 450),
            shift=rng.randint(540, 630),
        )

    def _start_roaming(self, index: int, vehicle: Vehicle) -> None:
        rng = self.rng
        roll = rng.random()
        if roll < 0.4 and vehicle.soc < 85.0:
            self._plug_backdated(index, vehicle, rng.randint(1, 90))
        elif roll < 0.7:
            vehicle.mode, vehicle.until = DRIVING, rng.randint(1, 120)
        else:
            vehicle.mode, vehicle.until = PARKED, rng.randint(1, 240)

    def _start_at_depot(self, index: int, vehicle: Vehicle) -> None:
        clock = self.clock
        back = vehicle.depart_at + vehicle.shift
        if vehicle.depart_at <= clock < back:
            vehicle.mode, vehicle.until = DRIVING, back - clock
            return
        vehicle.until = (vehicle.depart_at - clock) % DAY
        if vehicle.soc < 85.0:
            self._plug_backdated(index, vehicle, self.rng.randint(1, 90))
        else:
            vehicle.mode = PARKED

    def _start_following(self, index: int, vehicle: Vehicle) -> None:
        leader = self.vehicles[vehicle.leader]
        vehicle.until = NEVER
        if leader.mode != CHARGING:
            vehicle.mode = leader.mode
        elif leader.session is None:
            self._plug_backdated(index, vehicle, self.rng.randint(1, 90))
        else:
            lag = (self.config.start - leader.session.start) // MINUTE
            self._plug_backdated(index, vehicle, max(1, lag - self.rng.randint(0, 2)))

    def _plug_backdated(self, index: int, vehicle: Vehicle, minutes: int) -> None:
        if not self._plug(index, vehicle, self.config.start - MINUTE * minutes):
            vehicle.mode = WAITING

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

    def _unplug(self, index: int, vehicle: Vehicle, at: datetime) -> None:
        self.meters[vehicle.meter].plugged.remove(index)
        if vehicle.session is not None:
            vehicle.session.end = at
            self.closed.append(vehicle.session)
            vehicle.session = None
        vehicle.meter = -1

    def _switch(self, vehicle: Vehicle, k: int, mode: int, until: int) -> None:
        """A leader's (or lone vehicle's) change of mode; its follower copies it 0–2 min later."""
        vehicle.mode, vehicle.until = mode, until
        if vehicle.follower >= 0:
            self.vehicles[vehicle.follower].cue = (k + self.rng.randint(0, 2), mode)

    def _follow(self, index: int, vehicle: Vehicle, start: datetime) -> None:
        assert vehicle.cue is not None
        mode, vehicle.cue = vehicle.cue[1], None
        if vehicle.mode == CHARGING:
            if mode != DRIVING or not self.depot:
                return  # roaming: a follower finishes its charge, then waits for the next cue
            self._unplug(index, vehicle, start)
            vehicle.mode = DRIVING
        elif mode == DRIVING or (mode == WAITING and vehicle.mode != WAITING):
            vehicle.mode = mode
        elif mode == PARKED and vehicle.mode == DRIVING:
            vehicle.mode = PARKED

    def _depart(self, index: int, vehicle: Vehicle, k: int, start: datetime) -> None:
        if vehicle.mode == CHARGING:
            self._unplug(index, vehicle, start)
        self._switch(vehicle, k, DRIVING, k + vehicle.shift + self.rng.randint(-20, 20))

    def _next_departure(self, vehicle: Vehicle, k: int) -> int:
        wait = (vehicle.depart_at - self.clock - k) % DAY or DAY
        return max(k + 1, k + wait + self.rng.randint(-10, 10))

    def minutes(self) -> Iterator[MinuteOutput]:
        """Yields each simulated minute of [start, end) in order."""
        for k in range(self.config.minutes):
            yield self._step(k)

    def _step(self, k: int) -> MinuteOutput:
        rng, config, meters, depot = self.rng, self.config, self.meters, self.depot
        start = config.start + MINUTE * k
        after = start + MINUTE
        dup, late = config.duplicate_rate, config.duplicate_rate + config.late_rate
        deliveries: list[tuple[int, Event]] = []
        load = [0.0] * len(meters)
        charging = [0] * len(meters)
        charged: list[tuple[Vehicle, int]] = []
        power_fraction, efficiency = physics.power_fraction, physics.efficiency

        def deliver(event: Event) -> None:
            roll = rng.random()
            deliveries.append((0, event))
            if roll < dup:
                deliveries.append((0 if roll < dup / 2 else 1, event))
            elif roll < late:
                deliveries[-1] = (2 + int((roll - dup) / (late - dup) * 9), event)

        for index, v in enumerate(self.vehicles):
            if v.cue is not None and k >= v.cue[0]:
                self._follow(index, v, start)
            elif depot and v.mode != DRIVING and k >= v.until:
                self._depart(index, v, k, start)
            if v.mode == WAITING:
                self._plug(index, v, start)
            dc = drawn = 0.0
            meter_id = None
            if v.mode == CHARGING:
                frac = power_fraction(v.soc)
                dc = round(v.max_kw * frac / 60.0, 6)
                drawn = dc / efficiency(v.nominal, v.taper, frac)
                v.soc = min(100.0, v.soc + dc / v.capacity * 100.0)
                v.temp += (v.ambient + 4.0 + 10.0 * frac - v.temp) * 0.1
                v.ac_kwh += drawn
                v.dc_kwh += dc
                load[v.meter] += drawn
                charging[v.meter] += 1
                charged.append((v, v.meter))
                if v.reports_meter:
                    meter_id = meters[v.meter].meter_id
                if v.soc >= v.target:
                    self._unplug(index, v, after)
                    if depot or v.leader >= 0:
                        v.mode = PARKED  # until: the depot's departure, or NEVER for a follower
                    else:
                        self._switch(v, k, PARKED, k + rng.randint(10, 180))
            elif v.mode == DRIVING:
                v.soc = max(0.0, v.soc - v.drive_rate)
                v.temp += (v.ambient + 6.0 - v.temp) * 0.1
                if depot and (k >= v.until or v.soc < 10.0):
                    if v.leader >= 0:
                        v.mode = WAITING
                    else:
                        self._switch(v, k, WAITING, self._next_departure(v, k))
                elif not depot and (k >= v.until or v.soc < 12.0):
                    if v.leader >= 0:
                        v.mode = PARKED
                    else:
                        self._switch(v, k, PARKED, k + rng.randint(5, 90))
            else:
                v.temp += (v.ambient - v.temp) * 0.05
                if not depot and v.mode == PARKED and k >= v.until:
                    if v.soc < v.charge_below:
                        self._switch(v, k, WAITING, v.until)
                    else:
                        self._switch(v, k, DRIVING, k + rng.randint(20, 150))
            v.drawn = drawn
            deliver(
                VehicleEvent(
                    v.vehicle_id, start + v.offset, round(v.soc, 3), dc, round(v.temp, 1), meter_id
                )
            )

        jitter, noise = physics.STANDBY_JITTER, physics.METER_NOISE
        for number, m in enumerate(meters):
            standby = m.standby * (1.0 - jitter + 2.0 * jitter * rng.random())
            m.standby_drawn, m.drawn = standby, standby + load[number]
            error = m.bias + noise * (2.0 * rng.random() - 1.0)
            ac = round(m.drawn * (1.0 + error), 6)
            base = 0.985 if charging[number] else 0.995
            volts = m.voltage * (base + 0.01 * rng.random())
            deliver(MeterEvent(m.meter_id, start + m.offset, ac, round(volts, 1)))
        for v, number in charged:  # the standby of a minute, shared by whoever charged in it
            v.standby_kwh += meters[number].standby_drawn / charging[number]

        opened, self.opened = self.opened, []
        closed, self.closed = self.closed, []
        return MinuteOutput(k, start, deliveries, opened, closed)


def _offset(rng: random.Random) -> timedelta:
    """Heartbeat phase within the minute plus clock skew, to the millisecond; stays in 1–58 s."""
    phase_ms = rng.randint(5_000, 54_000)
    skew_ms = rng.randint(-4_000, 4_000)
    return timedelta(milliseconds=phase_ms + skew_ms)
