"""The estimate's fits (analytics/normals.py, estimate.py), numpy's scatter-adds and the loops
for a few configurations, against the plain loops they replaced.

The reference (`reference_*`, below) is the module's code before the accumulation became numpy
scatter-adds: the rows added up per key in a dict, each fit's normal equations built in lists,
then solved and judged one vehicle at a time. The inputs are simulated `*_configs` rows:
per-minute DC and AC drawn per configuration, added up per hour unit where several vehicles
share a meter, as the rollups keep them.

`python -m tests.unit.test_estimate_fits` times both on a 10,000-vehicle fleet and on a
vehicle's read.
"""

from __future__ import annotations

import pickle
import random
import statistics
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np
import pytest

from kilowatch.analytics import estimate, normals
from kilowatch.analytics.estimate import (
    MAX_HALF_WIDTH,
    MODEL_ERROR,
    RANK_TOLERANCE,
    SHARED_MODEL_ERROR,
    Z95,
    Config,
    Result,
)

Row = tuple[str, list[str], int, float, float, list[float], list[float], list[float]]


@dataclass
class Plan:
    """A meter's configurations (vehicles in the rows' order, minutes) and what its minutes
    look like."""

    meter_id: str
    configs: list[tuple[tuple[str, ...], int]]
    standby: float
    noise: float  # kWh per minute, the meter's error's standard deviation
    identical: bool = False  # sharers with the same DC in every minute


def fleet_plans(rng: np.random.Generator, meters: int, odd: float = 0.0) -> list[Plan]:
    """A fleet on `meters` meters, 1.3 vehicles a meter: 5 % of the meters idle (nobody
    attached, one row), 15 % with 2–3 ports shared by 2–4 vehicles whose sessions overlap, the
    rest with one vehicle at a time (a tenth of them two, one after the other); 5 % of the
    vehicles also charge alone on a second meter. `odd`: the share of meters given a case the
    fits must refuse or doubt (sharers always together with identical DC, a vehicle's single
    minute, a very noisy meter)."""
    ids = iter(rng.permutation(meters * 4))
    plans = []
    vehicles = []
    for n in rng.permutation(meters):
        meter_id = f"M-{n:05d}"
        kind = rng.random()
        standby, noise = rng.uniform(0.0005, 0.002), 0.001
        configs: list[tuple[tuple[str, ...], int]] = []
        identical = False
        if kind < 0.05:
            plans.append(Plan(meter_id, [((), 1440)], standby, noise))
            continue
        if kind < 0.20:
            here = sorted(f"V-{next(ids):06d}" for _ in range(rng.integers(2, 5)))
            if rng.random() < odd:
                identical = True
                configs.append(((here[0], here[1]), 120))
                here = here[:2]
            else:
                configs += [((v,), int(rng.integers(20, 240))) for v in here]
                for a, b in pairwise(here):
                    configs.append(((a, b), int(rng.integers(10, 120))))
                if len(here) > 2 and rng.random() < 0.5:
                    configs.append((tuple(here[:3]), int(rng.integers(10, 60))))
        else:
            here = [f"V-{next(ids):06d}" for _ in range(1 + (rng.random() < 0.1))]
            for v in here:
                minutes = 1 if rng.random() < odd / 2 else int(rng.integers(30, 300))
                configs.append(((v,), minutes))
            if rng.random() < odd:
                noise = 0.2
        vehicles += here
        busy = sum(m for _, m in configs)
        if rng.random() < 0.9:
            configs.append(((), max(1440 - busy, 1)))
        plans.append(Plan(meter_id, configs, standby, noise, identical))
    used = [p for p in plans if p.configs[0][0]]
    for v in rng.choice(vehicles, len(vehicles) // 20, replace=False):
        plan = used[rng.integers(len(used))]
        if not any(v in c for c, _ in plan.configs) and not plan.identical:
            plan.configs.append(((str(v),), int(rng.integers(30, 200))))
    return plans


def simulated_rows(
    rng: np.random.Generator,
    plans: list[Plan],
    units: int,
    split_all: bool = False,
    inverted: float = 0.005,
) -> list[Row]:
    """The `*_configs` rows of `plans`: per configuration, its minutes drawn (each vehicle's
    DC varying around its own peak, AC = Σ DC·β + standby + noise, β = 1/η with η in 0.78–0.96,
    or negative for the share `inverted` of the vehicles) then added up per unit of `units`
    where several vehicles were attached (or for every configuration with `split_all`), as the
    rollups keep them; in random order."""
    beta: dict[str, float] = {}
    rows: list[Row] = []
    for plan in plans:
        for vehicles, minutes in plan.configs:
            for v in vehicles:
                if v not in beta:
                    beta[v] = (-0.5 if rng.random() < inverted else 1.0) / rng.uniform(0.78, 0.96)
            k = len(vehicles)
            dc = rng.uniform(0.05, 0.2, k) * rng.uniform(0.2, 1.0, (minutes, k))
            if plan.identical:
                dc[:, 1:] = dc[:, :1]
            ac = dc @ np.array([beta[v] for v in vehicles]) + plan.standby
            ac += plan.noise * rng.standard_normal(minutes)
            upper = np.triu_indices(k)
            pairs = dc[:, upper[0]] * dc[:, upper[1]]
            split = units if (k > 1 or split_all) and minutes > 1 else 1
            unit = np.sort(rng.integers(0, split, minutes))
            starts = np.flatnonzero(np.r_[True, unit[1:] != unit[:-1]])
            counts = np.diff(np.r_[starts, minutes])
            sums = [
                np.add.reduceat(x, starts, axis=0)
                for x in (ac, ac * ac, dc, dc * ac[:, None], pairs)
            ]
            for u, count in enumerate(counts.tolist()):
                rows.append(
                    (
                        plan.meter_id,
                        list(vehicles),
                        count,
                        float(sums[0][u]),
                        float(sums[1][u]),
                        sums[2][u].tolist() if k else [],
                        sums[3][u].tolist() if k else [],
                        sums[4][u].tolist() if k else [],
                    )
                )
    order = rng.permutation(len(rows))
    return [rows[i] for i in order]


def fleet_rows(seed: int, meters: int = 8_000, units: int = 24, odd: float = 0.0) -> list[Row]:
    """A whole fleet's window of rows: for 8,000 meters 10,600 vehicles and 74,000 rows (most
    of them the per-hour units of shared configurations), 8,000 fits of 2–10 parameters."""
    rng = np.random.default_rng(seed)
    return simulated_rows(rng, fleet_plans(rng, meters, odd), units)


# The module's code before the accumulation was vectorised (commit 068096c), kept to compare
# the new code against: configs, estimate_all's grouping, _normal, _solve and _result.


def reference_configs(rows: Iterable[Any]) -> list[Config]:
    sums: dict[tuple[str, tuple[str, ...]], list[Any]] = {}
    for meter_id, vehicles, minutes, ac, ac2, dc, dc_ac, dc_dc in rows:
        key = (meter_id, tuple(vehicles))
        found = sums.get(key)
        if found is None:
            sums[key] = [minutes, ac, ac2, list(dc), list(dc_ac), list(dc_dc)]
            continue
        found[0] += minutes
        found[1] += ac
        found[2] += ac2
        for total, part in ((found[3], dc), (found[4], dc_ac), (found[5], dc_dc)):
            for i, value in enumerate(part):
                total[i] += value
    return [Config(m, v, *figures) for (m, v), figures in sums.items()]


def reference_estimate_all(
    rows: Iterable[Config], only: set[str] | None = None
) -> dict[str, Result]:
    by_meter: dict[str, list[Config]] = defaultdict(list)
    meters_of: dict[str, set[str]] = defaultdict(set)
    for c in rows:
        by_meter[c.meter_id].append(c)
        for v in c.vehicles:
            meters_of[v].add(c.meter_id)
    scopes: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for vehicle_id, its_meters in meters_of.items():
        if only is None or vehicle_id in only:
            scopes[tuple(sorted(its_meters))].append(vehicle_id)
    by_size: dict[int, list[ReferenceNormal]] = defaultdict(list)
    for scope, targets in scopes.items():
        normal = reference_normal(targets, [c for m in scope for c in by_meter[m]])
        by_size[len(normal.moment)].append(normal)
    results: dict[str, Result] = {}
    for group in by_size.values():
        results.update(reference_solve(group))
    return results


@dataclass
class ReferenceNormal:
    targets: list[str]
    index: dict[str, int]
    gram: list[list[float]]
    moment: list[float]
    yy: float
    n: int
    used: dict[str, int]
    shared: dict[str, int]


def reference_normal(targets: list[str], rows: list[Config]) -> ReferenceNormal:
    vehicles = sorted({v for c in rows for v in c.vehicles})
    meters = sorted({c.meter_id for c in rows})
    index = {v: i for i, v in enumerate(vehicles)}
    nv = len(vehicles)
    index.update({m: nv + j for j, m in enumerate(meters)})
    p = nv + len(meters)
    g = [[0.0] * p for _ in range(p)]
    b = [0.0] * p
    yy = 0.0
    n = 0
    used: dict[str, int] = dict.fromkeys(targets, 0)
    shared = dict(used)
    for c in rows:
        s = index[c.meter_id]
        gs = g[s]
        gs[s] += c.minutes
        b[s] += c.ac
        yy += c.ac2
        n += c.minutes
        ids = [index[v] for v in c.vehicles]
        for v in c.vehicles:
            if v in used:
                used[v] += c.minutes
                if len(ids) > 1:
                    shared[v] += c.minutes
        t = 0
        dc_dc = c.dc_dc
        for a, i in enumerate(ids):
            gi = g[i]
            gi[s] += c.dc[a]
            gs[i] += c.dc[a]
            b[i] += c.dc_ac[a]
            for j in ids[a:]:
                gi[j] += dc_dc[t]
                if i != j:
                    g[j][i] += dc_dc[t]
                t += 1
    return ReferenceNormal(targets, index, g, b, yy, n, used, shared)


def reference_solve(group: list[ReferenceNormal]) -> dict[str, Result]:
    gram = np.array([f.gram for f in group])
    moment = np.array([f.moment for f in group])
    diag = np.diagonal(gram, axis1=1, axis2=2).copy()
    observed = diag > 0
    diag[~observed] = 1.0
    scale = np.sqrt(diag)
    values, vectors = np.linalg.eigh(gram / (scale[:, :, None] * scale[:, None, :]))
    keep = values > RANK_TOLERANCE * values.max(axis=1, keepdims=True)
    rank = keep.sum(axis=1)
    weights = np.where(keep, 1.0 / np.where(keep, values, 1.0), 0.0)
    inverse = (vectors * weights[:, None, :]) @ vectors.transpose(0, 2, 1)
    theta = (inverse @ (moment / scale)[:, :, None])[:, :, 0] / scale
    yy = np.array([f.yy for f in group])
    n = np.array([f.n for f in group])
    residual = (
        yy - 2.0 * (theta * moment).sum(axis=1) + np.einsum("fi,fij,fj->f", theta, gram, theta)
    )
    free = n - rank
    variance = np.maximum(residual, 0.0) / np.maximum(free, 1)
    loose = np.sqrt((vectors**2 * ~keep[:, None, :]).sum(axis=2)) > 1e-6
    results: dict[str, Result] = {}
    for k, fit in enumerate(group):
        if free[k] <= 0:
            results.update(dict.fromkeys(fit.targets, Result(None, "too few minutes to fit")))
            continue
        for v in fit.targets:
            i = fit.index[v]
            results[v] = reference_result(
                float(theta[k, i]),
                float(variance[k] * inverse[k, i, i] / diag[k, i]),
                bool(observed[k, i] and not loose[k, i]),
                fit.used[v],
                fit.shared[v],
            )
    return results


def reference_result(
    beta: float, beta_variance: float, identifiable: bool, used: int, shared: int
) -> Result:
    if not identifiable:
        return Result(None, "not identifiable: its DC never varied apart from its sharers'")
    if beta <= 0:
        return Result(None, "not identifiable: the fit gives no positive efficiency")
    efficiency = 1.0 / beta
    fit_se = float(np.sqrt(beta_variance)) / beta**2
    model = float(np.hypot(MODEL_ERROR, SHARED_MODEL_ERROR * shared / used)) * efficiency
    half = Z95 * float(np.hypot(fit_se, model))
    if half > MAX_HALF_WIDTH:
        return Result(None, "too uncertain: its DC hardly varied apart from its sharers'")
    estimate = {
        "efficiency": efficiency,
        "low": efficiency - half,
        "high": efficiency + half,
        "minutes": used,
        "sharedMinutes": shared,
    }
    return Result(estimate)


def assert_same(found: dict[str, Result], expected: dict[str, Result]) -> None:
    """The same vehicles, reasons and estimates (figures within 1e-9 relative, minutes equal)."""
    assert found.keys() == expected.keys()
    for vehicle_id, result in expected.items():
        got = found[vehicle_id]
        assert got.reason == result.reason, vehicle_id
        if result.estimate is None:
            assert got.estimate is None, vehicle_id
            continue
        assert got.estimate is not None, vehicle_id
        assert got.estimate.keys() == result.estimate.keys()
        for field in ("minutes", "sharedMinutes"):
            assert got.estimate[field] == result.estimate[field], (vehicle_id, field)
        for field in ("efficiency", "low", "high"):
            want = result.estimate[field]
            assert abs(got.estimate[field] - want) <= 1e-9 * abs(want), (vehicle_id, field)


def fitted(rows: list[Row], only: set[str] | None = None) -> dict[str, Result]:
    return estimate.estimate_all(estimate.configs(rows), only=only)


def reference(rows: list[Row], only: set[str] | None = None) -> dict[str, Result]:
    return reference_estimate_all(reference_configs(rows), only=only)


REASONS = {
    None,
    "too few minutes to fit",
    "not identifiable: its DC never varied apart from its sharers'",
    "not identifiable: the fit gives no positive efficiency",
    "too uncertain: its DC hardly varied apart from its sharers'",
}
# numpy's scatter-adds for everything, the module's choice by size, loops for everything.
WAYS = pytest.mark.parametrize("few", [0, normals.FEW, 10**9], ids=["numpy", "as-is", "loops"])


@WAYS
@pytest.mark.parametrize("seed", range(5))
def test_random_fleets_give_the_references_results(
    seed: int, few: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(normals, "FEW", few)
    rng = np.random.default_rng(seed)
    plans = fleet_plans(rng, 150, odd=0.2)
    rows = simulated_rows(rng, plans, 24, split_all=seed % 2 == 1, inverted=0.03)
    expected = reference(rows)
    assert {r.reason for r in expected.values()} == REASONS  # every outcome is compared
    assert_same(fitted(rows), expected)
    vehicles = sorted(expected)
    for only in (
        set(random.Random(seed).sample(vehicles, 20)),
        {vehicles[seed]},
        {vehicles[0], "V-unknown"},
        set(),
    ):
        assert_same(fitted(rows, only), reference(rows, only))


def hand_made(plans: list[Plan], seed: int = 1) -> list[Row]:
    return simulated_rows(np.random.default_rng(seed), plans, 24, split_all=True)


@WAYS
def test_the_cases_one_by_one(few: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(normals, "FEW", few)
    plans = [
        # Alone, with minutes nobody was attached (standby only), and alone without them.
        Plan("M-alone", [(("V-alone",), 200), ((), 600)], 0.001, 0.001),
        Plan("M-busy", [(("V-busy",), 300)], 0.001, 0.001),
        # Nobody ever attached: no fit.
        Plan("M-idle", [((), 1440)], 0.001, 0.001),
        # Two always together with the same DC: neither is identifiable.
        Plan("M-twins", [(("V-twin-a", "V-twin-b"), 150), ((), 100)], 0.001, 0.001, True),
        # Three overlapping on one meter, one of them also on a second (with another there).
        Plan(
            "M-depot",
            [
                (("V-a",), 90),
                (("V-a", "V-b"), 60),
                (("V-a", "V-b", "V-c"), 40),
                (("V-b", "V-c"), 50),
                (("V-c",), 70),
                ((), 300),
            ],
            0.0015,
            0.001,
        ),
        Plan("M-away", [(("V-c",), 80), (("V-c", "V-d"), 30), (("V-d",), 120)], 0.0008, 0.001),
        # A single minute: fewer than the parameters.
        Plan("M-short", [(("V-short",), 1)], 0.001, 0.001),
    ]
    rows = hand_made(plans)
    expected = reference(rows)
    assert_same(fitted(rows), expected)
    assert "V-twin-a" in expected and not any(k.startswith("M-") for k in expected)
    assert expected["V-twin-a"].reason == expected["V-twin-b"].reason
    assert str(expected["V-twin-a"].reason).startswith("not identifiable")
    assert expected["V-short"].reason == "too few minutes to fit"
    for vehicle_id in ("V-alone", "V-busy", "V-a", "V-b", "V-c", "V-d"):
        assert expected[vehicle_id].estimate is not None, vehicle_id
    c = expected["V-c"].estimate
    assert c is not None and (c["minutes"], c["sharedMinutes"]) == (270, 120)
    for only in ({"V-c"}, {"V-a", "V-d"}, {"V-alone", "V-twin-b"}, {"V-idle"}):
        assert_same(fitted(rows, only), reference(rows, only))
    # A vehicle's read: only its meters' rows.
    mine = [r for r in rows if r[0] in ("M-depot", "M-away")]
    assert_same(fitted(mine, {"V-c"}), reference(mine, {"V-c"}))


@WAYS
def test_a_vehicle_and_a_meter_of_the_same_id_are_two_parameters(
    few: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ids are per kind: vehicle "X" may charge on meter "X" (and "Y" beside it on meter "Y").
    # Renamed apart, the same sessions must give the same estimates.
    monkeypatch.setattr(normals, "FEW", few)

    def sessions(meter: dict[str, str]) -> list[Row]:
        return hand_made(
            [
                Plan(meter["X"], [(("X",), 120), (("X", "Y"), 45), ((), 200)], 0.0012, 0.001),
                Plan(meter["Y"], [(("Y",), 150), (("Y", "Z"), 60), (("Z",), 90)], 0.0009, 0.001),
            ]
        )

    same = fitted(sessions({"X": "X", "Y": "Y"}))
    apart = fitted(sessions({"X": "M-X", "Y": "M-Y"}))
    assert_same(same, apart)
    assert set(same) == {"X", "Y", "Z"} and all(r.estimate for r in same.values())


@WAYS
def test_vehicles_in_another_order_than_pythons(few: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # The statements' vehicles are sorted by the database's collation, which may not be
    # Python's: the sums of a pair come in the rows' order (here descending).
    monkeypatch.setattr(normals, "FEW", few)
    plans = [
        Plan(
            "M-1",
            [(("V-b",), 90), (("V-b", "V-a"), 60), (("V-a",), 80), (("V-c", "V-b", "V-a"), 30)],
            0.001,
            0.001,
        ),
        Plan("M-2", [(("V-c",), 100), (("V-c", "V-a"), 40)], 0.001, 0.001),
    ]
    rows = hand_made(plans, seed=3)
    expected = reference(rows)
    assert all(r.estimate is not None for r in expected.values())
    assert_same(fitted(rows), expected)


@WAYS
def test_nothing_to_fit(few: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(normals, "FEW", few)
    assert fitted([]) == {}
    idle = hand_made([Plan("M-idle", [((), 1440)], 0.001, 0.001)] * 3)
    assert fitted(idle) == {} and fitted(idle, {"V-x"}) == {}


@WAYS
def test_configurations_as_columns_and_as_configs(
    few: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(normals, "FEW", few)
    rng = np.random.default_rng(7)
    rows = simulated_rows(rng, fleet_plans(rng, 60, odd=0.2), 24, split_all=True)
    table = estimate.configs(iter(rows))  # any iterable of rows
    assert len(table) == len(reference_configs(rows))
    for got, want in zip(table, reference_configs(rows), strict=True):
        assert (got.meter_id, got.vehicles, got.minutes) == (
            want.meter_id,
            want.vehicles,
            want.minutes,
        )
        for field in ("ac", "ac2", "dc", "dc_ac", "dc_dc"):
            assert np.allclose(getattr(got, field), getattr(want, field), rtol=1e-12, atol=0)
    # Configs given one by one (as before the columns) are fitted the same.
    assert_same(estimate.estimate_all(list(table)), reference(rows))
    some = {c.vehicles[0] for c in list(table)[::3] if c.vehicles}
    assert_same(estimate.estimate_all(reference_configs(rows), some), reference(rows, some))


def timed(calls: dict[str, Any], rounds: int) -> str:
    """The median wall time of each call over `rounds` rounds (the calls in turn in each, so
    that the machine's other load weighs on them alike), in ms."""
    spent: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            spent[name].append(time.perf_counter() - start)
    return ", ".join(f"{name} {statistics.median(s) * 1e3:.3f} ms" for name, s in spent.items())


def main() -> None:
    """Before (the reference) and after, for a fleet's fits and for a vehicle's."""
    # Copied through pickle: asyncpg's rows are allocated in their order as they are decoded,
    # the generator's in another (shuffled), which makes every pass over them miss the cache.
    rows = pickle.loads(pickle.dumps(fleet_rows(1)))
    vehicles = {v for r in rows for v in r[1]}
    print(f"fleet: {len(vehicles)} vehicles, {len({r[0] for r in rows})} meters, {len(rows)} rows")
    print("  " + timed({"before": lambda: reference(rows), "after": lambda: fitted(rows)}, 5))
    small = fleet_rows(2, meters=400)
    alone = next(v for v in vehicles_of(small, 1) if sum(v in r[1] for r in small) == 1)
    for label, vehicle_id in (("alone", alone), ("on a 3-vehicle meter", vehicles_of(small, 3)[0])):
        meters = {r[0] for r in small if vehicle_id in r[1]}
        mine, only = [r for r in small if r[0] in meters], {vehicle_id}
        calls = {"before": lambda: reference(mine, only), "after": lambda: fitted(mine, only)}  # noqa: B023
        print(f"a vehicle's read, {label}: {len(mine)} rows")
        print("  " + timed(calls, 3001))


def vehicles_of(rows: list[Row], size: int) -> list[str]:
    """The first vehicles of the configurations of `size` vehicles."""
    return [r[1][0] for r in rows if len(r[1]) == size]


if __name__ == "__main__":
    main()
