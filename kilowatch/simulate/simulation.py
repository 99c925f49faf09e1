"""One simulation run: the fleet's minutes, with the ground truth kept alongside."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from kilowatch.simulate import physics
from kilowatch.simulate.events import Assignment
from kilowatch.simulate.fleet import Fleet, FleetConfig, MinuteOutput, Scenario, window_end
from kilowatch.simulate.truth import AssignmentBook, RuleAccumulator, Truth, VehicleTruth


def config(
    vehicles: int,
    meters: int,
    hours: int,
    seed: int,
    end: datetime | None = None,
    scenario: Scenario = "roaming",
) -> FleetConfig:
    """The window [end − hours, end), end defaulting to the current minute; scenario defaults."""
    if scenario == "depot":
        return FleetConfig.depot(
            seed, window_end(end), vehicles=vehicles, meters=meters, hours=hours
        )
    return FleetConfig(
        vehicles=vehicles, meters=meters, hours=hours, seed=seed, end=window_end(end)
    )


class Simulation:
    """Iterate `minutes()` once (any writer), then read `truth()`."""

    def __init__(self, fleet_config: FleetConfig) -> None:
        self.config = fleet_config
        self.fleet = Fleet(fleet_config)
        self.book = AssignmentBook()
        self.assignments: list[Assignment] = []
        self.rule = RuleAccumulator(fleet_config.start, fleet_config.end, self.book)
        self.events = 0
        self.deliveries = 0

    def minutes(self) -> Iterator[MinuteOutput]:
        for minute in self.fleet.minutes():
            for assignment in minute.opened:
                self.book.add(assignment)
            self.assignments.extend(minute.opened)
            # The fleet stamps every heartbeat inside its own minute (fleet.py's offsets).
            self.rule.add_minute(minute.start, [event for _, event in minute.deliveries])
            self.deliveries += len(minute.deliveries)
            self.events += len(self.fleet.vehicles) + len(self.fleet.meters)
            yield minute

    def truth(self) -> Truth:
        self.rule.settle()
        vehicles = []
        for vehicle in self.fleet.vehicles:
            totals = self.rule.totals[vehicle.vehicle_id]
            # Energy-weighted over the window: DC stored / AC the vehicle itself drew.
            true = vehicle.dc_kwh / vehicle.ac_kwh if vehicle.dc_kwh > 0 else vehicle.nominal
            vehicles.append(
                VehicleTruth(
                    vehicle_id=vehicle.vehicle_id,
                    true_efficiency=true,
                    faulty=true < physics.FAULTY_BELOW,
                    shared_charger=totals.shared,
                    physical_ac_kwh=vehicle.ac_kwh,
                    physical_dc_kwh=vehicle.dc_kwh,
                    standby_kwh=vehicle.standby_kwh,
                    rule=totals,
                )
            )
        return Truth(
            self.config.start,
            self.config.end,
            vehicles,
            {
                "events": self.events,
                "deliveries": self.deliveries,
                "assignments": len(self.assignments),
            },
        )
