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
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from kilowatch.analytics import normals
from kilowatch.analytics.normals import Config, Configs, Normals, configs
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
    # A fleet's fits take a while (about 0.3 s for 10,000 vehicles here): off the event loop,
    # so the worker's other requests (ingest) are not held up meanwhile.
    return await asyncio.to_thread(lambda: estimate_all(configs(rows)))


def estimate_all(rows: Iterable[Config], only: set[str] | None = None) -> dict[str, Result]:
    """Every attached vehicle's estimate (or those of `only`): one fit per distinct set of
    meters, which serves every vehicle whose meters those are. `rows`: what `configs` gives,
    or Config objects."""
    if not isinstance(rows, Configs):
        rows = configs(
            (c.meter_id, c.vehicles, c.minutes, c.ac, c.ac2, c.dc, c.dc_ac, c.dc_dc) for c in rows
        )
    results: dict[str, Result] = {}
    for group in normals.equations(rows, only):
        results.update(_solve(group))
    return results


def _solve(fits: Normals) -> dict[str, Result]:
    """The fits of `fits` (all of one size), as one stack of matrices."""
    gram, moment = fits.gram, fits.moment
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
    residual = (
        fits.yy - 2.0 * (theta * moment).sum(axis=1) + np.einsum("fi,fij,fj->f", theta, gram, theta)
    )
    free = fits.n - rank
    variance = np.maximum(residual, 0.0) / np.maximum(free, 1)
    # A parameter with weight in the null space is not pinned by the data.
    loose = np.sqrt((vectors**2 * ~keep[:, None, :]).sum(axis=2)) > 1e-6
    results: dict[str, Result] = {}
    own = (fits.fit.tolist(), fits.parameter.tolist(), fits.used.tolist(), fits.shared.tolist())
    for v, k, i, used, shared in zip(fits.targets, *own, strict=True):
        if free[k] <= 0:
            results[v] = TOO_FEW
            continue
        results[v] = _result(
            float(theta[k, i]),
            float(variance[k] * inverse[k, i, i] / diag[k, i]),
            bool(observed[k, i] and not loose[k, i]),
            used,
            shared,
        )
    return results


TOO_FEW = Result(None, "too few minutes to fit")


def _result(
    beta: float, beta_variance: float, identifiable: bool, used: int, shared: int
) -> Result:
    if not identifiable:
        return Result(None, "not identifiable: its DC never varied apart from its sharers'")
    if beta <= 0:
        return Result(None, "not identifiable: the fit gives no positive efficiency")
    efficiency = 1.0 / beta
    # math's rather than numpy's functions: a numpy call on floats costs ten times as much,
    # which was 30 ms of a fleet's 10,000 results.
    fit_se = math.sqrt(max(beta_variance, 0.0)) / beta**2  # (math.sqrt raises below 0)
    model = math.hypot(MODEL_ERROR, SHARED_MODEL_ERROR * shared / used) * efficiency
    half = Z95 * math.hypot(fit_se, model)
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
