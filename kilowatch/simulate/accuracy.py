"""How well the analytics find faults on a simulated fleet: the estimate (SPEC §5.3) and the rule
(§5) scored against the simulator's ground truth (`trueEfficiency`, energy-weighted).

The targets are issue 15's: among the vehicles with an estimate, |estimate − truth| ≤ 0.02 for
≥ 95 % and the 95 % interval covering the truth for ≥ 90 %; faulty vehicles (truth < 0.84) that
shared a charger suspected for ≥ 90 %; healthy ones (truth > 0.87) suspected for ≤ 1 %; no
estimate for ≤ 10 % of the vehicles that charged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kilowatch.simulate.truth import VehicleTruth

FAULTY_BELOW = 0.84
HEALTHY_ABOVE = 0.87
WITHIN = 0.02


@dataclass(frozen=True)
class Score:
    charged: int  # vehicles with DC in the window
    estimated: int
    within: int  # |estimate − truth| ≤ WITHIN
    covered: int  # low ≤ truth ≤ high
    faulty_shared: int
    faulty_shared_suspected: int
    faulty_shared_rule: int  # belowThreshold (the rule) among them
    healthy: int
    healthy_suspected: int
    healthy_rule: int
    worst_error: float

    def ratios(self) -> dict[str, float]:
        def ratio(a: int, b: int) -> float:
            return a / b if b else float("nan")

        return {
            "within 0.02": ratio(self.within, self.estimated),
            "interval covers": ratio(self.covered, self.estimated),
            "faulty sharers suspected": ratio(self.faulty_shared_suspected, self.faulty_shared),
            "healthy suspected": ratio(self.healthy_suspected, self.healthy),
            "no estimate": ratio(self.charged - self.estimated, self.charged),
            "faulty sharers below threshold (rule)": ratio(
                self.faulty_shared_rule, self.faulty_shared
            ),
            "healthy below threshold (rule)": ratio(self.healthy_rule, self.healthy),
        }

    def meets_targets(self) -> bool:
        r = self.ratios()
        return (
            r["within 0.02"] >= 0.95
            and r["interval covers"] >= 0.90
            and (self.faulty_shared == 0 or r["faulty sharers suspected"] >= 0.90)
            and r["healthy suspected"] <= 0.01
            and r["no estimate"] <= 0.10
        )

    def lines(self) -> list[str]:
        r = self.ratios()
        return [
            f"vehicles that charged: {self.charged}, with an estimate: {self.estimated}",
            f"|estimate − truth| ≤ 0.02: {r['within 0.02']:.1%} (worst {self.worst_error:.4f})",
            f"95 % interval covers the truth: {r['interval covers']:.1%}",
            (
                f"faulty (< 0.84) that shared a charger: {self.faulty_shared}; suspected "
                f"{r['faulty sharers suspected']:.1%} (rule below threshold: "
                f"{r['faulty sharers below threshold (rule)']:.1%})"
            ),
            (
                f"healthy (> 0.87): {self.healthy}; suspected {r['healthy suspected']:.1%} "
                f"(rule below threshold: {r['healthy below threshold (rule)']:.1%})"
            ),
            f"no estimate: {r['no estimate']:.1%} of the vehicles that charged",
        ]


def score(truth: Iterable[VehicleTruth], answers: dict[str, dict[str, Any]]) -> Score:
    """`answers`: the per-vehicle figures (performance or listing items) by vehicle id."""
    charged = estimated = within = covered = 0
    faulty_shared = faulty_suspected = faulty_rule = 0
    healthy = healthy_suspected = healthy_rule = 0
    worst = 0.0
    for vehicle in truth:
        answer = answers.get(vehicle.vehicle_id)
        if answer is None or vehicle.physical_dc_kwh <= 0:
            continue
        charged += 1
        true = vehicle.true_efficiency
        estimate = answer["estimate"]
        if estimate is not None:
            estimated += 1
            error = abs(estimate["efficiency"] - true)
            worst = max(worst, error)
            within += error <= WITHIN
            covered += estimate["low"] <= true <= estimate["high"]
        if true < FAULTY_BELOW and vehicle.shared_charger:
            faulty_shared += 1
            faulty_suspected += answer["faultSuspected"]
            faulty_rule += answer["belowThreshold"]
        elif true > HEALTHY_ABOVE:
            healthy += 1
            healthy_suspected += answer["faultSuspected"]
            healthy_rule += answer["belowThreshold"]
    return Score(
        charged,
        estimated,
        within,
        covered,
        faulty_shared,
        faulty_suspected,
        faulty_rule,
        healthy,
        healthy_suspected,
        healthy_rule,
        worst,
    )
