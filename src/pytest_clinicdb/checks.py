"""The seed and migration checks, returning findings as data (no pytest import).

Every check takes a psycopg connection (or paths) and returns a list of
:class:`Finding` — empty when all is well.  :mod:`pytest_clinicdb.asserts`
turns findings into test failures and the command line prints them; neither
has its own implementation.  Checks that run SQL do it inside a savepoint that
is rolled back, so they leave the database — and the caller's session
settings — exactly as they found them, inside ``clinic_db`` too.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from ._sql import qualified
from .errors import CheckError, SeedError
from .partitions import (
    AUDIT_TABLE,
    as_instant,
    covering_sql,
    month_start,
    next_month,
    read_partitions,
    show_instant,
)
from .seeds import disabled_triggers, schemas_or_all
from .sqlfile import execute_file, read_sql_file

UNSET = None  # app.environment never set in the session


@dataclass(frozen=True)
class Finding:
    """One thing wrong: what, and how to fix it."""

    check: str
    problem: str
    fix: str = ""

    def __str__(self) -> str:
        return f"{self.problem}\n    fix: {self.fix}" if self.fix else self.problem

    def bullet(self) -> str:
        """The finding as an indented list item (its fix on the next line)."""
        return "  - " + str(self).replace("\n", "\n    ")

    def to_dict(self) -> dict[str, str]:
        return {"check": self.check, "problem": self.problem, "fix": self.fix}


def render(title: str, findings: Sequence[Finding]) -> str:
    lines = [f"{title}: {len(findings)} problem(s)"]
    lines += [f.bullet() for f in findings]
    return "\n".join(lines)


@contextmanager
def _rolled_back(conn: psycopg.Connection[Any]) -> Iterator[None]:
    with conn.transaction(force_rollback=True):
        yield


# --------------------------------------------------------------------------- partitions


def check_partition_coverage(
    conn: psycopg.Connection[Any],
    *timestamps: dt.datetime | dt.date | str,
    start: dt.datetime | dt.date | str | None = None,
    end: dt.datetime | dt.date | str | None = None,
    table: str = AUDIT_TABLE,
    production: bool = False,
) -> list[Finding]:
    """Every timestamp, and every instant of ``[start, end)``, must fall in a range partition.

    A timestamp that only a DEFAULT partition would take is a finding too: rows
    there are silently outside the monthly scheme.  With ``production`` the
    partitions the test set-up created are not counted: what is judged is what
    the migrations and the project's maintenance function made.
    """
    if (start is None) != (end is None):
        raise CheckError("give both start and end for a range, or neither")
    pmap = read_partitions(conn, table, production=production)
    findings: list[Finding] = []
    for raw in timestamps:
        ts = as_instant(raw)
        if pmap.find(ts) is not None:
            continue
        before, after = pmap.neighbours(ts)
        near = ", ".join(p.describe() for p in (before, after) if p) or "none"
        where = (
            f"it would land in the DEFAULT partition {pmap.default.name}"
            if pmap.default
            else "an audited write at that time fails (SQLSTATE 23514)"
        )
        findings.append(
            Finding(
                "audit-partitions",
                f"{show_instant(ts)} is not covered by a range partition of {pmap.table}: {where}; "
                f"nearest partitions: {near}",
                covering_sql(conn, pmap, month_start(ts), next_month(month_start(ts))),
            )
        )
    if start is not None and end is not None:
        lo, hi = as_instant(start), as_instant(end)
        for a, b in pmap.gaps(lo, hi):
            caught = f" (caught by DEFAULT partition {pmap.default.name})" if pmap.default else ""
            findings.append(
                Finding(
                    "audit-partitions",
                    f"gap in {pmap.table}: [{show_instant(a)}, {show_instant(b)}) "
                    f"has no range partition{caught}",
                    covering_sql(conn, pmap, a, b),
                )
            )
    return findings


def check_partition_horizon(
    conn: psycopg.Connection[Any],
    *,
    months_ahead: int = 3,
    now: dt.datetime | None = None,
    table: str = AUDIT_TABLE,
    production: bool = False,
) -> list[Finding]:
    """The current month and ``months_ahead`` more must be covered (the calendar moves on)."""
    start = month_start(as_instant(now or dt.datetime.now(dt.timezone.utc)))
    end = start
    for _ in range(months_ahead + 1):
        end = next_month(end)
    findings = check_partition_coverage(
        conn, start=start, end=end, table=table, production=production
    )
    if production and findings:
        test_only = [p for p in read_partitions(conn, table).ranges if p.test_only]
        if test_only:
            note = (
                f"the tests ran only because the test set-up created {len(test_only)} test-only "
                f"partition(s) of {table}: outside tests, audited writes fail with 23514"
            )
            findings = [Finding(f.check, f"{f.problem}; {note}", f.fix) for f in findings]
    return findings


def check_default_partition_empty(
    conn: psycopg.Connection[Any], table: str = AUDIT_TABLE
) -> list[Finding]:
    """No row may sit in a DEFAULT partition (it would block creating the right partition)."""
    pmap = read_partitions(conn, table)
    if pmap.default is None:
        return []
    row = conn.execute(
        sql.SQL("SELECT count(*), min({k}), max({k}) FROM {t}").format(
            k=sql.SQL(pmap.key), t=sql.SQL(pmap.default.name)
        )
    ).fetchone()
    if not row or not row[0]:
        return []
    return [
        Finding(
            "audit-partitions",
            f"{row[0]} row(s) of {pmap.table} are in the DEFAULT partition {pmap.default.name} "
            f"({pmap.key} from {show_instant(row[1])} to {show_instant(row[2])})",
            "create the monthly partitions for those months (moving the rows out of the DEFAULT "
            "partition first): " + covering_sql(conn, pmap, as_instant(row[1]), as_instant(row[2])),
        )
    ]


def audited_timestamps(
    conn: psycopg.Connection[Any],
    run: Any,
    *,
    table: str = AUDIT_TABLE,
) -> list[dt.datetime]:
    """The audit timestamps ``run(conn)`` would write, found by running it and rolling back.

    The partitions' own check would stop an uncovered write; here the audit
    table's inserts are captured by a temporary ``BEFORE INSERT`` trigger that
    records the timestamp and lets the write through only into a temporary
    table, so nothing is written to the audit log at all.
    """
    pmap = read_partitions(conn, table)
    found: list[dt.datetime] = []
    with _rolled_back(conn):
        conn.execute("CREATE TEMP TABLE clinicdb_audited (ts timestamptz) ON COMMIT DROP")
        conn.execute(
            sql.SQL(
                "CREATE FUNCTION pg_temp.clinicdb_capture() RETURNS trigger "
                "LANGUAGE plpgsql AS $f$ BEGIN "
                "INSERT INTO pg_temp.clinicdb_audited VALUES (NEW.{k}); RETURN NULL; END $f$"
            ).format(k=sql.Identifier(pmap.key))
        )
        conn.execute(
            sql.SQL(
                "CREATE TRIGGER clinicdb_capture BEFORE INSERT ON {t} "
                "FOR EACH ROW EXECUTE FUNCTION pg_temp.clinicdb_capture()"
            ).format(t=sql.SQL(pmap.table))
        )
        run(conn)
        rows = conn.execute("SELECT ts FROM clinicdb_audited ORDER BY ts").fetchall()
        found = [r[0] for r in rows]
    return found


# --------------------------------------------------------------------------- triggers, audit


def check_triggers_enabled(
    conn: psycopg.Connection[Any], schemas: Sequence[str] | None = None
) -> list[Finding]:
    """No trigger of ``schemas`` (default: every user schema) may be disabled."""
    return [
        Finding(
            "triggers",
            f"trigger {name} is disabled",
            "ALTER TABLE {} ENABLE TRIGGER {};".format(*name.rsplit(".", 1)),
        )
        for name in disabled_triggers(conn, schemas)
    ]


def check_audited(
    conn: psycopg.Connection[Any],
    table: str,
    record_id: object,
    action: str,
    *,
    audit_table: str = AUDIT_TABLE,
) -> list[Finding]:
    """An audit row must exist for ``action`` on ``table``'s row ``record_id``.

    ``audit_table`` has the clinic database's audit columns: ``table_schema``,
    ``table_name``, ``record_id`` and ``action``.
    """
    schema, _, name = table.rpartition(".")
    schema = schema or "clinic"
    rows = conn.execute(
        sql.SQL(
            "SELECT action, count(*) FROM {} WHERE table_schema = %s "
            "AND table_name = %s AND record_id = %s GROUP BY action ORDER BY action"
        ).format(sql.SQL(read_partitions(conn, audit_table).table)),
        (schema, name, str(record_id)),
    ).fetchall()
    counts = {str(a): int(n) for a, n in rows}
    if counts.get(action.upper()):
        return []
    seen = ", ".join(f"{a} x{n}" for a, n in counts.items()) or "no audit row at all"
    return [
        Finding(
            "audit",
            f"no {action.upper()} audit row for {schema}.{name} record {record_id} ({seen})",
            f"check that trigger audit_{name} exists and is enabled on {schema}.{name} and that "
            "the change really happened in this transaction",
        )
    ]


# --------------------------------------------------------------------------- seeds


def _environments_desc(env: str | None) -> str:
    return "unset" if env is None else repr(env)


def check_seed_refuses(
    target: psycopg.Connection[Any] | str,
    seed: Path,
    environments: Iterable[str | None] = (UNSET, "", "production", "staging"),
) -> list[Finding]:
    """The seed must raise under each of ``environments`` (``None``: never set in the session).

    Each environment gets a fresh connection (a setting once set in a session
    is ``''``, never NULL again: only a new session shows the NULL trap) and a
    transaction that is rolled back whatever happens.
    """
    dsn = target if isinstance(target, str) else _dsn_of(target)
    parsed = read_sql_file(seed, what="seed")
    findings = []
    for env in environments:
        with psycopg.connect(dsn) as conn:
            try:
                with conn.transaction(force_rollback=True):
                    settings = {} if env is None else {"app.environment": env}
                    execute_file(conn, parsed, SeedError, settings=settings)
            except SeedError as exc:
                if exc.sqlstate in ("P0001", "42501"):
                    continue
                findings.append(
                    Finding(
                        "seed-guard",
                        f"{seed.name} failed under app.environment {_environments_desc(env)} with "
                        f"an error that is not its guard: {exc.message.splitlines()[0]}",
                        "the guard must be the first statement and RAISE EXCEPTION",
                    )
                )
                continue
        findings.append(
            Finding(
                "seed-guard",
                f"{seed.name} ran to the end with app.environment {_environments_desc(env)}: "
                "its guard did not refuse",
                "compare coalesce(nullif(current_setting('app.environment', true), ''), "
                "'<unset>') against the allowed values (a NULL never fails `x <> 'test'`)",
            )
        )
    return findings


def _dsn_of(conn: psycopg.Connection[Any]) -> str:
    params = conn.info.get_parameters()
    password = conn.info.password
    if password:
        params["password"] = password
    return psycopg.conninfo.make_conninfo("", **params)


def _tables(conn: psycopg.Connection[Any], schemas: Sequence[str] | None) -> list[str]:
    """The tables of ``schemas`` (default: every user schema), audit tables left out."""
    from .partitions import find_audit_tables

    audit = set(find_audit_tables(conn))
    rows = conn.execute(
        f"SELECT {qualified('c.oid')} FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ANY(%s) "
        "AND c.relkind IN ('r', 'p') AND NOT c.relispartition "
        "ORDER BY 1",
        (schemas_or_all(conn, schemas),),
    ).fetchall()
    return [str(r[0]) for r in rows if str(r[0]) not in audit]


def _rows_sql(table: str, exclude: Sequence[str]) -> sql.Composable:
    """Each row of ``table`` as JSON text without the ``exclude`` columns."""
    drop = sql.SQL("ARRAY[{}]::text[]").format(sql.SQL(", ").join(map(sql.Literal, exclude)))
    return sql.SQL("SELECT (to_jsonb(t) - {d})::text AS r FROM {t} t").format(
        d=drop, t=sql.SQL(table)
    )


def _count(conn: psycopg.Connection[Any], query: sql.Composable) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) FROM ({}) c").format(query)).fetchone()
    return int(row[0]) if row else 0


def _run_seed(
    conn: psycopg.Connection[Any],
    seed: Path,
    settings: Mapping[str, str] | None,
    triggers: Sequence[tuple[str, str]] = (),
) -> None:
    """Run ``seed`` once (inside the caller's transaction), ``triggers`` disabled meanwhile."""
    for table, trigger in triggers:
        conn.execute(
            sql.SQL("ALTER TABLE {} DISABLE TRIGGER {}").format(
                sql.SQL(table), sql.Identifier(trigger)
            )
        )
    execute_file(conn, read_sql_file(seed, what="seed"), SeedError, settings=dict(settings or {}))
    conn.execute("SET CONSTRAINTS ALL IMMEDIATE")
    for table, trigger in triggers:
        conn.execute(
            sql.SQL("ALTER TABLE {} ENABLE TRIGGER {}").format(
                sql.SQL(table), sql.Identifier(trigger)
            )
        )


def check_seed_idempotent(
    conn: psycopg.Connection[Any],
    seed: Path,
    *,
    settings: Mapping[str, str] | None = None,
    exclude_columns: Sequence[str] = (),
    schemas: Sequence[str] | None = None,
    sample: int = 3,
    triggers: Sequence[tuple[str, str]] = (),
) -> list[Finding]:
    """Running ``seed`` a second time must change no row of ``schemas`` (default: all user ones).

    The seed runs twice inside a savepoint that is rolled back; after the first
    run every table is copied to a temporary table, after the second the two are
    compared row by row (as JSON, minus ``exclude_columns``).  ``triggers``
    (table, trigger) are disabled while the seed runs, as the dev-seed wrapper
    does for the audit triggers.
    """
    findings: list[Finding] = []
    excl = list(exclude_columns)
    with _rolled_back(conn):
        _run_seed(conn, seed, settings, triggers)
        tables = _tables(conn, schemas)
        for i, table in enumerate(tables):
            conn.execute(
                sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS ").format(
                    sql.Identifier(f"clinicdb_fp_{i}")
                )
                + _rows_sql(table, excl)
            )
        try:
            with conn.transaction():
                _run_seed(conn, seed, settings, triggers)
        except SeedError as exc:
            return [
                Finding(
                    "seed-idempotent",
                    f"second run of {seed.name} failed: {exc.message.splitlines()[0]}",
                    "make every write idempotent: ON CONFLICT on the key that really conflicts "
                    "(the natural key, not a generated id)",
                )
            ]
        for i, table in enumerate(tables):
            snap = sql.Identifier(f"clinicdb_fp_{i}")
            rows = _rows_sql(table, excl)
            now_only = sql.SQL("SELECT r FROM ({q}) x EXCEPT ALL SELECT r FROM {s}").format(
                q=rows, s=snap
            )
            before_only = sql.SQL("SELECT r FROM {s} EXCEPT ALL SELECT r FROM ({q}) x").format(
                q=rows, s=snap
            )
            n_now, n_before = (_count(conn, q) for q in (now_only, before_only))
            if not (n_now or n_before):
                continue
            limit = sql.SQL(" LIMIT {}").format(sql.Literal(sample))
            detail = "".join(
                f"\n      {sign} {r[0]}"
                for sign, q in (("+", now_only), ("-", before_only))
                for r in conn.execute(q + limit).fetchall()
            )
            findings.append(
                Finding(
                    "seed-idempotent",
                    f"second run of {seed.name} changed {table}: {n_now} row(s) now, "
                    f"{n_before} row(s) before differ (first {sample} of each):{detail}",
                    "make every write idempotent: ON CONFLICT on the natural key (or id) "
                    "with DO NOTHING, or exclude volatile columns with exclude_columns",
                )
            )
    return findings


def seed_snapshot(
    conn: psycopg.Connection[Any],
    seed: Path,
    *,
    settings: Mapping[str, str] | None = None,
    mask_columns: Sequence[str] = (),
    schemas: Sequence[str] | None = None,
) -> str:
    """A stable text dump of the rows ``seed`` adds, per table, in a rolled-back savepoint.

    Rows are JSON with sorted keys, masked columns shown as ``"***"``, sorted;
    tables the seed does not change are left out.  Commit it and diff it in review.
    """
    out: list[str] = [f"# rows added by {seed.name}"]
    with _rolled_back(conn):
        tables = _tables(conn, schemas)
        before = {t: _row_set(conn, t) for t in tables}
        _run_seed(conn, seed, settings)
        for table in tables:
            added = sorted(_masked(r, mask_columns) for r in _row_set(conn, table) - before[table])
            if added:
                out.append(f"\n## {table} ({len(added)} row(s))")
                out.extend(added)
    return "\n".join(out) + "\n"


def _row_set(conn: psycopg.Connection[Any], table: str) -> set[str]:
    rows = conn.execute(sql.SQL("SELECT to_jsonb(t)::text FROM {} t").format(sql.SQL(table)))
    return {str(r[0]) for r in rows.fetchall()}


def _masked(row: str, mask: Sequence[str]) -> str:
    data = json.loads(row)
    for col in mask:
        if col in data:
            data[col] = "***"
    return json.dumps(data, sort_keys=True, ensure_ascii=False)
