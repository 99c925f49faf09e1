"""The dashboard's window picker resolves windows as the API does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kilowatch.dashboard import window
from kilowatch.settings import Settings

SETTINGS = Settings(database_url="postgresql://unused/x")
NOW = datetime(2026, 12, 2, 12, 34, 56, tzinfo=UTC)
TO = datetime(2026, 12, 2, 12, 34, tzinfo=UTC)


def test_presets_end_at_the_current_minute() -> None:
    for preset, span in (("24h", timedelta(hours=24)), ("7d", timedelta(days=7))):
        chosen = window.resolve(preset, None, None, SETTINGS, NOW)
        assert (chosen.preset, chosen.from_, chosen.to) == (preset, TO - span, TO)
    assert window.resolve("30d", None, None, SETTINGS, NOW).span == timedelta(days=30)
    assert window.resolve(None, None, None, SETTINGS, NOW).preset == "24h"
    assert window.resolve("bogus", None, None, SETTINGS, NOW).preset == "24h"


def test_a_short_max_window_shortens_the_longest_preset() -> None:
    short = Settings(database_url="postgresql://unused/x", max_window_days=7)
    assert window.resolve("30d", None, None, short, NOW).span == timedelta(days=7)


def test_custom_fields_are_utc_and_floored_to_the_minute() -> None:
    chosen = window.resolve("custom", "2026-12-01T08:00", "2026-12-01T20:30:15Z", SETTINGS, NOW)
    assert chosen.preset == "custom" and not chosen.errors
    assert chosen.from_ == datetime(2026, 12, 1, 8, tzinfo=UTC)
    assert chosen.to == datetime(2026, 12, 1, 20, 30, tzinfo=UTC)
    assert chosen.api_params() == {"from": "2026-12-01T08:00:00Z", "to": "2026-12-01T20:30:00Z"}
    assert chosen.query(sort="loss") == (
        "?window=custom&from=2026-12-01T08%3A00&to=2026-12-01T20%3A30&sort=loss"
    )
    offset = window.resolve("custom", "2026-12-01T09:00+01:00", None, SETTINGS, NOW)
    assert offset.from_ == datetime(2026, 12, 1, 8, tzinfo=UTC) and offset.to == TO


def test_a_refused_custom_window_falls_back_to_24h_and_says_why() -> None:
    backwards = window.resolve("custom", "2026-12-02T10:00", "2026-12-01T10:00", SETTINGS, NOW)
    assert backwards.preset == "24h" and backwards.to == TO
    assert [e["field"] for e in backwards.errors] == ["from"]
    too_long = window.resolve("custom", "2026-10-01T00:00", "2026-12-01T00:00", SETTINGS, NOW)
    assert [e["field"] for e in too_long.errors] == ["to"]
    garbage = window.resolve("custom", "yesterday", None, SETTINGS, NOW)
    assert [e["field"] for e in garbage.errors] == ["from"]


def test_today_starts_at_utc_midnight() -> None:
    assert window.today(NOW) == (datetime(2026, 12, 2, tzinfo=UTC), TO)
    midnight = datetime(2026, 12, 2, 0, 0, 30, tzinfo=UTC)
    assert window.today(midnight) == (midnight.replace(second=0), midnight.replace(second=0))
