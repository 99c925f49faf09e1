"""Operator-recorded vehicle-to-meter assignments (SPEC §5)."""
