"""RFC 3339 timestamps at the API edge: one grammar on input for every route, UTC `Z` on output.

The grammar (RFC 3339 `date-time`, the Internet profile of ISO 8601), the same for ingested
events, analytics windows, assignments and cursors:

    YYYY-MM-DD T hh:mm:ss [.f…] offset      offset = Z | ±hh:mm

- `T` and `Z` may be lower-case (RFC 3339 §5.6 allows it);
- 1 to 9 fractional digits, rounded to the nearest microsecond (as PostgreSQL and msgspec round);
- refused: a missing offset, `±hhmm` or `±hh` offsets, a space for `T`, missing seconds, more
  than 9 fractional digits, second 60, impossible dates, and anything else;
- values are confined to [EARLIEST, LATEST) before any arithmetic, so nothing can overflow
  (year 1 at +14:00 is before year 1 in UTC) and nothing near `datetime.min`/`max` reaches
  PostgreSQL, which asyncpg would send as `-infinity`/`infinity`.

Parsing is msgspec's RFC 3339 parser behind this module's own check of the shape, for one value
(`parse`, every route) or a whole batch at once (`parse_many`, the ingest fast path), so no route
can accept a form another refuses.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

import msgspec

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)  # exclusive

# msgspec's parser checks digits, calendar and ranges, and also takes a space for `T`, ±hhmm
# offsets and any number of fractional digits; this shape, checked first, refuses those three.
# [0-9], not \d: \d also matches other scripts' digits ("２０２６").
_SHAPE = r"[0-9-]{10}[Tt][0-9:]{8}(?:\.[0-9]{1,9})?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
_ONE = re.compile(_SHAPE)
# Many values at once, one a line: the fast path checks a whole batch in one regex call.
_MANY = re.compile(rf"(?:{_SHAPE}\n)*+")
# What people send when they forget the offset: a clearer message for it.
_NO_OFFSET = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?"
)

_Aware = Annotated[datetime, msgspec.Meta(tz=True)]
# A decoder, not msgspec.convert: convert looks the type up on every call (0.7 µs against 0.2).
_decode_one = msgspec.json.Decoder(_Aware).decode
FORMAT = (
    "an RFC 3339 timestamp with an offset, like 2026-01-31T12:00:00Z or 2026-01-31T13:00:00+01:00"
)


def parse(value: object) -> datetime:
    """A UTC datetime in [EARLIEST, LATEST) from a timestamp string; ValueError says why not."""
    if not isinstance(value, str):
        raise ValueError(f"must be {FORMAT}")
    if not _ONE.fullmatch(value):
        if _NO_OFFSET.fullmatch(value):
            raise ValueError("must include an offset (Z or ±hh:mm)")
        raise ValueError(f"must be {FORMAT}")
    try:
        # The shape admits no quote or backslash: quoting the value makes it a JSON string.
        parsed = _decode_one(b'"' + value.encode() + b'"')
    except msgspec.ValidationError:  # 2026-02-30, 24:00, +24:00, a rounding past year 9999
        raise ValueError("is not a valid date and time") from None
    return confine(parsed)


def parse_many(values: list[str]) -> list[datetime] | None:
    """parse()'s grammar and conversion for many values at once, offsets kept; None if any fails.

    Not confined: the caller (ingest's fast path) compares them with a narrower window.
    """
    if not values:
        return []
    try:
        if not _MANY.fullmatch("\n".join(values) + "\n"):
            return None
        # Also refuses any value with a newline inside, which the joined check could not see.
        return msgspec.convert(values, list[_Aware])
    except (TypeError, msgspec.ValidationError):  # TypeError: a value that is not a string
        return None


def confine(value: datetime) -> datetime:
    """`value` (aware) in UTC, or ValueError outside [EARLIEST, LATEST).

    Aware datetimes compare without conversion, so this cannot overflow where `astimezone` would.
    """
    if not EARLIEST <= value < LATEST:
        raise ValueError(f"must be from {format_z(EARLIEST)} to before {format_z(LATEST)}")
    return value.astimezone(UTC)


def floor_minute(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(second=0, microsecond=0)


def format_z(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
