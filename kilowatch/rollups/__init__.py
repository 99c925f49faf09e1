"""Hourly and daily rollups of SPEC §5's figures, kept exact under late data (SPEC §5.1)."""
