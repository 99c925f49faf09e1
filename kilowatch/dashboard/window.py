"""The window picker: 24 h, 7 d, 30 d or a custom [from, to), resolved as the API resolves it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from kilowatch import timestamps
from kilowatch.analytics import service
from kilowatch.errors import InvalidInput
from kilowatch.settings import Settings

PRESETS: dict[str, timedelta] = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
DEFAULT = "24h"


@dataclass(frozen=True)
class Window:
    preset: str  # one of PRESETS, or "custom"
    from_: datetime
    to: datetime
    errors: list[dict[str, str]] = field(default_factory=list)  # a custom window refused

    @property
    def span(self) -> timedelta:
        return self.to - self.from_

    @property
    def minutes(self) -> int:
        return int(self.span.total_seconds() // 60)

    def params(self) -> dict[str, str]:
        """The query parameters that name this window in a link."""
        if self.preset != "custom":
            return {"window": self.preset}
        return {"window": "custom", "from": _local(self.from_), "to": _local(self.to)}

    def inputs(self) -> dict[str, str]:
        """The custom form's field values (datetime-local, UTC)."""
        return {"from": _local(self.from_), "to": _local(self.to)}

    def api_params(self) -> dict[str, str]:
        """The same window as the API's `from` and `to`."""
        return {"from": timestamps.format_z(self.from_), "to": timestamps.format_z(self.to)}

    def query(self, **extra: str | None) -> str:
        """`?window=...&...` for a link to this window, with `extra` parameters (None: left out)."""
        params = {**self.params(), **{k: v for k, v in extra.items() if v is not None}}
        return "?" + urlencode(params)


def _local(value: datetime) -> str:
    """The value of an `<input type="datetime-local">`, in UTC (the dashboard shows UTC)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


_MINUTES = re.compile(r"([0-9-]{10}[Tt][0-9]{2}:[0-9]{2})((?::[0-9]{2}(?:\.[0-9]+)?)?)(.*)")


def with_offset(value: str) -> str:
    """A datetime-local value has no offset and often no seconds; the picker's fields are UTC.

    "2026-12-01T08:00" becomes "2026-12-01T08:00:00Z" (RFC 3339, as the API parses it); a
    value that does not have this shape is passed on unchanged, for the API to refuse by name.
    """
    text = value.strip()
    shaped = _MINUTES.fullmatch(text)
    if shaped is None:
        return text
    minutes, seconds, offset = shaped.groups()
    return f"{minutes}{seconds or ':00'}{offset or 'Z'}"


def resolve(
    preset: str | None,
    from_raw: str | None,
    to_raw: str | None,
    settings: Settings,
    now: datetime | None = None,
) -> Window:
    """The window a page shows; a refused custom window falls back to the default, with errors."""
    now = now or datetime.now(UTC)
    if preset == "custom" or (preset is None and (from_raw or to_raw)):
        try:
            from_, to = service.resolve_window(
                with_offset(from_raw) if from_raw else None,
                with_offset(to_raw) if to_raw else None,
                settings,
                now,
            )
        except InvalidInput as exc:
            fallback = resolve(DEFAULT, None, None, settings, now)
            return Window(fallback.preset, fallback.from_, fallback.to, exc.errors or [])
        return Window("custom", from_, to)
    chosen = preset if preset in PRESETS else DEFAULT
    to = timestamps.floor_minute(now)
    # A MAX_WINDOW_DAYS below 30 shortens the longest preset rather than refusing it.
    span = min(PRESETS[chosen], timedelta(days=settings.max_window_days))
    return Window(chosen, to - span, to)


def today(now: datetime | None = None) -> tuple[datetime, datetime]:
    """[00:00 UTC, the current minute): the "energy today" tiles' window (empty at 00:00)."""
    to = timestamps.floor_minute(now or datetime.now(UTC))
    return to.replace(hour=0, minute=0), to
