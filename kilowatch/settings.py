"""Every setting, read from KILOWATCH_* environment variables and an optional .env."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KILOWATCH_", env_file=".env", extra="ignore")

    # Database: DATABASE_URL (or KILOWATCH_DATABASE_URL); none -> embedded PostgreSQL in data_dir.
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("KILOWATCH_DATABASE_URL", "DATABASE_URL")
    )
    data_dir: Path = Path(".kilowatch")
    pool_size: int = Field(default=8, ge=1)
    # A pooled connection idle this long is closed (the pool opens one again when needed): a
    # worker's connections go back to the database's max_connections after a burst.
    pool_idle_s: float = Field(default=300.0, gt=0)
    connect_timeout_s: float = Field(default=1.0, gt=0)
    # A request's database work (getting a connection and every statement) ends within this, or
    # the request answers 503; the server enforces it too (statement_timeout), so a runaway
    # query cannot outlive its request. SPEC §2/§3: 503 within about a second, never a hang.
    db_timeout_s: float = Field(default=1.5, gt=0)
    # The same for the fleet-wide reads (fleet summary, vehicles listing, the dashboard's views):
    # they fit every vehicle's estimate, about 0.8 s (0.25 s of fits) for 10,000 vehicles here.
    # Each of their statements still ends within DB_TIMEOUT_S (a frozen database: 503 as soon).
    analytics_timeout_s: float = Field(default=10.0, gt=0)
    # Maintenance and the rollup refresher: each statement of theirs ends within this.
    background_timeout_s: float = Field(default=60.0, gt=0)

    # HTTP
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(default=1, ge=1)
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    # Connection bounds uvicorn lacks (kilowatch/http.py). A client has this long, from opening
    # the connection (or from a later request's first byte), to send its request headers: a
    # slowloris client that never finishes them is answered 408 and dropped.
    header_timeout_s: float = Field(default=5.0, gt=0)
    # The longest wait for the next piece of a request body (an idle time, so a slow but steady
    # upload of a big batch passes): a client that stops mid-body is dropped.
    body_timeout_s: float = Field(default=10.0, gt=0)
    # An idle keep-alive connection is closed after this (uvicorn's timeout_keep_alive).
    keep_alive_timeout_s: float = Field(default=5.0, gt=0)
    # Requests in progress per worker; one more is answered 503 + Retry-After before its body is
    # read. With MAX_BODY_BYTES it bounds what a worker holds; counts requests, not idle
    # connections (uvicorn's limit_concurrency counts those too).
    max_concurrent_requests: int = Field(default=1024, ge=1)

    # Ingestion (SPEC §2)
    max_batch: int = Field(default=10_000, ge=1)
    clock_skew_s: int = Field(default=300, ge=0)
    max_event_age_days: int = Field(default=35, ge=1)
    max_queued_events: int = Field(default=50_000, ge=1)
    retry_after_s: int = Field(default=1, ge=1)
    flush_max_events: int = Field(default=2_000, ge=1)
    flush_linger_ms: float = Field(default=0.0, ge=0)
    # One flush in flight per worker: while it waits for its commit the next batch grows, and
    # fewer, larger transactions cost less CPU (2: -10 % single-event throughput on 2 cores).
    flush_concurrency: int = Field(default=1, ge=1)
    # A flush of 2,000 rows commits in about 0.1-0.3 s here; past this the database counts as
    # down (503), which SPEC §2 wants within about a second, not after a 10 s hang.
    flush_timeout_s: float = Field(default=1.5, gt=0)
    # group: group commit (the product); per_event: one transaction per event and
    # none: acknowledge without a database -- the two baselines `kilowatch bench` compares with.
    writer: Literal["group", "per_event", "none"] = "group"

    # Storage (SPEC §3)
    partition_days_ahead: int = Field(default=7, ge=1)
    partition_check_interval_s: float = Field(default=3600.0, gt=0)
    retention_days: int | None = Field(default=None, ge=1)

    # Rollups (SPEC §5.1): the refresher runs in every app (one at a time, by an advisory lock);
    # off, reads stay exact but read more raw history.
    rollup_refresh: bool = True
    rollup_interval_s: float = Field(default=5.0, gt=0)
    # The per-vehicle efficiency estimate (SPEC §5.3); off (the bench's side-by-side figure),
    # `estimate` is null and `faultSuspected` is the rule's `belowThreshold`.
    estimate: bool = True
    # Fleet-wide results (summary, vehicle listings, every vehicle's estimate) of windows read
    # from rollup rows alone, kept per worker until the rollups change (kilowatch/db/memo.py);
    # 0 keeps none (the bench's cold figures: every read computed).
    read_memo_size: int = Field(default=32, ge=0)

    # Status and analytics (SPEC §4, §5)
    stale_after_s: int = Field(default=180, ge=1)
    meter_idle_kwh: float = Field(default=0.01, ge=0)
    max_window_days: int = Field(default=31, ge=1)
    efficiency_threshold: float = Field(default=0.85, gt=0)

    # Optional API keys (comma-separated); both empty -> open API. Device keys may only ingest.
    device_api_keys: str = ""
    operator_api_keys: str = ""

    @model_validator(mode="after")
    def _retention_keeps_accepted_range(self) -> Settings:
        if self.retention_days is not None and self.retention_days <= self.max_event_age_days:
            raise ValueError(
                "retention_days must exceed max_event_age_days, or accepted events would land "
                "in dropped partitions"
            )
        return self

    @model_validator(mode="after")
    def _device_keys_need_operator_keys(self) -> Settings:
        # Device keys alone would turn auth on with no key able to read: refuse, don't guess.
        def configured(keys: str) -> bool:
            return any(key.strip() for key in keys.split(","))

        if configured(self.device_api_keys) and not configured(self.operator_api_keys):
            raise ValueError(
                "device_api_keys requires operator_api_keys: with device keys only, "
                "no key could read status, analytics or assignments"
            )
        return self
