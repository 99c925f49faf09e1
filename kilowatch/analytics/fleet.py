"""Fleet-wide analytics (SPEC §5.2): the fleet summary, the vehicles and meters listings.

Every figure is a sum over the window's rollup rows and the raw rows the rollups cannot answer
(kilowatch_window), in one snapshot. A vehicle or meter is listed when it has a reading in the
window; a vehicle's figures are those of the per-vehicle endpoint for the same window.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
from datetime import datetime
from typing import Any

from kilowatch import timestamps
from kilowatch.analytics import estimate
from kilowatch.db import sqlfile
from kilowatch.db.gateway import Conn
from kilowatch.db.memo import Memo
from kilowatch.errors import InvalidInput
from kilowatch.rollups import window
from kilowatch.rollups.plan import HOUR
from kilowatch.settings import Settings


def _queries() -> dict[str, str]:
    return sqlfile.load("kilowatch.analytics")


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def encode_cursor(key: float | None, last_id: str) -> str:
    raw = json.dumps([key, last_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[float | None, str | None]:
    """(sort key, last id) of a cursor this API issued; (None, None) for the first page."""
    if not cursor:
        return None, None
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        key, last_id = json.loads(raw)
        if (key is not None and not isinstance(key, int | float)) or isinstance(key, bool):
            raise ValueError("key")
        if not isinstance(last_id, str) or not last_id or "\x00" in last_id:
            raise ValueError("id")
        return (None if key is None else float(key)), last_id
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError) as exc:
        raise InvalidInput(
            "Invalid cursor",
            errors=[{"field": "cursor", "message": "not a cursor this API issued"}],
        ) from exc


async def _window(
    conn: Conn, from_: datetime, to: datetime, *, raw: bool, days: bool = True
) -> window.Window:
    if raw:
        return window.raw(from_, to)
    return await window.read(conn, from_, to, days=days)


async def summary(
    conn: Conn,
    settings: Settings,
    from_: datetime,
    to: datetime,
    hourly: bool,
    *,
    raw: bool = False,
    memo: Memo | None = None,
) -> dict[str, Any]:
    """GET /v1/analytics/fleet; `raw`: the same from raw history alone (the reference);
    `memo`: where a window read from rollup rows alone is kept and found again."""
    threshold = settings.efficiency_threshold
    async with window.snapshot(conn):
        w = await _window(conn, from_, to, raw=raw, days=not hourly)
        key = _memo_key(w, memo, "summary", from_, to, hourly, threshold, settings.estimate)
        if (kept := memo.get(key) if memo is not None else None) is not None:
            return copy.deepcopy(kept)
        row = await conn.fetchrow(_queries()["fleet_summary"], *w.fleet_args(), threshold)
        fitted = await _fleet_fits(conn, w, memo) if settings.estimate else {}
    assert row is not None
    # Suspected: below threshold by its estimate, or by the rule where it has none.
    suspected = sum(
        1 for r in fitted.values() if r.estimate and r.estimate["efficiency"] < threshold
    ) + sum(1 for v in row["below_ids"] if v not in fitted or fitted[v].estimate is None)
    total_ac, attached = float(row["total_ac"]), float(row["attached_dc"])
    total_dc, meter_ac = float(row["total_dc"]), float(row["meter_ac"])
    below = int(row["below_threshold"])
    result: dict[str, Any] = {
        "from": timestamps.format_z(from_),
        "to": timestamps.format_z(to),
        "vehicles": int(row["vehicles"]),
        "meters": int(row["meters"]),
        "totalAcKwh": total_ac,
        "totalDcKwh": total_dc,
        "attachedDcKwh": attached,
        "efficiency": _ratio(attached, total_ac),
        "coverage": _ratio(attached, total_dc),
        "lossKwh": total_ac - attached,
        "meterAcKwh": meter_ac,
        "unattributedAcKwh": float(row["unattributed_ac"]),
        "belowThreshold": below,
        "faultSuspected": suspected,
        "threshold": threshold,
    }
    if hourly:
        result["hourly"] = _hourly(from_, to, row)
    if memo is not None:
        memo.put(key, copy.deepcopy(result))
    return result


def _memo_key(w: window.Window, memo: Memo | None, *parts: Any) -> tuple[Any, ...] | None:
    """The memo key of a read of `w` (None: not kept, it reads raw minutes or has no memo)."""
    version = w.version() if memo is not None else None
    return None if version is None else (*parts, version)


async def _fleet_fits(conn: Conn, w: window.Window, memo: Memo | None) -> dict[str, Any]:
    """Every vehicle's estimate over `w`, kept in `memo` when the window allows: the fleet
    summary's count and the listings sorted or filtered by the estimate share them, whether
    they read the window by hours (the hourly summary) or by days, and computed once for
    reads that run at the same time."""
    if memo is None:
        return await estimate.of_fleet(conn, w)
    span = w.span()
    key = None if span is None else ("fits", *span)
    fitted: dict[str, Any] = await memo.shared(key, lambda: estimate.of_fleet(conn, w))
    return fitted


def _hourly(from_: datetime, to: datetime, row: Any) -> list[dict[str, Any]]:
    found = {
        hour: (ac, dc, att, meter)
        for hour, ac, dc, att, meter in zip(
            row["hours"],
            row["hour_ac"],
            row["hour_dc"],
            row["hour_attached_dc"],
            row["hour_meter_ac"],
            strict=True,
        )
    }
    hours = []
    hour = from_.replace(minute=0)
    while hour < to:
        ac, dc, att, meter = found.get(hour, (0.0, 0.0, 0.0, 0.0))
        hours.append(
            {
                "hour": timestamps.format_z(hour),
                "totalAcKwh": ac,
                "totalDcKwh": dc,
                "attachedDcKwh": att,
                "efficiency": _ratio(att, ac),
                "meterAcKwh": meter,
            }
        )
        hour += HOUR
    return hours


async def vehicles(
    conn: Conn,
    settings: Settings,
    from_: datetime,
    to: datetime,
    *,
    sort: str = "vehicleId",
    limit: int = 100,
    cursor: str | None = None,
    below_threshold: bool | None = None,
    fault_suspected: bool | None = None,
    raw: bool = False,
    memo: Memo | None = None,
) -> dict[str, Any]:
    """GET /v1/analytics/vehicles: listed by `sort` (nulls last), ties by id, keyset-paged;
    `memo` as in `summary`."""
    key, last_id = decode_cursor(cursor)
    threshold = settings.efficiency_threshold
    # Sorting by the estimate or filtering by its verdict needs every vehicle's estimate and
    # figures; otherwise the page is chosen in SQL and only its estimates are published.
    whole = sort == "estimate" or fault_suspected is not None
    async with window.snapshot(conn):
        w = await _window(conn, from_, to, raw=raw)
        memo_key = _memo_key(
            w,
            memo,
            "vehicles",
            from_,
            to,
            sort,
            limit,
            cursor,
            below_threshold,
            fault_suspected,
            threshold,
            settings.estimate,
        )
        if (kept := memo.get(memo_key) if memo is not None else None) is not None:
            return copy.deepcopy(kept)
        rows = await conn.fetch(
            _queries()["fleet_vehicles"],
            *w.fleet_args(),
            threshold,
            "vehicleId" if whole else sort,
            None if whole else key,
            None if whole else last_id,
            _EVERY if whole else limit + 1,
            below_threshold,
        )
        if not settings.estimate:
            fitted: dict[str, estimate.Result] = {}
        elif whole:
            fitted = await _fleet_fits(conn, w, memo)
        else:  # the page's estimates, from the sums of its vehicles' meters alone
            listed = {row["vehicle_id"] for row in rows}
            meters = list(rows[0]["page_meters"]) if rows else []
            fitted = await estimate.of_vehicles(conn, listed, w, meters)
    off = None if settings.estimate else estimate.OFF
    items = [_listed(row, off or fitted.get(row["vehicle_id"]), threshold) for row in rows]
    if whole:
        if fault_suspected is not None:
            items = [i for i in items if i["faultSuspected"] == fault_suspected]
        keys = [_key(i, sort) for i in items]
        order = sorted(
            range(len(items)),
            key=lambda n: (keys[n] is None, keys[n] or 0.0, items[n]["vehicleId"]),
        )
        ranked = [(keys[n], items[n]) for n in order]
        if last_id is not None:
            ranked = [(k, i) for k, i in ranked if _after(k, i["vehicleId"], key, last_id)]
        chosen = ranked[: limit + 1]
        more = len(chosen) > limit
        result = {
            "items": [i for _, i in chosen[:limit]],
            "nextCursor": encode_cursor(*_cursor_of(chosen[limit - 1])) if more else None,
        }
    else:
        more = len(rows) > limit
        last = rows[limit - 1] if more else None
        result = {
            "items": items[:limit],
            "nextCursor": encode_cursor(last["k"], last["vehicle_id"]) if last else None,
        }
    if memo is not None and limit <= _KEEP_ITEMS:
        memo.put(memo_key, copy.deepcopy(result))
    return result


# Pages up to this many items are kept (a whole-fleet listing, the dashboard's coverage view,
# would hold megabytes per entry; its fits are kept all the same).
_KEEP_ITEMS = 1000


_EVERY = 2**31 - 1  # the listing's LIMIT when every vehicle is needed


def _listed(row: Any, fitted: estimate.Result | None, threshold: float) -> dict[str, Any]:
    total_ac, attached, total_dc = row["total_ac"], row["attached_dc"], row["total_dc"]
    efficiency = row["efficiency"]
    item = {
        "vehicleId": row["vehicle_id"],
        "totalAcKwh": total_ac,
        "totalDcKwh": total_dc,
        "attachedDcKwh": attached,
        "efficiency": efficiency,
        "coverage": _ratio(attached, total_dc),
        "lossKwh": row["loss"],
        "vehicleReadings": int(row["vehicle_readings"]),
        "meterReadings": int(row["meter_readings"]),
        "belowThreshold": efficiency is not None and efficiency < threshold,
    }
    estimate.publish(item, fitted or estimate.NO_MATCHED_MINUTE, threshold)
    return item


def _key(item: dict[str, Any], sort: str) -> float | None:
    if sort == "estimate":
        return item["estimate"]["efficiency"] if item["estimate"] else None
    if sort == "efficiency":
        return item["efficiency"]  # type: ignore[no-any-return]
    if sort == "-lossKwh":
        return -item["lossKwh"]  # type: ignore[no-any-return]
    return None


def _after(k: float | None, vehicle_id: str, key: float | None, last_id: str) -> bool:
    """Whether (k, vehicle_id) comes after the cursor's (key, last_id): nulls last, then id."""
    if key is None:
        return k is None and vehicle_id > last_id
    return k is None or k > key or (k == key and vehicle_id > last_id)


def _cursor_of(ranked: tuple[float | None, dict[str, Any]]) -> tuple[float | None, str]:
    return ranked[0], ranked[1]["vehicleId"]


async def meters(
    conn: Conn,
    from_: datetime,
    to: datetime,
    *,
    sort: str = "meterId",
    limit: int = 100,
    cursor: str | None = None,
    raw: bool = False,
) -> dict[str, Any]:
    """GET /v1/analytics/meters: each meter's ledger, AC = attributed + unattributed."""
    key, last_id = decode_cursor(cursor)
    async with window.snapshot(conn):
        w = await _window(conn, from_, to, raw=raw)
        rows = await conn.fetch(
            _queries()["fleet_meters"], *w.fleet_args(), sort, key, last_id, limit + 1
        )
    items = [
        {
            "meterId": row["meter_id"],
            "acKwh": row["ac"],
            "attributedAcKwh": row["ac"] - row["idle"],
            "unattributedAcKwh": row["idle"],
            "meterReadings": int(row["meter_readings"]),
            "matchedMinutes": int(row["matched_minutes"]),
            "vehicles": int(row["vehicles"]),
        }
        for row in rows[:limit]
    ]
    more = len(rows) > limit
    last = rows[limit - 1] if more else None
    return {
        "items": items,
        "nextCursor": encode_cursor(last["k"], last["meter_id"]) if last else None,
    }
