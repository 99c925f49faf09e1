"""Live status of meters and vehicles, read from the hot tables only (SPEC §4)."""
