"""The dashboard's numbers and times for people."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kilowatch.dashboard import display, views

NBSP = "\u00a0"


def test_energy_precision_follows_its_size() -> None:
    assert display.kwh(None) == "—"
    assert display.kwh(0) == f"0{NBSP}kWh"
    assert display.kwh(0.0042) == f"0.004{NBSP}kWh"
    assert display.kwh(0.4237) == f"0.42{NBSP}kWh"
    assert display.kwh(12.345) == f"12.3{NBSP}kWh"
    assert display.kwh(3312.49) == f"3,312{NBSP}kWh"
    assert display.kwh(-1.5) == f"-1.50{NBSP}kWh"  # a loss can be negative in a partial hour


def test_ratios_are_percentages_and_missing_ones_a_dash() -> None:
    assert display.pct(0.87345) == f"87.3{NBSP}%"
    assert display.pct(1) == f"100.0{NBSP}%"
    assert display.pct(None) == "—"
    assert display.count(12345) == "12,345"


def test_ago_is_coarse() -> None:
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    assert display.ago(now - timedelta(seconds=3), now) == "just now"
    assert display.ago(now - timedelta(seconds=42), now) == "42 s ago"
    assert display.ago(now - timedelta(minutes=3, seconds=20), now) == "3 min ago"
    assert display.ago("2026-12-02T07:00:00Z", now) == "5 h ago"
    assert display.ago(now - timedelta(days=2, hours=1), now) == "2 d ago"
    assert display.ago(now + timedelta(seconds=30), now) == "in the future"
    assert display.ago(None, now) == "never"


def test_timestamps_and_spans() -> None:
    assert display.utc("2026-12-02T14:05:09Z") == "2 Dec 14:05 UTC"
    assert display.utc("2026-12-02T15:05:09+01:00", seconds=True) == "2 Dec 14:05:09 UTC"
    assert display.span(timedelta(hours=24)) == f"24{NBSP}h"
    assert display.span(timedelta(days=7)) == f"7{NBSP}d"
    assert display.span(timedelta(minutes=90)) == f"90{NBSP}min"
    assert display.minutes(130) == f"2{NBSP}min"


def test_estimate_null_says_why_and_an_estimate_shows_its_interval() -> None:
    assert display.estimate(None) == "not identifiable / not enough data"
    value = {"efficiency": 0.78, "low": 0.75, "high": 0.811, "minutes": 412, "sharedMinutes": 90}
    assert display.estimate(value) == f"78.0{NBSP}% (75.0{NBSP}% – 81.1{NBSP}%)"
    assert "412 matched minutes (90 shared" in display.estimate_detail(value)
    assert display.estimate_detail(None) == "not identifiable / not enough data"
    reason = "not identifiable: its DC never varied apart from its sharers'"
    assert display.estimate_detail(None, reason) == f"none: {reason}"


def test_coverage_order_is_not_reordered_by_rounding_noise() -> None:
    # A whole coverage summed in another order: 0.9999999999999998, not 1.0.
    items = [
        {"vehicleId": "V-2", "coverage": 1.0},
        {"vehicleId": "V-1", "coverage": 0.9999999999999998},
        {"vehicleId": "V-3", "coverage": None},
        {"vehicleId": "V-4", "coverage": 0.5},
        {"vehicleId": "V-0", "coverage": 1.0},
    ]
    ordered = [item["vehicleId"] for item in sorted(items, key=views.coverage_key)]
    assert ordered == ["V-4", "V-0", "V-1", "V-2", "V-3"]
