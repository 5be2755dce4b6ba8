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
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg

from ._sql import qualified
from .errors import PartitionError

#: The clinic database's audit table: the default of the assertion helpers' ``table``.
AUDIT_TABLE = "audit.audit_logs"
#: Comment on partitions the test set-up creates; checks of production coverage ignore them.
TEST_ONLY = "pytest-clinicdb: test-only partition"

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
    test_only: bool = False

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


def read_partitions(
    conn: psycopg.Connection[Any], table: str = AUDIT_TABLE, *, production: bool = False
) -> PartitionMap:
    """The range partitions of ``table`` (default ``audit.audit_logs``), read from the catalog.

    With ``production`` the partitions the test set-up created (:data:`TEST_ONLY`)
    are left out: what remains is what the migrations and the project's own
    maintenance function made, i.e. what production has.
    """
    with conn.transaction(force_rollback=True):
        conn.execute(
            "SELECT set_config('TimeZone', 'UTC', true), set_config('DateStyle', 'ISO, YMD', true)"
        )
        row = conn.execute(
            f"SELECT {qualified('c.oid')}, pg_get_partkeydef(c.oid) FROM pg_class c "
            "WHERE c.oid = to_regclass(%s)",
            (table,),
        ).fetchone()
        if row is None:
            raise PartitionError(
                f"table {table} does not exist", hint="name a partitioned table, schema-qualified"
            )
        name, keydef = str(row[0]), row[1]
        m = re.fullmatch(r"RANGE \((.+)\)", keydef or "")
        if m is None or "," in m.group(1):
            raise PartitionError(
                f"{name} is not partitioned by range on one column ({keydef or 'not partitioned'})",
                hint="partition coverage applies to tables PARTITION BY RANGE (timestamp column)",
            )
        children = conn.execute(
            f"SELECT {qualified('c.oid')}, pg_get_expr(c.relpartbound, c.oid), "
            "coalesce(obj_description(c.oid, 'pg_class'), '') LIKE %s, "
            f"ARRAY(SELECT {qualified('s.inhrelid')} FROM pg_inherits s "
            "      WHERE s.inhparent = c.oid ORDER BY 1) "
            "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass",
            (TEST_ONLY + "%", name),
        ).fetchall()
        pmap = PartitionMap(name, m.group(1))
        ranges: list[tuple[str, str, bool, tuple[str, ...], str, str]] = []
        for child, bound, test_only, subs in children:
            subs_t = tuple(subs or ())
            if production and test_only:
                continue
            if bound == "DEFAULT":
                pmap.default = Partition(child, None, None, bound, True, subs_t)
                continue
            r = _RANGE.match(bound or "")
            if r is not None:
                ranges.append((child, bound, test_only, subs_t, r.group("lo"), r.group("hi")))
        instants = _instants(conn, [b for r in ranges for b in r[4:]])
        for child, bound, test_only, subs_t, lo, hi in ranges:
            lower, upper = instants[lo], instants[hi]
            pmap.ranges.append(Partition(child, lower, upper, bound, False, subs_t, test_only))
    pmap.ranges.sort(key=lambda p: (p.lower is not None, p.lower or dt.datetime.min))
    return pmap


def _instants(conn: psycopg.Connection[Any], literals: list[str]) -> dict[str, dt.datetime | None]:
    """Partition bound literals as instants (None: MINVALUE/MAXVALUE), read in one query."""
    out: dict[str, dt.datetime | None] = {}
    texts: dict[str, str] = {}
    for literal in literals:
        value = literal.strip()
        if value.upper() in ("MINVALUE", "MAXVALUE"):
            out[literal] = None
        elif value.startswith("'") and value.endswith("'"):
            texts[literal] = value[1:-1].replace("''", "'")
        else:
            raise PartitionError(f"cannot read partition bound {literal!r}")
    if texts:
        rows = conn.execute(
            "SELECT t::timestamptz FROM unnest(%s::text[]) WITH ORDINALITY AS u(t, i) ORDER BY i",
            (list(texts.values()),),
        ).fetchall()
        for literal, (value,) in zip(texts, rows, strict=True):
            out[literal] = value if isinstance(value, dt.datetime) else None
    return out


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
    conn: psycopg.Connection[Any],
    pmap: PartitionMap,
    start: dt.datetime,
    end: dt.datetime,
    function: str | None = None,
) -> str:
    """The statement that would cover ``[start, end)``: the maintenance function, else DDL."""
    lo, hi = month_start(start), month_start(end)
    if hi < end:
        hi = next_month(hi)
    if function is None:
        found = find_maintenance_function(conn, [pmap.table])
        function = found[0] if len(found) == 1 else None
    if function is not None:
        call = function.split("(", 1)[0]
        return f"SELECT {call}('{show_instant(lo)}', '{show_instant(hi)}');"
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


# --------------------------------------------------------------------------- the test window

_TIME_TYPES = "('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype)"


def find_audit_tables(conn: psycopg.Connection[Any]) -> list[str]:
    """Tables partitioned by range on one date/time column whose schema or name says audit."""
    rows = conn.execute(
        f"SELECT {qualified('c.oid')} FROM pg_partitioned_table pt "
        "JOIN pg_class c ON c.oid = pt.partrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = pt.partattrs[0] "
        "WHERE pt.partstrat = 'r' AND pt.partnatts = 1 AND NOT c.relispartition "
        f"AND a.atttypid IN {_TIME_TYPES} "
        "AND (n.nspname ILIKE '%%audit%%' OR c.relname ILIKE '%%audit%%') "
        "ORDER BY 1"
    ).fetchall()
    return [str(r[0]) for r in rows]


def resolve_audit_tables(
    conn: psycopg.Connection[Any],
    configured: Sequence[str] | None,
    *,
    option: str = "--clinicdb-audit-tables",
) -> list[str]:
    """The configured audit tables (each must exist and be range-partitioned), or the detected.

    ``option`` is the setting that named them, for the error's message.
    """
    if configured is None:
        return find_audit_tables(conn)
    found, wrong = [], []
    for table in configured:
        try:
            # A savepoint when a transaction is open: a malformed name raises in parse_ident
            # (to_regclass returns NULL for one from PostgreSQL 16 on).
            with conn.transaction():
                conn.execute("SELECT parse_ident(%s)", (table,))
                row = conn.execute(
                    f"SELECT {qualified('c.oid')}, c.relkind FROM pg_class c "
                    "WHERE c.oid = to_regclass(%s)",
                    (table,),
                ).fetchone()
        except (psycopg.ProgrammingError, psycopg.DataError, psycopg.NotSupportedError):
            wrong.append(f"{table} (not a table name)")
            continue
        if row is None:
            wrong.append(f"{table} (no such table)")
        elif row[1] != "p":
            wrong.append(f"{table} (not partitioned)")
        else:
            found.append(str(row[0]))
    if wrong:
        raise PartitionError(
            f"{option}: audit tables not found or not partitioned: {', '.join(wrong)}",
            hint="name tables PARTITION BY RANGE on a timestamp, schema-qualified "
            "(audit.audit_logs), or leave the option out to detect them",
        )
    return found


def find_maintenance_function(conn: psycopg.Connection[Any], tables: Sequence[str]) -> list[str]:
    """Functions in the audit tables' schemas that take (from, to) dates and create partitions.

    The name must say it makes partitions (``ensure``/``create``/``add`` … and
    ``partition``) and must not say it detaches, archives or drops them.
    """
    if not tables:
        return []
    rows = conn.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc p "
        "WHERE p.pronamespace IN (SELECT c.relnamespace FROM pg_class c "
        "                         WHERE c.oid = ANY(%s::regclass[])) "
        "AND p.prokind = 'f' AND p.pronargs = 2 AND p.proname ILIKE '%%partition%%' "
        # A function that detaches, archives or drops partitions must never be mistaken for it.
        "AND p.proname ~* '(ensure|create|add|make|maintain|extend|provision|premake)' "
        "AND p.proname !~* '(detach|drop|archive|prune|purge|remove|delete|clean|retention)' "
        f"AND p.proargtypes[0] IN {_TIME_TYPES} AND p.proargtypes[1] IN {_TIME_TYPES} "
        "ORDER BY 1",
        (list(tables),),
    ).fetchall()
    return [str(r[0]) for r in rows]


def resolve_function(conn: psycopg.Connection[Any], configured: str) -> tuple[str, int]:
    """The configured maintenance function as (regprocedure, number of arguments)."""
    lookup = "to_regprocedure" if "(" in configured else "to_regproc"
    try:
        with conn.transaction():
            row = conn.execute(
                f"SELECT p.oid::regprocedure::text, p.pronargs FROM pg_proc p "
                f"WHERE p.oid = {lookup}(%s)",
                (configured,),
            ).fetchone()
    except psycopg.Error as exc:  # e.g. more than one function of that name
        raise PartitionError(
            f"--clinicdb-partition-function {configured}: {str(exc).strip()}",
            hint="give the argument types to choose one, e.g. audit.add_partitions(date,date)",
        ) from None
    if row is None:
        raise PartitionError(
            f"--clinicdb-partition-function {configured}: no such function after the migrations",
            hint="name the function production's scheduled job calls (schema-qualified), or none",
        )
    if row[1] > 2:
        raise PartitionError(
            f"--clinicdb-partition-function {row[0]} takes {row[1]} arguments",
            hint="it is called as f(from, to), f(months ahead) or f(); write a wrapper that "
            "takes one of those",
        )
    return str(row[0]), int(row[1])


@dataclass
class TableWindow:
    """What the test set-up found and did for one audit table."""

    table: str
    migrations_until: str | None  # upper bound of the range partitions the migrations made
    migrations_cover_now: bool
    function: str | None
    production_cover_window: bool  # after the project's maintenance function, if any
    test_only: list[str] = field(default_factory=list)  # months created by plain DDL
    default: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class WindowReport:
    """The audit partitions of the test window ``[start, end)``."""

    start: str
    end: str
    tables: list[TableWindow] = field(default_factory=list)
    function_note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "tables": [t.to_dict() for t in self.tables],
            "function_note": self.function_note,
        }


def ensure_window(
    conn: psycopg.Connection[Any],
    *,
    tables: Sequence[str] | None,
    function: str | None,
    start: dt.date,
    end: dt.date,
) -> WindowReport:
    """Give every audit table range partitions for ``[start, end)`` (test set-up).

    First what production would do: the project's maintenance function (the
    configured one, else the one found beside the audit tables) is called for
    the window.  Whatever is still missing is created with plain ``CREATE
    TABLE … PARTITION OF`` and commented :data:`TEST_ONLY`, so checks of
    production coverage can tell it from what the migrations made.
    """
    lo = dt.datetime(start.year, start.month, 1, tzinfo=dt.timezone.utc)
    hi = dt.datetime(end.year, end.month, 1, tzinfo=dt.timezone.utc)
    now = dt.datetime.now(dt.timezone.utc)
    report = WindowReport(start.isoformat(), end.isoformat())
    audit = resolve_audit_tables(conn, tables)
    if not audit:
        report.function_note = "no audit table partitioned by range on a timestamp"
        return report
    before = {t: read_partitions(conn, t) for t in audit}
    call: tuple[str, int] | None = None
    if function is not None and function.lower() != "none":
        call = resolve_function(conn, function)
    elif function is None:
        found = find_maintenance_function(conn, audit)
        if len(found) == 1:
            call = (found[0], 2)
        elif found:
            report.function_note = (
                f"several maintenance function candidates ({', '.join(found)}): none called; "
                "name one with --clinicdb-partition-function"
            )
        else:
            report.function_note = "no maintenance function found beside the audit tables"
    else:
        report.function_note = (
            "maintenance function switched off (--clinicdb-partition-function none)"
        )
    if call is not None:
        _call(conn, call, lo, hi)
    for table in audit:
        pmap = read_partitions(conn, table)
        uppers = [p.upper for p in before[table].ranges if p.upper is not None]
        window = TableWindow(
            table=pmap.table,
            migrations_until=show_instant(max(uppers)) if uppers else None,
            migrations_cover_now=before[table].find(now) is not None,
            function=call[0] if call else None,
            production_cover_window=not pmap.gaps(lo, hi),
            default=pmap.default.name if pmap.default else None,
        )
        if pmap.default is None:
            for a, b in pmap.gaps(lo, hi):
                window.test_only += _create_test_partitions(conn, pmap, a, b)
        report.tables.append(window)
    return report


def _call(
    conn: psycopg.Connection[Any], call: tuple[str, int], lo: dt.datetime, hi: dt.datetime
) -> None:
    from psycopg import sql

    name, nargs = call
    fn = sql.SQL(name.split("(", 1)[0])  # regprocedure text: already quoted where needed
    with conn.transaction():
        conn.execute("SET LOCAL TimeZone = 'UTC'")
        if nargs == 2:
            conn.execute(
                sql.SQL("SELECT {}(%s, %s)").format(fn), (show_instant(lo), show_instant(hi))
            )
        elif nargs == 1:
            months = (hi.year - lo.year) * 12 + hi.month - lo.month
            conn.execute(sql.SQL("SELECT {}(%s)").format(fn), (months,))
        else:
            conn.execute(sql.SQL("SELECT {}()").format(fn))


def ensure_range(
    conn: psycopg.Connection[Any],
    table: str,
    start: dt.datetime,
    end: dt.datetime,
    function: str | None = None,
) -> tuple[str, int]:
    """Cover ``[start, end)`` of ``table`` for real (the ``clinicdb partitions`` command).

    With the project's maintenance function (``function``, or the one found
    beside the table) if there is one, else with plain DDL.  Returns how, and
    how many partitions were created.
    """
    lo, hi = month_start(start), month_start(end)
    if hi < end:
        hi = next_month(hi)
    before = len(read_partitions(conn, table).ranges)
    call: tuple[str, int] | None = None
    if function is not None and function.lower() != "none":
        call = resolve_function(conn, function)
    elif function is None:
        found = find_maintenance_function(conn, [table])
        if len(found) == 1:
            call = (found[0], 2)
    if call is not None:
        _call(conn, call, lo, hi)
        how = f"by {call[0]}"
    else:
        pmap = read_partitions(conn, table)
        for a, b in pmap.gaps(lo, hi):
            _create_partitions(conn, pmap, a, b, test_only=False)
        how = "with CREATE TABLE … PARTITION OF"
    return how, len(read_partitions(conn, table).ranges) - before


def _create_test_partitions(
    conn: psycopg.Connection[Any], pmap: PartitionMap, a: dt.datetime, b: dt.datetime
) -> list[str]:
    return _create_partitions(conn, pmap, a, b, test_only=True)


def _create_partitions(
    conn: psycopg.Connection[Any],
    pmap: PartitionMap,
    a: dt.datetime,
    b: dt.datetime,
    *,
    test_only: bool,
) -> list[str]:
    """Plain DDL for the gap ``[a, b)``, one partition per (part of a) month."""
    from psycopg import sql

    row = conn.execute(
        "SELECT n.nspname, c.relname FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = %s::regclass",
        (pmap.table,),
    ).fetchone()
    assert row is not None
    schema, relname = str(row[0]), str(row[1])
    created = []
    with conn.transaction():
        conn.execute("SET LOCAL TimeZone = 'UTC'")
        cursor = a
        while cursor < b:
            stop = min(next_month(month_start(cursor)), b)
            name = f"{relname}_p{cursor:%Y_%m}"
            taken = conn.execute(
                "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relname = %s",
                (schema, name),
            ).fetchone()
            if taken:
                name = f"{relname}_clinicdb_p{cursor:%Y_%m}"
            ident = sql.Identifier(schema, name)
            conn.execute(
                sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
                    ident,
                    sql.Identifier(schema, relname),
                    sql.Literal(show_instant(cursor)),
                    sql.Literal(show_instant(stop)),
                )
            )
            if test_only:
                conn.execute(
                    sql.SQL("COMMENT ON TABLE {} IS {}").format(
                        ident,
                        sql.Literal(f"{TEST_ONLY} (production relies on its own maintenance)"),
                    )
                )
            created.append(f"{cursor:%Y-%m}")
            cursor = stop
    return created
