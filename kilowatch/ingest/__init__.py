"""Polymorphic telemetry ingestion: validation, group commit, history + live status writes."""
