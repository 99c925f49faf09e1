"""The fleet model's realism and determinism, and the Python rule engine on hand-made events."""
from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from kilowatch.simulate.events import Assignment, MeterEvent, VehicleEvent
from kilowatch.simulate.fleet import Fleet, FleetConfig
from kilowatch.simulate.simulation import Simulation, config
from kilowatch.simulate.truth import AssignmentBook, rule

END = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
T = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a minute inside the hand-made windows


def at(minute: int, second: float = 30) -> datetime:
    return T + timedelta(minutes=minute, seconds=second)


def run(vehicles: int, meters: int, hours: int, seed: int) -> tuple[Simulation, list]:
    simulation = Simulation(config(vehicles, meters, hours, seed, END))
    return simulation, list(simulation.minutes())


def test_same_seed_and_window_give_the_same_events_and_truth() -> None:
    first, first_minutes = run(20, 12, 2, seed=7)
    second, second_minutes = run(20, 12, 2, seed=7)
    assert [m.deliveries for m in first_minutes] == [m.deliveries for m in second_minutes]
    assert first.truth().as_json() == second.truth().as_json()
    other, other_minutes = run(20, 12, 2, seed=8)
    assert [m.deliveries for m in other_minutes] != [m.deliveries for m in first_minutes]


def test_every_device_beats_once_a_minute_inside_the_window() -> None:
    simulation, minutes = run(15, 10, 1, seed=3)
    assert simulation.config.start == END - timedelta(hours=1)
    for minute in minutes:
        originals = {(type(e), e[0], e[1]) for _, e in minute.deliveries}
        assert len(originals) == 25
        for _, event in minute.deliveries:
            assert minute.start <= event[1] < minute.start + timedelta(minutes=1)
            assert event[1] < END


def test_window_ends_at_the_current_minute_floor() -> None:
    now = datetime(2026, 3, 2, 12, 7, 42, 123456, tzinfo=UTC)
    assert config(1, 1, 3, 0, now).end == datetime(2026, 3, 2, 12, 7, tzinfo=UTC)


def test_charging_tapers_near_full() -> None:
    _, minutes = run(60, 60, 12, seed=11)
    bulk: dict[str, float] = {}
    top: dict[str, float] = {}
    for minute in minutes:
        for _, event in minute.deliveries:
            if isinstance(event, VehicleEvent) and event.kwh_dc > 0:
                into = top if event.soc >= 97 else bulk if event.soc < 75 else None
                if into is not None:
                    into[event.vehicle_id] = max(into.get(event.vehicle_id, 0.0), event.kwh_dc)
    both = bulk.keys() & top.keys()
    assert len(both) >= 3
    for vehicle_id in both:
        assert top[vehicle_id] < 0.5 * bulk[vehicle_id]


def test_a_share_of_the_fleet_is_faulty_some_meters_are_dual_port() -> None:
    fleet = Fleet(FleetConfig(vehicles=3000, meters=1000, hours=1, seed=5, end=END))
    faulty = [v for v in fleet.vehicles if v.faulty]
    assert 0.09 < len(faulty) / len(fleet.vehicles) < 0.15
    assert all(v.efficiency < 0.85 for v in faulty)
    assert all(0.88 <= v.efficiency <= 0.95 for v in fleet.vehicles if not v.faulty)
    assert 0.3 < sum(m.ports == 2 for m in fleet.meters) / len(fleet.meters) < 0.5
    reporting = sum(v.reports_meter for v in fleet.vehicles) / len(fleet.vehicles)
    assert 0.6 < reporting < 0.8


def test_retried_copies_and_late_heartbeats_are_delivered() -> None:
    simulation, minutes = run(40, 30, 3, seed=2)
    copies = Counter((type(e), e[0], e[1]) for m in minutes for _, e in m.deliveries)
    retried = [key for key, count in copies.items() if count > 1]
    late = [delay for m in minutes for delay, _ in m.deliveries if delay >= 2]
    assert retried and late
    assert all(2 <= delay <= 10 for delay in late)
    assert simulation.deliveries == simulation.events + len(retried)


def test_sessions_share_dual_port_meters_and_need_assignments() -> None:
    simulation, minutes = run(40, 20, 6, seed=4)
    truth = simulation.truth()
    assert any(v.shared_charger for v in truth.vehicles)
    assert simulation.assignments
    reported = {e.vehicle_id for m in minutes for _, e in m.deliveries
                if isinstance(e, VehicleEvent) and e.meter_id is not None}
    assigned = {a.vehicle_id for a in simulation.assignments}
    assert reported and assigned and not reported & assigned
    for assignment in simulation.assignments:
        assert assignment.end is None or assignment.end > assignment.start


def test_lone_chargers_rule_efficiency_is_their_physical_efficiency() -> None:
    simulation, _ = run(30, 30, 6, seed=9)
    lone = [v for v in simulation.truth().vehicles if v.physical_dc_kwh > 0 and not v.shared_charger]
    assert len(lone) >= 10
    for vehicle in lone:
        physical = vehicle.physical_dc_kwh / vehicle.physical_ac_kwh
        assert vehicle.rule.attached_dc_kwh / vehicle.rule.total_ac_kwh == pytest.approx(physical)
        assert physical == pytest.approx(vehicle.true_efficiency, rel=1e-4)


def meter(meter_id: str, minute: int, ac: float, second: float = 20) -> MeterEvent:
    return MeterEvent(meter_id, at(minute, second), ac, 230.0)


def vehicle(vehicle_id: str, minute: int, dc: float, meter_id: str | None = None,
            second: float = 30) -> VehicleEvent:
    return VehicleEvent(vehicle_id, at(minute, second), 50.0, dc, 25.0, meter_id)


def test_rule_attaches_by_reported_meter_and_leaves_other_minutes_unmatched() -> None:
    events = [meter("m1", 0, 1.1), vehicle("v1", 0, 1.0, "m1"), vehicle("v1", 1, 0.5),
              meter("m1", 1, 0.002)]
    totals = rule(events, [], T, T + timedelta(hours=1))["v1"]
    assert (totals.total_dc_kwh, totals.attached_dc_kwh) == (1.5, 1.0)
    assert totals.total_ac_kwh == pytest.approx(1.1)
    assert totals.as_json()["coverage"] == pytest.approx(2 / 3)
    assert totals.as_json()["efficiency"] == pytest.approx(1.0 / 1.1)


def test_rule_splits_a_shared_meter_by_dc_and_equally_at_zero_dc() -> None:
    events = [meter("m2", 0, 3.0), vehicle("v2", 0, 1.0, "m2"), vehicle("v3", 0, 2.0),
              meter("m3", 1, 0.2), vehicle("v4", 1, 0.0, "m3"), vehicle("v5", 1, 0.0, "m3")]
    assignments = [Assignment("v3", "m2", T, T + timedelta(minutes=1))]
    totals = rule(events, assignments, T, T + timedelta(hours=1))
    assert totals["v2"].total_ac_kwh == pytest.approx(1.0)
    assert totals["v3"].total_ac_kwh == pytest.approx(2.0)
    assert totals["v2"].shared and totals["v3"].shared
    assert totals["v4"].total_ac_kwh == pytest.approx(0.1)
    assert totals["v5"].total_ac_kwh == pytest.approx(0.1)
    assert totals["v4"].as_json()["efficiency"] == 0.0


def test_rule_blends_a_faulty_and_a_healthy_sharer() -> None:
    # 0.75 and 0.95 true efficiencies, equal DC: both see 2 / (1/0.75 + 1/0.95) ≈ 0.838.
    events = [meter("m1", 0, 1 / 0.75 + 1 / 0.95), vehicle("faulty", 0, 1.0, "m1"),
              vehicle("healthy", 0, 1.0, "m1")]
    totals = rule(events, [], T, T + timedelta(hours=1))
    blended = 2 / (1 / 0.75 + 1 / 0.95)
    assert totals["faulty"].as_json()["efficiency"] == pytest.approx(blended)
    assert totals["healthy"].as_json()["efficiency"] == pytest.approx(blended)


def test_rule_keeps_the_first_copy_and_the_latest_reported_meter_in_a_minute() -> None:
    events = [meter("m1", 0, 2.0), meter("m1", 0, 9.0), meter("m4", 0, 1.0),
              vehicle("v6", 0, 0.5, "m1", second=10), vehicle("v6", 0, 0.5, "m4", second=40),
              vehicle("v6", 0, 7.0, "m1", second=10)]
    totals = rule(events, [], T, T + timedelta(hours=1))["v6"]
    assert totals.total_dc_kwh == 1.0  # both readings of the minute add up; the copy is dropped
    assert totals.total_ac_kwh == pytest.approx(1.0)  # attached to m4, its latest meterId


def test_rule_ignores_meters_without_a_reading_and_events_outside_the_window() -> None:
    events = [vehicle("v7", 0, 1.0, "m9"), meter("m1", 60, 5.0), vehicle("v7", 60, 5.0, "m1"),
              vehicle("v7", -1, 5.0, "m1"), meter("m1", -1, 5.0)]
    totals = rule(events, [], T, T + timedelta(hours=1))["v7"]
    assert (totals.total_dc_kwh, totals.attached_dc_kwh, totals.total_ac_kwh) == (1.0, 0.0, 0.0)
    assert totals.as_json()["efficiency"] is None


def test_open_assignment_ends_where_the_next_begins() -> None:
    book = AssignmentBook([Assignment("v", "m2", T + timedelta(minutes=10)),
                           Assignment("v", "m1", T)])
    assert book.meter_at("v", T - timedelta(minutes=1)) is None
    assert book.meter_at("v", T + timedelta(minutes=9)) == "m1"
    assert book.meter_at("v", T + timedelta(minutes=10)) == "m2"
    assert book.meter_at("v", T + timedelta(days=3)) == "m2"
    closed = AssignmentBook([Assignment("v", "m1", T, T + timedelta(minutes=5))])
    assert closed.meter_at("v", T + timedelta(minutes=5)) is None
    assert closed.meter_at("w", T) is None
