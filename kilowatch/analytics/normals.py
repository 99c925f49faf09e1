"""The estimator's inputs (SPEC §5.3, analytics/estimate.py): the `*_configs` rows added up
per (meter, attached vehicles) as columns, and every fit's normal equations stacked by size.

A fleet has tens of thousands of rows and thousands of fits of 2–10 parameters: numpy
scatter-adds (np.bincount, which adds in its input's order, so the sums are those of a loop)
take both apart and put them together; a vehicle's read has a few, for which loops are cheaper
than numpy's fixed cost per call (`FEW`). Measured on a synthetic 10,000-vehicle fleet
(`python -m tests.unit.test_estimate_fits`): 1.06–1.16 s in loops, 0.25 s so.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain, count
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

# Up to this many rows (configurations) added up (fitted) in loops rather than by numpy, whose
# dozens of calls (some µs each) cost more than loops over a vehicle's read of a few: the two
# took about as long for 200–400 rows here (0.3 ms) and for 150–250 configurations (0.5 ms).
FEW = 200


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


@dataclass(frozen=True)
class Configs:
    """Configurations as columns, what `estimate_all` reads (iterated: each one's Config): the
    per-vehicle and per-pair sums of them all end to end, k of `dc` and `dc_ac` and k(k+1)/2 of
    `dc_dc` for a configuration of k vehicles, in their order."""

    meter_ids: list[str]
    vehicles: list[Sequence[str]]  # the rows' own (lists, from asyncpg)
    minutes: NDArray[np.int64]
    ac: NDArray[np.float64]
    ac2: NDArray[np.float64]
    dc: NDArray[np.float64]
    dc_ac: NDArray[np.float64]
    dc_dc: NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.meter_ids)

    def __iter__(self) -> Iterator[Config]:
        a = t = 0
        for k, (meter_id, vehicles) in enumerate(zip(self.meter_ids, self.vehicles, strict=True)):
            b, u = a + len(vehicles), t + len(vehicles) * (len(vehicles) + 1) // 2
            yield Config(
                meter_id,
                tuple(vehicles),
                int(self.minutes[k]),
                float(self.ac[k]),
                float(self.ac2[k]),
                self.dc[a:b].tolist(),
                self.dc_ac[a:b].tolist(),
                self.dc_dc[t:u].tolist(),
            )
            a, t = b, u


def configs(rows: Iterable[Any]) -> Configs:
    """The rows of the `*_configs` statements (analytics/queries.sql), one per (meter, unit,
    attached vehicles), added up per (meter, attached vehicles).

    Here rather than in SQL: an aggregate over arrays costs PostgreSQL about 10 µs a row (a
    function call per element-wise sum). Here the rows are taken apart by C loops (chain, map,
    fromiter) and added up by np.bincount, in their order (so the sums are a loop's): a
    synthetic 10,000-vehicle fleet's 74,000 rows in 190 ms, which a loop over them and their
    elements took 370–760 ms for (much of it the garbage collector's, over the lists it made).
    """
    rows = rows if isinstance(rows, list) else list(rows)
    if len(rows) <= FEW:
        return _looped_configs(rows)
    # The columns from one pass over the rows (zip(*rows) holds an iterator per row, whose
    # allocations set off the garbage collector's passes over the young rows: 250 ms some of
    # the time).
    flat = list(chain.from_iterable(rows))
    meter_ids, vehicles, minutes, ac, ac2, dc, dc_ac, dc_dc = (flat[j::8] for j in range(8))
    del flat
    n = len(meter_ids)
    # Each row's configuration, numbered by its first row, then in their order. Keyed by a
    # string (ids hold no NUL), which the collector does not track (a tuple per row set it off
    # as zip's iterators do).
    first_row: dict[str, int] = {}
    keys = map("\0".join, zip(meter_ids, map("\0".join, vehicles), strict=True))
    of_row = np.fromiter(map(first_row.setdefault, keys, count()), np.intp, n)
    first = of_row == np.arange(n)
    of_row = (np.cumsum(first) - 1)[of_row]
    firsts = np.flatnonzero(first).tolist()
    found = list(map(vehicles.__getitem__, firsts))
    k = np.fromiter(map(len, found), np.intp, len(found))
    # Each row's figures end to end (minutes, Σ AC, Σ AC², then its dc, dc_ac and dc_dc), read
    # in one pass, row by row: a pass per column took twice as long (95 ms, 48 ms so), each
    # reading the rows' objects apart from their neighbours.
    width = 3 + 2 * k + k * (k + 1) // 2
    start = np.cumsum(width) - width
    row_width = width[of_row]
    figures = chain.from_iterable(map(chain, zip(minutes, ac, ac2, strict=True), dc, dc_ac, dc_dc))
    values = np.fromiter(figures, np.float64, int(row_width.sum()))
    added = np.bincount(_ranges(start[of_row], row_width), values, int(width.sum()))
    sums = cast(NDArray[np.float64], added)  # numpy's stubs: intp, whatever the weights
    return Configs(
        list(map(meter_ids.__getitem__, firsts)),
        found,
        sums[start].astype(np.int64),  # whole minutes, exact in a float64
        sums[start + 1],
        sums[start + 2],
        sums[_ranges(start + 3, k)],
        sums[_ranges(start + 3 + k, k)],
        sums[_ranges(start + 3 + 2 * k, k * (k + 1) // 2)],
    )


def _looped_configs(rows: list[Any]) -> Configs:
    """`configs` of a few rows, in a loop over them and their elements."""
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
    columns = list(zip(*sums.values(), strict=True)) or [()] * 6
    return Configs(
        [m for m, _ in sums],
        [v for _, v in sums],
        np.array(columns[0], np.int64),
        np.array(columns[1], np.float64),
        np.array(columns[2], np.float64),
        *(np.array(list(chain.from_iterable(c)), np.float64) for c in columns[3:]),
    )


def _ranges(starts: NDArray[np.intp], counts: NDArray[np.intp]) -> NDArray[np.intp]:
    """starts[r], starts[r] + 1, … (counts[r] of them), for every r in turn."""
    ends = np.cumsum(counts)
    total = int(ends[-1]) if len(ends) else 0
    return np.repeat(starts - ends + counts, counts) + np.arange(total)


@dataclass
class Normals:
    """Fits' normal equations, all of one size, stacked (solved by a numpy call per size, not
    per fit): Gram matrices and moment vectors over the parameters (the fit's vehicles, then
    its meters' standby terms, each in order), Σ AC² and the minutes; and their targets' fit,
    parameter, minutes used and minutes shared."""

    gram: NDArray[np.float64]  # (fits, p, p)
    moment: NDArray[np.float64]  # (fits, p)
    yy: NDArray[np.float64]
    n: NDArray[np.float64]
    targets: list[str]
    fit: NDArray[np.intp]
    parameter: NDArray[np.intp]
    used: NDArray[np.int64]
    shared: NDArray[np.int64]


def _stacked(table: Configs, only: set[str] | None) -> list[Normals]:
    """The normal equations of the joint least squares of every fit, by size: scatter-adds of
    every configuration's sums into the fits it is in (each one on the fit's meters).

    Added up in the configurations' order, as a loop over each fit's would (np.bincount adds
    in its input's order), so the equations are those of the loops this replaced (kept in
    tests/unit/test_estimate_fits.py, and in _looped for a few configurations): for a
    synthetic 10,000-vehicle fleet (8,000 fits of 2–10 parameters), 60 ms here, 180–570 ms
    building each fit's matrix in lists.
    """
    sizes = np.fromiter(map(len, table.vehicles), np.intp, len(table))
    entries = list(chain.from_iterable(table.vehicles))  # every configuration's vehicles
    if not entries:
        return []
    names = sorted(set(entries))
    code = {v: i for i, v in enumerate(names)}
    vehicle = np.fromiter(map(code.__getitem__, entries), np.intp, len(entries))
    meter_code = {m: j for j, m in enumerate(sorted(set(table.meter_ids)))}
    meter = np.fromiter(map(meter_code.__getitem__, table.meter_ids), np.intp, len(table))
    nv_all, nm_all = len(names), len(meter_code)
    # Each vehicle's meters (ascending), and a fit per distinct set of them.
    pairs = np.unique(vehicle * nm_all + np.repeat(meter, sizes))
    bounds = np.searchsorted(pairs // nm_all, np.arange(nv_all + 1)).tolist()
    its_meters = (pairs % nm_all).tolist()
    targets = range(nv_all) if only is None else sorted(code[v] for v in only if v in code)
    scopes: dict[tuple[int, ...], int] = {}
    target_fit = np.array(
        [
            scopes.setdefault(tuple(its_meters[bounds[v] : bounds[v + 1]]), len(scopes))
            for v in targets
        ],
        np.intp,
    )
    if not scopes:
        return []
    fits = len(scopes)
    # The fits' meters (fm), then their configurations (pairs of a fit and a configuration:
    # every configuration of those meters, in the table's order).
    nm = np.fromiter(map(len, scopes), np.intp, fits)
    fm_meter = np.fromiter(chain.from_iterable(scopes), np.intp, int(nm.sum()))
    fm_fit = np.repeat(np.arange(fits), nm)
    per_meter = np.bincount(meter, minlength=nm_all)
    fm_count = per_meter[fm_meter]
    by_meter = np.argsort(meter, kind="stable")
    pc = by_meter[_ranges((np.cumsum(per_meter) - per_meter)[fm_meter], fm_count)]
    pf = np.repeat(fm_fit, fm_count)
    # Their vehicles (pe: a pair's configuration's vehicles), numbered in each fit in order.
    k = sizes[pc]
    pe = _ranges((np.cumsum(sizes) - sizes)[pc], k)
    pe_pair = np.repeat(np.arange(len(pc)), k)
    pe_fit = pf[pe_pair]
    found, local = np.unique(pe_fit * nv_all + vehicle[pe], return_inverse=True)
    nv = np.bincount(found // nv_all, minlength=fits)
    local -= (np.cumsum(nv) - nv)[pe_fit]
    # Each pair's standby parameter: after the fit's vehicles, its meter's in the fit's.
    fm_slot = nv[fm_fit] + np.arange(len(fm_fit)) - (np.cumsum(nm) - nm)[fm_fit]
    slot = np.repeat(fm_slot, fm_count)
    # Their pairs of vehicles (pt), as the configuration's upper triangle, row-major.
    triangle = k * (k + 1) // 2
    per_config = sizes * (sizes + 1) // 2
    pt = _ranges((np.cumsum(per_config) - per_config)[pc], triangle)
    pt_pair = np.repeat(np.arange(len(pc)), triangle)
    upper = _upper(int(sizes.max()))
    pt_k = k[pt_pair]
    within = _ranges(np.zeros(len(pc), np.intp), triangle)
    pe_first = (np.cumsum(k) - k)[pt_pair]
    la = local[pe_first + upper[0][pt_k, within]]
    lb = local[pe_first + upper[1][pt_k, within]]
    # Into one buffer of every fit's matrix (and one of moments), at each fit's offset.
    p = nv + nm
    g_first = np.cumsum(p * p) - p * p
    b_first = np.cumsum(p) - p
    pp, g0, b0 = p[pf], g_first[pf], b_first[pf]
    pp_e, g0_e, slot_e = pp[pe_pair], g0[pe_pair], slot[pe_pair]
    pp_t, g0_t = pp[pt_pair], g0[pt_pair]
    apart = la != lb
    dc, dc_dc = table.dc[pe], table.dc_dc[pt]
    gram = np.bincount(
        np.concatenate(
            (
                g0 + slot * (pp + 1),
                g0_e + local * pp_e + slot_e,
                g0_e + slot_e * pp_e + local,
                g0_t + la * pp_t + lb,
                (g0_t + lb * pp_t + la)[apart],
            )
        ),
        np.concatenate((table.minutes[pc], dc, dc, dc_dc, dc_dc[apart])),
        int(g_first[-1] + p[-1] * p[-1]),
    )
    moment = np.bincount(
        np.concatenate((b0 + slot, b0[pe_pair] + local)),
        np.concatenate((table.ac[pc], table.dc_ac[pe])),
        int(b_first[-1] + p[-1]),
    )
    yy = cast(NDArray[np.float64], np.bincount(pf, table.ac2[pc], fits))
    n = cast(NDArray[np.float64], np.bincount(pf, table.minutes[pc], fits))
    # The targets' own figures: their parameters, and their minutes (all on the fit's meters).
    target = np.asarray(targets, np.intp)
    parameter = (
        np.searchsorted(found, target_fit * nv_all + target) - (np.cumsum(nv) - nv)[target_fit]
    )
    on = np.repeat(table.minutes, sizes)
    used = np.bincount(vehicle, on, nv_all).astype(np.int64)[target]
    together = np.where(np.repeat(sizes, sizes) > 1, on, 0)
    shared = np.bincount(vehicle, together, nv_all).astype(np.int64)[target]
    groups = []
    for size in np.unique(p).tolist():
        members = np.flatnonzero(p == size)
        position = np.zeros(fits, np.intp)
        position[members] = np.arange(len(members))
        chosen = np.flatnonzero(p[target_fit] == size)
        cells = g_first[members][:, None] + np.arange(size * size)
        groups.append(
            Normals(
                gram[cells].reshape(-1, size, size),
                moment[b_first[members][:, None] + np.arange(size)],
                yy[members],
                n[members],
                [names[v] for v in target[chosen].tolist()],
                position[target_fit[chosen]],
                parameter[chosen],
                used[chosen],
                shared[chosen],
            )
        )
    return groups


def _looped(table: Configs, only: set[str] | None) -> list[Normals]:
    """`_stacked` of a few configurations, in loops over each fit's (as `_stacked` adds up)."""
    minutes, ac, ac2 = table.minutes.tolist(), table.ac.tolist(), table.ac2.tolist()
    dc, dc_ac, dc_dc = table.dc.tolist(), table.dc_ac.tolist(), table.dc_dc.tolist()
    by_meter: dict[str, list[int]] = defaultdict(list)
    meters_of: dict[str, set[str]] = defaultdict(set)
    first: list[tuple[int, int]] = []  # of each configuration's in dc (and dc_ac), dc_dc
    e = t = 0
    for k, (meter_id, vehicles) in enumerate(zip(table.meter_ids, table.vehicles, strict=True)):
        by_meter[meter_id].append(k)
        for v in vehicles:
            meters_of[v].add(meter_id)
        first.append((e, t))
        e, t = e + len(vehicles), t + len(vehicles) * (len(vehicles) + 1) // 2
    scopes: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for vehicle_id, its_meters in meters_of.items():
        if only is None or vehicle_id in only:
            scopes[tuple(sorted(its_meters))].append(vehicle_id)
    by_size: dict[int, list[Any]] = defaultdict(list)
    for scope, targets in scopes.items():
        rows = [k for m in scope for k in by_meter[m]]
        vehicles = sorted({v for k in rows for v in table.vehicles[k]})
        # Apart: a vehicle and a meter may have the same id.
        index = {v: i for i, v in enumerate(vehicles)}
        slot = {m: len(vehicles) + j for j, m in enumerate(scope)}
        p = len(index) + len(slot)
        g = [[0.0] * p for _ in range(p)]
        b = [0.0] * p
        yy = n = 0.0
        used: dict[str, int] = dict.fromkeys(targets, 0)
        shared = dict(used)
        for k in rows:
            s = slot[table.meter_ids[k]]
            gs = g[s]
            gs[s] += minutes[k]
            b[s] += ac[k]
            yy += ac2[k]
            n += minutes[k]
            ids = [index[v] for v in table.vehicles[k]]
            for v in table.vehicles[k]:
                if v in used:
                    used[v] += minutes[k]
                    if len(ids) > 1:
                        shared[v] += minutes[k]
            e, t = first[k]
            for a, i in enumerate(ids):
                gi = g[i]
                gi[s] += dc[e + a]
                gs[i] += dc[e + a]
                b[i] += dc_ac[e + a]
                for j in ids[a:]:
                    gi[j] += dc_dc[t]
                    if i != j:
                        g[j][i] += dc_dc[t]
                    t += 1
        by_size[p].append((g, b, yy, n, [(v, index[v], used[v], shared[v]) for v in targets]))
    groups = []
    for fits in by_size.values():
        chosen = [(f, *target) for f, fit in enumerate(fits) for target in fit[4]]
        groups.append(
            Normals(
                np.array([fit[0] for fit in fits]),
                np.array([fit[1] for fit in fits]),
                np.array([fit[2] for fit in fits]),
                np.array([fit[3] for fit in fits]),
                [target[1] for target in chosen],
                np.array([target[0] for target in chosen], np.intp),
                np.array([target[2] for target in chosen], np.intp),
                np.array([target[3] for target in chosen], np.int64),
                np.array([target[4] for target in chosen], np.int64),
            )
        )
    return groups


def _upper(k: int) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Row and column of each element of a k-vehicle configuration's upper triangle,
    row-major, by k (rows of 0 … k)."""
    rows = np.zeros((k + 1, k * (k + 1) // 2), np.intp)
    columns = np.zeros_like(rows)
    for size in range(1, k + 1):
        a, b = np.triu_indices(size)
        rows[size, : len(a)], columns[size, : len(b)] = a, b
    return rows, columns


def equations(table: Configs, only: set[str] | None = None) -> list[Normals]:
    """The normal equations of every attached vehicle's fit (or those of `only`'s), one fit
    per distinct set of meters, stacked by size."""
    return _looped(table, only) if len(table) <= FEW else _stacked(table, only)
