"""Settings: defaults, KILOWATCH_* variables, the DATABASE_URL alias and their validation."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from kilowatch.settings import Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Settings also reads ./.env: run from an empty directory with no KILOWATCH_* set.
    monkeypatch.chdir(tmp_path)
    for name in (
        "DATABASE_URL",
        "KILOWATCH_DATABASE_URL",
        "KILOWATCH_RETENTION_DAYS",
        "KILOWATCH_MAX_EVENT_AGE_DAYS",
        "KILOWATCH_DATA_DIR",
        "KILOWATCH_PORT",
    ):
        monkeypatch.delenv(name, raising=False)


def test_defaults_match_the_spec() -> None:
    settings = Settings()
    assert settings.database_url is None
    assert settings.data_dir == Path(".kilowatch")
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert settings.max_batch == 10_000
    assert settings.max_body_bytes == 8 * 1024 * 1024
    assert settings.clock_skew_s == 300
    assert settings.max_event_age_days == 35
    assert settings.max_queued_events == 50_000
    assert settings.retry_after_s == 1
    assert settings.partition_days_ahead == 7
    assert settings.retention_days is None
    assert settings.stale_after_s == 180
    assert settings.meter_idle_kwh == 0.01
    assert settings.max_window_days == 31
    assert settings.efficiency_threshold == 0.85


def test_plain_database_url_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://a@h/db")
    assert Settings().database_url == "postgresql://a@h/db"


def test_prefixed_database_url_wins_over_plain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://plain@h/db")
    monkeypatch.setenv("KILOWATCH_DATABASE_URL", "postgresql://prefixed@h/db")
    assert Settings().database_url == "postgresql://prefixed@h/db"


def test_prefixed_variables_are_read_and_coerced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KILOWATCH_PORT", "9001")
    monkeypatch.setenv("KILOWATCH_DATA_DIR", "/srv/kw")
    settings = Settings()
    assert settings.port == 9001
    assert settings.data_dir == Path("/srv/kw")


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("KILOWATCH_PORT=8123\nDATABASE_URL=postgresql://e@h/db\n")
    settings = Settings()
    assert settings.port == 8123
    assert settings.database_url == "postgresql://e@h/db"


def test_environment_wins_over_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("KILOWATCH_PORT=8123\n")
    monkeypatch.setenv("KILOWATCH_PORT", "8124")
    assert Settings().port == 8124


def test_retention_must_exceed_the_accepted_age() -> None:
    with pytest.raises(ValidationError, match="retention_days"):
        Settings(max_event_age_days=35, retention_days=35)
    assert Settings(max_event_age_days=35, retention_days=36).retention_days == 36


def test_retention_from_environment_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KILOWATCH_RETENTION_DAYS", "10")
    with pytest.raises(ValidationError):
        Settings()


@pytest.mark.parametrize(
    "field, value",
    [
        ("pool_size", 0),
        ("workers", 0),
        ("max_batch", 0),
        ("max_queued_events", 0),
        ("connect_timeout_s", 0),
        ("retry_after_s", 0),
        ("max_body_bytes", 10),
    ],
)
def test_out_of_range_values_are_rejected(field: str, value: int) -> None:
    with pytest.raises(ValidationError, match=field):
        Settings(**{field: value})


def test_unknown_kilowatch_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KILOWATCH_NOT_A_SETTING", "x")
    assert Settings().port == 8000
