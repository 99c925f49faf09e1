"""The one timestamp grammar every route parses with, and the range that keeps arithmetic safe."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from kilowatch import timestamps

ACCEPTED = [
    ("2026-11-29T12:00:00Z", datetime(2026, 11, 29, 12, tzinfo=UTC)),
    ("2026-11-29t12:00:00z", datetime(2026, 11, 29, 12, tzinfo=UTC)),  # RFC 3339 §5.6
    ("2026-11-29T13:30:00+01:30", datetime(2026, 11, 29, 12, tzinfo=UTC)),
    ("2026-11-29T00:00:00-12:00", datetime(2026, 11, 29, 12, tzinfo=UTC)),
    ("2026-11-29T12:00:00-00:00", datetime(2026, 11, 29, 12, tzinfo=UTC)),
    ("2026-11-29T12:00:00+23:59", datetime(2026, 11, 28, 12, 1, tzinfo=UTC)),
    ("2026-11-29T12:00:00.5Z", datetime(2026, 11, 29, 12, 0, 0, 500000, tzinfo=UTC)),
    ("2026-11-29T12:00:00.123456Z", datetime(2026, 11, 29, 12, 0, 0, 123456, tzinfo=UTC)),
    # More than 6 fractional digits: rounded to the nearest microsecond.
    ("2026-11-29T12:00:00.1234564Z", datetime(2026, 11, 29, 12, 0, 0, 123456, tzinfo=UTC)),
    ("2026-11-29T12:00:00.123456789Z", datetime(2026, 11, 29, 12, 0, 0, 123457, tzinfo=UTC)),
    ("2026-12-31T23:59:59.9999995Z", datetime(2027, 1, 1, tzinfo=UTC)),
    # The range's edges.
    ("2000-01-01T00:00:00Z", timestamps.EARLIEST),
    ("2000-01-01T01:00:00+01:00", timestamps.EARLIEST),
    ("2099-12-31T23:59:59.999999Z", timestamps.LATEST - timedelta(microseconds=1)),
]

REFUSED = [
    "2026-11-29T12:00:00",  # no offset
    "2026-11-29 12:00:00Z",  # a space for T
    "2026-11-29T12:00:00+0100",  # no colon in the offset
    "2026-11-29T12:00:00+01",
    "2026-11-29T12:00Z",  # no seconds
    "2026-11-29T12:00:00.Z",
    "2026-11-29T12:00:00.1234567891Z",  # ten fractional digits
    "2026-11-29T12:00:00,5Z",
    "20261129T120000Z",  # basic format
    "2026-11-29T12:00:60Z",  # leap second
    "2026-11-29T24:00:00Z",
    "2026-02-29T12:00:00Z",  # not a leap year
    "2026-11-29T12:00:00+24:00",
    "2026-11-29T12:00:00Z ",
    " 2026-11-29T12:00:00Z",
    "2026-11-29T12:00:00Z\n",
    "2026-11-29T12:00:00\x00Z",
    "２０２６-11-29T12:00:00Z",  # other scripts' digits
    "+2026-11-29T12:00:00Z",
    "",
    "now",
    # Outside [2000, 2100), including what would overflow in UTC.
    "1999-12-31T23:59:59Z",
    "2000-01-01T00:30:00+01:00",
    "2100-01-01T00:00:00Z",
    "2099-12-31T23:59:59.9999999Z",  # rounds to 2100
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-12:00",
    "9999-12-31T23:59:59.9999999Z",
]


@pytest.mark.parametrize(("text", "expected"), ACCEPTED)
def test_accepted_forms_are_utc_instants(text: str, expected: datetime) -> None:
    parsed = timestamps.parse(text)
    assert parsed == expected and parsed.tzinfo is UTC


@pytest.mark.parametrize("text", REFUSED)
def test_refused_forms_raise_value_error_never_overflow(text: str) -> None:
    with pytest.raises(ValueError) as raised:
        timestamps.parse(text)
    assert str(raised.value)


@pytest.mark.parametrize("value", [None, 1764417600, 1.5, ["2026-11-29T12:00:00Z"], b"x"])
def test_non_strings_are_refused(value: object) -> None:
    with pytest.raises(ValueError):
        timestamps.parse(value)


def test_a_missing_offset_is_said_so() -> None:
    with pytest.raises(ValueError, match="offset"):
        timestamps.parse("2026-11-29T12:00:00")


@pytest.mark.parametrize("text", [text for text, _ in ACCEPTED] + REFUSED)
def test_parse_many_agrees_with_parse(text: str) -> None:
    # The ingest fast path checks a batch's timestamps at once: same grammar, same instants.
    many = timestamps.parse_many([text])
    try:
        one = timestamps.parse(text)
    except ValueError as exc:
        # parse_many does not confine (the fast path's window is narrower): only the grammar
        # and the calendar refuse there.
        assert many is None or "must be from" in str(exc)
    else:
        assert many is not None and [m.astimezone(UTC) for m in many] == [one]


def test_parse_many_keeps_offsets_and_refuses_a_batch_with_one_bad_value() -> None:
    good = ["2026-11-29T12:00:00Z", "2026-11-29T13:00:00+01:00"]
    parsed = timestamps.parse_many(good)
    assert parsed is not None
    assert parsed[1].utcoffset() == timedelta(hours=1) and parsed[0] == parsed[1]
    assert timestamps.parse_many([*good, "2026-11-29 12:00:00Z"]) is None
    assert timestamps.parse_many(["2026-11-29T12:00:00Z\n2026-11-29T12:00:00Z"]) is None
    assert timestamps.parse_many([*good, None]) is None  # type: ignore[list-item]
    assert timestamps.parse_many([]) == []


@pytest.mark.parametrize(
    "value",
    [
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))),
        datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-12))),
        datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        timestamps.LATEST,
    ],
)
def test_confine_refuses_out_of_range_without_converting(value: datetime) -> None:
    with pytest.raises(ValueError, match="must be from"):
        timestamps.confine(value)


def test_output_is_utc_with_z_and_floors_to_the_minute() -> None:
    local = datetime(2026, 11, 29, 13, 30, 45, 5, tzinfo=timezone(timedelta(hours=1)))
    assert timestamps.format_z(local) == "2026-11-29T12:30:45.000005Z"
    assert timestamps.floor_minute(local) == datetime(2026, 11, 29, 12, 30, tzinfo=UTC)
