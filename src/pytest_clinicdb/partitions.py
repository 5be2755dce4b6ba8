"""Range partitions read from the catalog, and what they cover (no pytest import).

Bounds come from ``pg_get_expr(relpartbound, oid)``, whose text depends on the
session's ``TimeZone`` and ``DateStyle``.  They are read inside a savepoint
that sets both (UTC, ISO) and is rolled back, and turned into instants by the
server itself in that same savepoint — so the result is right in any session
time zone and leaves the caller's session as it was.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

import psycopg

from .errors import ClinicDBError

AUDIT_TABLE = "audit.audit_logs"
MAINTENANCE_FUNCTION = "audit.ensure_monthly_partitions(timestamptz,timestamptz)"

_RANGE = re.compile(r"^FOR VALUES FROM \((?P<lo>.*)\) TO \((?P<hi>.*)\)$", re.S)


@dataclass(frozen=True)
class Partition:
    """One partition: its bounds (None = MINVALUE/MAXVALUE) and its own partitions, if any."""

    name: str
    lower: dt.datetime | None
    upper: dt.datetime | None
    bound: str
    is_default: bool = False
    subpartitions: tuple[str, ...] = ()

    def contains(self, ts: dt.datetime) -> bool:
        return (self.lower is None or self.lower <= ts) and (self.upper is None or ts < self.upper)

    def describe(self) -> str:
        if self.is_default:
            return f"{self.name} (DEFAULT)"
        lower, upper = show_instant(self.lower, "MINVALUE"), show_instant(self.upper, "MAXVALUE")
        return f"{self.name} [{lower}, {upper})"


@dataclass
class PartitionMap:
    """The range partitions of one table, ordered by lower bound, and its DEFAULT partition."""

    table: str
    key: str
    ranges: list[Partition] = field(default_factory=list)
    default: Partition | None = None

    def find(self, ts: dt.datetime) -> Partition | None:
        """The range partition holding ``ts`` (None: no range partition; see :attr:`default`)."""
        for p in self.ranges:
            if p.contains(ts):
                return p
        return None

    def neighbours(self, ts: dt.datetime) -> tuple[Partition | None, Partition | None]:
        """The nearest range partitions before and after ``ts``."""
        before = [p for p in self.ranges if p.upper is not None and p.upper <= ts]
        after = [p for p in self.ranges if p.lower is not None and p.lower > ts]
        return (before[-1] if before else None, after[0] if after else None)

    def gaps(self, start: dt.datetime, end: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
        """Sub-ranges of ``[start, end)`` that no range partition covers."""
        found = []
        cursor = start
        for p in self.ranges:
            lo = p.lower or cursor
            hi = p.upper
            if hi is not None and hi <= cursor:
                continue
            if lo > cursor:
                found.append((cursor, min(lo, end)))
            cursor = max(cursor, hi) if hi is not None else end
            if cursor >= end:
                break
        if cursor < end:
            found.append((cursor, end))
        return [(a, b) for a, b in found if a < b]


def show_instant(ts: dt.datetime | None, none: str = "") -> str:
    """``ts`` as ``YYYY-MM-DD HH:MM:SS+00`` (UTC), or ``none`` for no bound."""
    return ts.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S+00") if ts else none


def read_partitions(conn: psycopg.Connection[Any], table: str = AUDIT_TABLE) -> PartitionMap:
    """The range partitions of ``table`` (default ``audit.audit_logs``), read from the catalog."""
    with conn.transaction(force_rollback=True):
        conn.execute("SET LOCAL TimeZone = 'UTC'")
        conn.execute("SET LOCAL DateStyle = 'ISO, YMD'")
        row = conn.execute(
            "SELECT c.oid::regclass::text, pg_get_partkeydef(c.oid) FROM pg_class c "
            "WHERE c.oid = to_regclass(%s)",
            (table,),
        ).fetchone()
        if row is None:
            raise ClinicDBError(
                f"table {table} does not exist", hint="name a partitioned table, schema-qualified"
            )
        name, keydef = str(row[0]), row[1]
        m = re.fullmatch(r"RANGE \((.+)\)", keydef or "")
        if m is None or "," in m.group(1):
            raise ClinicDBError(
                f"{name} is not partitioned by range on one column ({keydef or 'not partitioned'})",
                hint="partition coverage applies to tables PARTITION BY RANGE (timestamp column)",
            )
        children = conn.execute(
            "SELECT c.oid::regclass::text, pg_get_expr(c.relpartbound, c.oid), c.relkind, "
            "ARRAY(SELECT s.inhrelid::regclass::text FROM pg_inherits s "
            "      WHERE s.inhparent = c.oid ORDER BY 1) "
            "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass",
            (name,),
        ).fetchall()
        pmap = PartitionMap(name, m.group(1))
        for child, bound, _kind, subs in children:
            subs_t = tuple(subs or ())
            if bound == "DEFAULT":
                pmap.default = Partition(child, None, None, bound, True, subs_t)
                continue
            r = _RANGE.match(bound or "")
            if r is None:
                continue
            lower = _instant(conn, r.group("lo"))
            upper = _instant(conn, r.group("hi"))
            pmap.ranges.append(Partition(child, lower, upper, bound, False, subs_t))
    pmap.ranges.sort(key=lambda p: (p.lower is not None, p.lower or dt.datetime.min))
    return pmap


def _instant(conn: psycopg.Connection[Any], literal: str) -> dt.datetime | None:
    literal = literal.strip()
    if literal.upper() in ("MINVALUE", "MAXVALUE"):
        return None
    if not (literal.startswith("'") and literal.endswith("'")):
        raise ClinicDBError(f"cannot read partition bound {literal!r}")
    row = conn.execute("SELECT %s::timestamptz", (literal[1:-1].replace("''", "'"),)).fetchone()
    assert row is not None
    value = row[0]
    return value if isinstance(value, dt.datetime) else None


def as_instant(ts: dt.datetime | dt.date | str) -> dt.datetime:
    """A timezone-aware instant; naive datetimes and dates are taken as UTC."""
    if isinstance(ts, str):
        ts = dt.datetime.fromisoformat(ts)
    if not isinstance(ts, dt.datetime):
        ts = dt.datetime(ts.year, ts.month, ts.day)
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=dt.timezone.utc)


def month_start(ts: dt.datetime) -> dt.datetime:
    ts = ts.astimezone(dt.timezone.utc)
    return dt.datetime(ts.year, ts.month, 1, tzinfo=dt.timezone.utc)


def next_month(ts: dt.datetime) -> dt.datetime:
    total = ts.year * 12 + ts.month
    return dt.datetime(total // 12, total % 12 + 1, 1, tzinfo=dt.timezone.utc)


def covering_sql(
    conn: psycopg.Connection[Any], pmap: PartitionMap, start: dt.datetime, end: dt.datetime
) -> str:
    """The statement that would cover ``[start, end)``: the maintenance function, else DDL."""
    lo, hi = month_start(start), month_start(end)
    if hi < end:
        hi = next_month(hi)
    has_fn = conn.execute("SELECT to_regprocedure(%s) IS NOT NULL", (MAINTENANCE_FUNCTION,))
    row = has_fn.fetchone()
    if pmap.table == AUDIT_TABLE and row and row[0]:
        lo_text, hi_text = show_instant(lo), show_instant(hi)
        return f"SELECT audit.ensure_monthly_partitions('{lo_text}', '{hi_text}');"
    statements = []
    month = lo
    while month < hi:
        stop = next_month(month)
        statements.append(
            f"CREATE TABLE {pmap.table}_p{month:%Y_%m} PARTITION OF {pmap.table} "
            f"FOR VALUES FROM ('{show_instant(month)}') TO ('{show_instant(stop)}');"
        )
        month = stop
    return " ".join(statements)
