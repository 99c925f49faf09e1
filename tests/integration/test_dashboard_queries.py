"""The dashboard's own queries prepare, and read the hot tables only (never history)."""

from __future__ import annotations

import json

import asyncpg

from kilowatch.db import sqlfile

ARGS = {"live_counts": (180, 0.01), "attached_vehicles": (["M-1", "M-2"], 180)}


async def test_dashboard_queries_prepare_and_never_read_history(conn: asyncpg.Connection) -> None:
    queries = sqlfile.load("kilowatch.dashboard")
    assert set(queries) == set(ARGS)
    for name, sql in queries.items():
        statement = await conn.prepare(sql)
        assert statement.get_parameters() is not None, name
        plan = json.loads(await conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *ARGS[name]))
        text = json.dumps(plan)
        assert "_readings" not in text and "rollup_" not in text, (name, text)
