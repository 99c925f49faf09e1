"""Each vehicle's own conversion efficiency on shared chargers (SPEC §5.3).

Model, per meter M and minute t in which M reported:

    AC(M, t) = Σᵢ DC(i, t) · βᵢ + s(M) + ε,   ηᵢ = 1 / βᵢ

over the vehicles i attached to M in t (§5's attachment), βᵢ the same on every meter i uses and
s(M) the meter's standby per minute. A vehicle's estimate is the least-squares fit over the
window's minutes on its meters (those where it has a matched minute), jointly with every
vehicle attached to them then: their minutes there pin their own βⱼ.

The fit needs only sums per (meter, set of attached vehicles) — minutes, Σ AC, Σ AC², Σ DCₖ,
Σ DCₖ·AC, Σ DCₖ·DCₗ — which the rollups keep per hour and day (rollup_config_*), so a window's
fit reads no raw history beyond what the rest of its figures read.

The interval: the fit's standard error (residual variance × the inverse normal matrix, the
"textbook" interval) combined in quadrature with a relative model error (MODEL_ERROR, plus
SHARED_MODEL_ERROR × the share of its minutes that were shared). The model is not exact, and
the residuals cannot show how: a class-1 meter's systematic bias (up to a few tenths of a
percent, the same in every minute, absorbed into the fit) and efficiency that varies with
charging power (least squares weighs full-power minutes most, the truth is energy-weighted)
move the estimate by a few thousandths however many minutes there are.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from kilowatch.db import sqlfile
from kilowatch.db.gateway import Conn
from kilowatch.rollups.window import Window

Z95 = 1.959964
# Relative standard deviation of what the least squares cannot see (see the module docstring):
# a meter's bias (≤ 0.4 % in class 1's ±1 %) and the spread of η with power, and, in proportion
# to the share of its minutes spent beside another vehicle, the sharers' own misfit leaking
# into its term. Calibrated on simulated fleets (docs/correlation.md: depot seeds 1–4 and a
# 500-vehicle week): the textbook interval alone (median ±0.0007 and ±0.0002) covered 14 % and
# 6 % of the truths there.
MODEL_ERROR = 0.004
SHARED_MODEL_ERROR = 0.006
# Eigenvalues of the scaled normal matrix below this fraction of the largest are no information.
RANK_TOLERANCE = 1e-10
# Beyond this 95 % half-width an estimate says nothing an operator can act on: null instead.
MAX_HALF_WIDTH = 0.05


@dataclass(frozen=True)
class Config:
    """A meter's minutes in the window with one set of attached vehicles, and their sums."""

    meter_id: str
    vehicles: tuple[str, ...]  # sorted; empty for minutes with nobody attached
    minutes: int
    ac: float
    ac2: float
    dc: Sequence[float]  # Σ DCₖ per attached vehicle
    dc_ac: Sequence[float]  # Σ DCₖ·AC
    dc_dc: Sequence[float]  # Σ DCₖ·DCₗ, upper triangle, row-major


def configs(rows: Iterable[Any]) -> list[Config]:
    """The rows of the `*_configs` statements (analytics/queries.sql), one per (meter, unit,
    attached vehicles), added up per (meter, attached vehicles).

    Here rather than in SQL: an aggregate over arrays costs PostgreSQL about 10 µs a row (a
    function call per element-wise sum), ten times this loop.
    """
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


@dataclass(frozen=True)
class Result:
    """A vehicle's estimate (the API's `estimate`), or None with the reason."""

    estimate: dict[str, Any] | None
    reason: str | None = None


NO_MATCHED_MINUTE = Result(None, "no matched minute in the window")
OFF = Result(None, "estimates are off (KILOWATCH_ESTIMATE=false)")


def publish(item: dict[str, Any], result: Result, threshold: float) -> None:
    """Sets `estimate`, `estimateReason` and `faultSuspected` of a vehicle's figures (which
    hold `belowThreshold`): suspected below threshold by the estimate, else by the rule."""
    item["estimate"] = dict(result.estimate) if result.estimate else None  # results are kept
    item["estimateReason"] = result.reason
    if result.estimate is None:
        item["faultSuspected"] = item["belowThreshold"]
    else:
        item["faultSuspected"] = result.estimate["efficiency"] < threshold


async def of_vehicle(conn: Conn, vehicle_id: str, w: Window, meters: list[str]) -> Result:
    """The vehicle's estimate over the window `w` (read in the caller's snapshot), from the
    sums of its meters (those with a matched minute of it)."""
    found = await of_vehicles(conn, {vehicle_id}, w, meters)
    return found.get(vehicle_id, NO_MATCHED_MINUTE)


async def of_vehicles(
    conn: Conn, vehicle_ids: set[str], w: Window, meters: list[str]
) -> dict[str, Result]:
    """The estimates of `vehicle_ids` over the window `w`, from the sums of `meters` (which
    must include every meter they had a matched minute on)."""
    if not meters:
        return {}
    query = sqlfile.load("kilowatch.analytics")["meter_configs"]
    rows = await conn.fetch(query, *w.config_args(meters))
    return estimate_all(configs(rows), only=vehicle_ids)


async def of_fleet(conn: Conn, w: Window) -> dict[str, Result]:
    """Every vehicle's estimate over the window `w` (read in the caller's snapshot)."""
    rows = await conn.fetch(sqlfile.load("kilowatch.analytics")["fleet_configs"], *w.config_args())
    # A fleet's fits take a while (about 0.5 s for 10,000 vehicles here): off the event loop,
    # so the worker's other requests (ingest) are not held up meanwhile.
    return await asyncio.to_thread(lambda: estimate_all(configs(rows)))


def estimate_all(rows: Iterable[Config], only: set[str] | None = None) -> dict[str, Result]:
    """Every attached vehicle's estimate (or those of `only`): one fit per distinct set of
    meters, which serves every vehicle whose meters those are."""
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
    # Fits of the same size solved together: one numpy call per size instead of per fit (a
    # fleet has thousands of fits of 2-6 parameters). Measured on a synthetic 10,000-vehicle
    # fleet: 345 -> 324 ms; most of what is left is building the equations in _normal.
    by_size: dict[int, list[_Normal]] = defaultdict(list)
    for scope, targets in scopes.items():
        normal = _normal(targets, [c for m in scope for c in by_meter[m]])
        by_size[len(normal.moment)].append(normal)
    results: dict[str, Result] = {}
    for group in by_size.values():
        results.update(_solve(group))
    return results


@dataclass
class _Normal:
    """One fit's normal equations: Gram matrix and moment vector over the parameters (the
    vehicles, then the meters' standby terms), Σ AC², the minutes, and each target's minutes
    used and shared."""

    targets: list[str]
    index: dict[str, int]
    gram: list[list[float]]
    moment: list[float]
    yy: float
    n: int
    used: dict[str, int]
    shared: dict[str, int]


def _normal(targets: list[str], rows: list[Config]) -> _Normal:
    """The normal equations of the joint least squares over `rows`, the configurations of the
    targets' meters."""
    vehicles = sorted({v for c in rows for v in c.vehicles})
    meters = sorted({c.meter_id for c in rows})
    index = {v: i for i, v in enumerate(vehicles)}
    nv = len(vehicles)
    index.update({m: nv + j for j, m in enumerate(meters)})
    p = nv + len(meters)
    # Accumulated in lists (a numpy element update costs ten times a list's).
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
    return _Normal(targets, index, g, b, yy, n, used, shared)


def _solve(group: list[_Normal]) -> dict[str, Result]:
    """The fits of `group` (all of one size), as one stack of matrices."""
    gram = np.array([f.gram for f in group])  # (fits, p, p)
    moment = np.array([f.moment for f in group])
    # Scaled to a unit diagonal, so that the rank test and the inverse do not depend on units.
    diag = np.diagonal(gram, axis1=1, axis2=2).copy()
    observed = diag > 0
    diag[~observed] = 1.0
    scale = np.sqrt(diag)
    values, vectors = np.linalg.eigh(gram / (scale[:, :, None] * scale[:, None, :]))
    keep = values > RANK_TOLERANCE * values.max(axis=1, keepdims=True)
    rank = keep.sum(axis=1)
    weights = np.where(keep, 1.0 / np.where(keep, values, 1.0), 0.0)
    inverse = (vectors * weights[:, None, :]) @ vectors.transpose(0, 2, 1)  # of the scaled
    theta = (inverse @ (moment / scale)[:, :, None])[:, :, 0] / scale
    yy = np.array([f.yy for f in group])
    n = np.array([f.n for f in group])
    residual = (
        yy - 2.0 * (theta * moment).sum(axis=1) + np.einsum("fi,fij,fj->f", theta, gram, theta)
    )
    free = n - rank
    variance = np.maximum(residual, 0.0) / np.maximum(free, 1)
    # A parameter with weight in the null space is not pinned by the data.
    loose = np.sqrt((vectors**2 * ~keep[:, None, :]).sum(axis=2)) > 1e-6
    results: dict[str, Result] = {}
    for k, fit in enumerate(group):
        if free[k] <= 0:
            results.update(dict.fromkeys(fit.targets, Result(None, "too few minutes to fit")))
            continue
        for v in fit.targets:
            i = fit.index[v]
            results[v] = _result(
                float(theta[k, i]),
                float(variance[k] * inverse[k, i, i] / diag[k, i]),
                bool(observed[k, i] and not loose[k, i]),
                fit.used[v],
                fit.shared[v],
            )
    return results


def _result(
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
