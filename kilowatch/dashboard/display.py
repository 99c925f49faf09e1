"""Numbers and times for people: the dashboard's Jinja filters (the browser tests use them too)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

DASH = "—"  # no value: a ratio with a zero denominator, a reading that never came
NBSP = "\u00a0"  # between a number and its unit: a narrow table column never splits them
NO_ESTIMATE = "not identifiable / not enough data"


def kwh(value: float | None) -> str:
    """Energy with a precision that suits its size: 0.004 kWh, 0.42 kWh, 12.3 kWh, 1,234 kWh."""
    if value is None:
        return DASH
    size = abs(value)
    if size == 0:
        return f"0{NBSP}kWh"
    if size < 0.1:  # a charger's standby draw in a minute
        return f"{value:,.3f}{NBSP}kWh"
    if size < 10:
        return f"{value:,.2f}{NBSP}kWh"
    if size < 1000:
        return f"{value:,.1f}{NBSP}kWh"
    return f"{value:,.0f}{NBSP}kWh"


def pct(value: float | None) -> str:
    """A ratio as a percentage with one decimal: 0.8734 -> 87.3 %."""
    return DASH if value is None else f"{value * 100:.1f}{NBSP}%"


def count(value: int | None) -> str:
    return DASH if value is None else f"{value:,}"


def number(value: float | None, unit: str = "", digits: int = 1) -> str:
    """A plain measurement (°C, V, % of charge) with its unit."""
    if value is None:
        return DASH
    text = f"{value:,.{digits}f}"
    return f"{text}{NBSP}{unit}" if unit else text


def ago(value: datetime | str | None, now: datetime | None = None) -> str:
    """How long ago, coarsely: just now, 42 s ago, 3 min ago, 5 h ago, 2 d ago."""
    if value is None:
        return "never"
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    seconds = ((now or datetime.now(UTC)) - when).total_seconds()
    if seconds < 0:
        return "in the future"  # a device clock ahead of ours (up to CLOCK_SKEW_S is accepted)
    if seconds < 10:
        return "just now"
    if seconds < 60:
        return f"{seconds:.0f} s ago"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min ago"
    if seconds < 86400:
        return f"{seconds // 3600:.0f} h ago"
    return f"{seconds // 86400:.0f} d ago"


def utc(value: datetime | str | None, seconds: bool = False) -> str:
    """A timestamp for reading: 2 Dec 14:05 UTC."""
    if value is None:
        return DASH
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    when = when.astimezone(UTC)
    clock = when.strftime("%H:%M:%S" if seconds else "%H:%M")
    return f"{when.day} {when:%b} {clock} UTC"


def minutes(seconds: float | None) -> str:
    """A lag for reading: 40 s, 3 min, 2 h."""
    if seconds is None:
        return DASH
    if seconds < 90:
        return f"{max(seconds, 0):.0f}{NBSP}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}{NBSP}min"
    return f"{seconds / 3600:.0f}{NBSP}h"


def span(delta: timedelta) -> str:
    """A window's length: 24 h, 48 h, 7 d, 90 min."""
    minutes = int(delta.total_seconds() // 60)
    if minutes % 1440 == 0 and minutes > 2880:
        return f"{minutes // 1440}{NBSP}d"
    if minutes % 60 == 0:
        return f"{minutes // 60}{NBSP}h"
    return f"{minutes}{NBSP}min"


def estimate(value: dict[str, Any] | None) -> str:
    """SPEC §5.3's estimate: its efficiency and 95 % interval, or why there is none."""
    if value is None:
        return NO_ESTIMATE
    return f"{pct(value['efficiency'])} ({pct(value['low'])} – {pct(value['high'])})"


def estimate_detail(value: dict[str, Any] | None, reason: str | None = None) -> str:
    """The estimate with its interval and minutes, or the API's `estimateReason` for none."""
    if value is None:
        return f"none: {reason}" if reason else NO_ESTIMATE
    return (
        f"{estimate(value)}, 95 % interval, from {count(value['minutes'])} matched minutes "
        f"({count(value['sharedMinutes'])} shared with another vehicle)"
    )


FILTERS = {
    "kwh": kwh,
    "pct": pct,
    "count": count,
    "number": number,
    "ago": ago,
    "utc": utc,
    "span": span,
    "minutes": minutes,
    "estimate": estimate,
    "estimate_detail": estimate_detail,
}
