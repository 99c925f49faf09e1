"""The UTC days that need a history partition (SPEC §3: max age back, days ahead forward)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from kilowatch.db import partitions
from kilowatch.settings import Settings

TODAY = date(2025, 3, 1)


def test_default_range_covers_max_age_back_and_seven_days_ahead() -> None:
    days = partitions.accepted_days(Settings(), TODAY)
    # An event max_event_age_days old, at any time of today, can fall one day further back.
    assert days[0] == TODAY - timedelta(days=36)
    assert days[-1] == TODAY + timedelta(days=7)
    assert TODAY in days


def test_days_are_consecutive_and_unique() -> None:
    days = partitions.accepted_days(Settings(), TODAY)
    assert len(days) == len(set(days)) == 36 + 1 + 7
    assert all(b - a == timedelta(days=1) for a, b in zip(days, days[1:]))


def test_range_crosses_month_and_leap_day() -> None:
    settings = Settings(max_event_age_days=2, partition_days_ahead=2)
    assert partitions.accepted_days(settings, date(2024, 2, 28)) == [
        date(2024, 2, 25),
        date(2024, 2, 26),
        date(2024, 2, 27),
        date(2024, 2, 28),
        date(2024, 2, 29),
        date(2024, 3, 1),
    ]


@pytest.mark.parametrize("age, ahead", [(1, 1), (35, 7), (90, 14)])
def test_range_follows_settings(age: int, ahead: int) -> None:
    days = partitions.accepted_days(
        Settings(max_event_age_days=age, partition_days_ahead=ahead), TODAY
    )
    assert days[0] == TODAY - timedelta(days=age + 1)
    assert days[-1] == TODAY + timedelta(days=ahead)


def test_clock_skew_window_is_covered() -> None:
    # Events may be up to clock_skew_s in the future; the ahead range must cover tomorrow.
    settings = Settings()
    days = partitions.accepted_days(settings, TODAY)
    assert TODAY + timedelta(days=1) in days
