"""Per-vehicle performance analytics and the vehicle-to-meter correlation (SPEC §5)."""
