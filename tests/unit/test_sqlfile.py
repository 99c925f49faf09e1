"""Named SQL blocks: parsing and the shipped kilowatch.db queries."""

from __future__ import annotations

import pytest

from kilowatch.db import sqlfile

TEXT = """\
-- A file comment before any block is ignored.

-- name: first
-- $1 a number: the comment lines inside a block are stripped.
SELECT $1::int;

-- name: second
SELECT 'a -- not a comment' AS x
  -- an indented comment line
FROM t;
"""


def test_blocks_are_split_by_name() -> None:
    blocks = sqlfile.parse(TEXT)
    assert list(blocks) == ["first", "second"]


def test_comment_lines_and_trailing_semicolon_are_removed() -> None:
    blocks = sqlfile.parse(TEXT)
    assert blocks["first"] == "SELECT $1::int"
    assert "an indented comment" not in blocks["second"]
    assert "'a -- not a comment'" in blocks["second"]
    assert not blocks["second"].endswith(";")


def test_text_without_headers_has_no_blocks() -> None:
    assert sqlfile.parse("SELECT 1;\n") == {}


def test_duplicate_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="duplicate query name 'a'"):
        sqlfile.parse("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;\n")


def test_header_needs_its_own_line() -> None:
    blocks = sqlfile.parse("-- name: a\nSELECT 1; -- name: b\n")
    assert list(blocks) == ["a"]


def test_shipped_queries_load_and_are_cached() -> None:
    queries = sqlfile.load("kilowatch.db")
    assert {"create_partition", "list_partitions", "drop_partition"} <= set(queries)
    assert all(sql and not sql.endswith(";") for sql in queries.values())
    assert sqlfile.load("kilowatch.db") is queries
