"""Pure parts of the checks: SQL normalisation for the lock file, partition gap arithmetic."""

from __future__ import annotations

import datetime as dt

from pytest_clinicdb._sqlsplit import normalize_sql
from pytest_clinicdb.partitions import Partition, PartitionMap

UTC = dt.timezone.utc


def test_normalize_drops_comments_and_layout_but_keeps_strings():
    a = "-- header\nCREATE TABLE t (\n  a text DEFAULT '--  not a comment'  /* note */\n);\n"
    b = "CREATE TABLE t ( a text DEFAULT '--  not a comment' );"
    assert normalize_sql(a) == normalize_sql(b)
    assert normalize_sql("SELECT 'a  b'") != normalize_sql("SELECT 'a b'")
    body = "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT  1 -- inside $$;"
    assert "SELECT  1 -- inside" in normalize_sql(body)
    assert normalize_sql("/* outer /* nested */ still */ SELECT 1") == "SELECT 1"


def month(y, m):
    return dt.datetime(y, m, 1, tzinfo=UTC)


def test_gaps_and_neighbours():
    parts = [
        Partition("p1", month(2025, 1), month(2025, 2), ""),
        Partition("p3", month(2025, 3), month(2025, 4), ""),
    ]
    pmap = PartitionMap("t", "created_at", parts)
    assert pmap.gaps(month(2024, 12), month(2025, 5)) == [
        (month(2024, 12), month(2025, 1)),
        (month(2025, 2), month(2025, 3)),
        (month(2025, 4), month(2025, 5)),
    ]
    assert pmap.gaps(month(2025, 1), month(2025, 2)) == []
    ts = dt.datetime(2025, 2, 14, tzinfo=UTC)
    assert pmap.find(ts) is None
    assert [p.name for p in pmap.neighbours(ts)] == ["p1", "p3"]
    open_ended = PartitionMap("t", "c", [Partition("old", None, month(2025, 1), "")])
    assert open_ended.gaps(month(2020, 1), month(2025, 2)) == [(month(2025, 1), month(2025, 2))]
