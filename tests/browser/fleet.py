"""The browser tests' fleet, browser flags and keys."""

from __future__ import annotations

import os
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
# A small fleet, more than a day of it, so that 24 h and 7 d differ.
VEHICLES, METERS, HOURS, SEED = 30, 24, 30, 11
# Statuses stay live for the whole session: a slow machine must not see the fleet go stale
# between a page and the API call it is compared with (both use this same setting).
STALE_AFTER_S = 3600
OPERATOR, DEVICE = "browser-operator-key-123", "browser-device-key-456"
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("KILOWATCH_SCREENSHOT_DIR", ROOT / "docs"))
