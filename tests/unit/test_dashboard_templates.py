"""Templates render what the services may return, the estimate object included (SPEC §5.3)."""

from __future__ import annotations

from datetime import UTC, datetime

from kilowatch.dashboard import assets, display
from kilowatch.dashboard.window import resolve
from kilowatch.settings import Settings

WINDOW = resolve(
    "24h", None, None, Settings(database_url="postgresql://unused/x"), datetime.now(UTC)
)
ESTIMATE = {"efficiency": 0.781, "low": 0.752, "high": 0.81, "minutes": 412, "sharedMinutes": 90}


def item(vehicle_id: str, estimate: dict[str, float] | None) -> dict[str, object]:
    return {
        "vehicleId": vehicle_id,
        "totalAcKwh": 10.0,
        "totalDcKwh": 8.0,
        "attachedDcKwh": 7.5,
        "efficiency": 0.75,
        "coverage": 0.9375,
        "lossKwh": 2.5,
        "vehicleReadings": 60,
        "meterReadings": 55,
        "belowThreshold": True,
        "estimate": estimate,
        "estimateReason": None if estimate else "too few minutes to fit",
        "faultSuspected": True,
    }


def test_the_vehicle_table_shows_an_estimate_with_its_interval_or_why_not() -> None:
    engine = assets.template_config().engine_instance
    html = engine.get_template("partials/vehicle_table.html").render(
        group={"items": [item("V-1", ESTIMATE), item("V-2", None)], "nextCursor": "abc"},
        caption="Fault suspected",
        id="faulty",
        cursor_name="faultyCursor",
        other_cursor=("cursor", None),
        window=WINDOW,
        sort="estimate",
        page_size=50,
    )
    assert display.estimate(ESTIMATE) in html  # 78.1 % (75.2 % – 81.0 %)
    assert "not identifiable / not enough data" in html
    assert 'title="too few minutes to fit"' in html  # the API's estimateReason, on hover
    assert 'aria-sort="ascending"' in html and "faultyCursor=abc" in html
    assert html.count("fault suspected") == 2
