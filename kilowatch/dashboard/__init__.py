"""The operator dashboard (SPEC §9): server-rendered pages on the rollups and the hot tables."""
