"""Kilowatch: energy telemetry ingestion for EV fleets on PostgreSQL."""
