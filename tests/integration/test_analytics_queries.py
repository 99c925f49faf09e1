"""Every named query of analytics and assignments prepares against the migrated schema."""

from __future__ import annotations

import asyncpg
import pytest

from kilowatch.db import sqlfile


@pytest.mark.parametrize("package", ["kilowatch.analytics", "kilowatch.assignments"])
async def test_named_queries_prepare(conn: asyncpg.Connection, package: str) -> None:
    queries = sqlfile.load(package)
    assert queries
    for name, sql in queries.items():
        statement = await conn.prepare(sql)
        assert statement.get_parameters() is not None, name
