"""ISO-8601 timestamps at the API edge: offsets required on input, UTC with `Z` on output."""
from __future__ import annotations

from datetime import UTC, datetime


def parse(value: object) -> datetime:
    """An aware datetime from an ISO-8601 string with `Z` or ±hh:mm; ValueError says why not."""
    if not isinstance(value, str):
        raise ValueError("must be an ISO-8601 timestamp string with an offset")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("must be an ISO-8601 timestamp with an offset (Z or ±hh:mm)") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError("must include an offset (Z or ±hh:mm)")
    return parsed


def floor_minute(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(second=0, microsecond=0)


def format_z(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
