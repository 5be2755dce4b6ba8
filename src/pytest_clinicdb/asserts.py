"""Assertion helpers: run a check from :mod:`pytest_clinicdb.checks`, fail with its findings.

Each raises ``AssertionError`` listing every problem and how to fix it, so a
test shows its own line and the full story.  They work on any psycopg 3
connection — ``clinic_db`` included, which they leave as they found it.
"""

from __future__ import annotations

import datetime as dt
import difflib
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import psycopg

from . import checks, lockfile
from .checks import UNSET, Finding, render
from .partitions import AUDIT_TABLE

Conn = psycopg.Connection[Any]


def _fail_on(title: str, findings: Sequence[Finding]) -> None:
    __tracebackhide__ = True
    if findings:
        raise AssertionError(render(title, findings))


def assert_audit_partitions_cover(
    conn: Conn,
    *timestamps: dt.datetime | dt.date | str,
    start: dt.datetime | dt.date | str | None = None,
    end: dt.datetime | dt.date | str | None = None,
    table: str = AUDIT_TABLE,
) -> None:
    """Every timestamp (and all of ``[start, end)``) falls in a range partition of ``table``.

    A timestamp only a DEFAULT partition would take fails too.  The message
    lists each uncovered timestamp or gap, the nearest partitions and the call
    (or DDL) that covers it.
    """
    __tracebackhide__ = True
    findings = checks.check_partition_coverage(conn, *timestamps, start=start, end=end, table=table)
    _fail_on(f"audit partitions of {table} do not cover", findings)


def assert_audit_partitions_cover_horizon(
    conn: Conn,
    *,
    months_ahead: int = 3,
    now: dt.datetime | None = None,
    table: str = AUDIT_TABLE,
    production: bool = False,
) -> None:
    """The current month and the next ``months_ahead`` are covered (relative to ``now``).

    With ``production`` the partitions the test set-up created do not count.
    """
    __tracebackhide__ = True
    findings = checks.check_partition_horizon(
        conn, months_ahead=months_ahead, now=now, table=table, production=production
    )
    _fail_on(f"audit partitions of {table} do not reach {months_ahead} month(s) ahead", findings)


def assert_no_rows_in_default_partition(conn: Conn, table: str = AUDIT_TABLE) -> None:
    __tracebackhide__ = True
    _fail_on("rows in a DEFAULT partition", checks.check_default_partition_empty(conn, table))


def assert_audited_timestamps_covered(
    conn: Conn, run: Callable[[Conn], object], table: str = AUDIT_TABLE
) -> list[dt.datetime]:
    """Run ``run(conn)`` (rolled back), collect the audit timestamps it writes, check them.

    Returns the timestamps, so a test can also assert how many changes were audited.
    """
    __tracebackhide__ = True
    found = checks.audited_timestamps(conn, run, table=table)
    assert_audit_partitions_cover(conn, *found, table=table)
    return found


def assert_triggers_enabled(conn: Conn, schemas: Sequence[str] | None = None) -> None:
    """No trigger of ``schemas`` (default: every user schema) is disabled (internal foreign-key
    triggers included)."""
    __tracebackhide__ = True
    _fail_on("disabled triggers", checks.check_triggers_enabled(conn, schemas))


def assert_audited(
    conn: Conn, table: str, record_id: object, action: str, *, audit_table: str = AUDIT_TABLE
) -> None:
    """An audit row exists for ``action`` (INSERT/UPDATE/DELETE) on ``table``'s ``record_id``.

    ``audit_table`` has the clinic database's audit columns (``table_schema``,
    ``table_name``, ``record_id``, ``action``).
    """
    __tracebackhide__ = True
    findings = checks.check_audited(conn, table, record_id, action, audit_table=audit_table)
    _fail_on("change not audited", findings)


def assert_seed_refuses(
    dsn_or_conn: Conn | str,
    seed: Path | str,
    environments: Iterable[str | None] = (UNSET, "", "production", "staging"),
) -> None:
    """The seed raises under every environment (``None`` = never set in the session).

    Each environment runs in a new session, in a transaction rolled back afterwards.
    """
    __tracebackhide__ = True
    findings = checks.check_seed_refuses(dsn_or_conn, Path(seed), environments)
    _fail_on(f"the guard of {Path(seed).name} does not refuse", findings)


def assert_seed_idempotent(
    conn: Conn,
    seed: Path | str,
    *,
    settings: Mapping[str, str] | None = None,
    exclude_columns: Sequence[str] = (),
    schemas: Sequence[str] | None = None,
    triggers: Sequence[tuple[str, str]] = (),
) -> None:
    """A second run of the seed changes no row of ``schemas`` (default: every user schema; the
    audit tables are left out), rolled back afterwards; ``triggers`` are disabled meanwhile."""
    __tracebackhide__ = True
    findings = checks.check_seed_idempotent(
        conn,
        Path(seed),
        settings=settings,
        exclude_columns=exclude_columns,
        schemas=schemas,
        triggers=triggers,
    )
    _fail_on(f"{Path(seed).name} is not idempotent", findings)


def assert_migrations_match_lock(
    migrations: Path | str | Sequence[Path | str], lock: Path | str | None = None
) -> None:
    """Historical migrations match the lock file (no edit, removal, rename or reordering)."""
    __tracebackhide__ = True
    folders = (
        [Path(migrations)] if isinstance(migrations, (str, Path)) else list(map(Path, migrations))
    )
    findings = lockfile.check_migration_lock(folders, Path(lock) if lock else None)
    _fail_on("migrations do not match the lock file", findings)


UPDATE_ENV = "CLINICDB_UPDATE_SNAPSHOTS"


def assert_seed_snapshot(
    conn: Conn,
    seed: Path | str,
    snapshot: Path | str,
    *,
    settings: Mapping[str, str] | None = None,
    mask_columns: Sequence[str] = (),
    schemas: Sequence[str] | None = None,
) -> None:
    """What the seed adds matches the committed snapshot file (a readable diff if not).

    A missing snapshot is written and the assertion fails once, asking for review;
    with ``CLINICDB_UPDATE_SNAPSHOTS=1`` a differing one is rewritten.
    """
    __tracebackhide__ = True
    text = checks.seed_snapshot(
        conn, Path(seed), settings=settings, mask_columns=mask_columns, schemas=schemas
    )
    path = Path(snapshot)
    if not path.exists():
        path.write_text(text)
        raise AssertionError(f"snapshot {path} did not exist: written; review it and commit it")
    old = path.read_text()
    if old == text:
        return
    if os.environ.get(UPDATE_ENV, "").lower() in ("1", "true", "yes"):
        path.write_text(text)
        return
    diff = "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            text.splitlines(keepends=True),
            f"{path.name} (committed)",
            f"{path.name} (what {Path(seed).name} produces now)",
        )
    )
    raise AssertionError(
        f"{Path(seed).name} no longer produces {path}:\n{diff}"
        f"(if the change is intended, rerun with {UPDATE_ENV}=1 and commit the file)"
    )


def assert_tenant_isolation(
    conn: Conn,
    *,
    role: str,
    setting: str,
    tenants: Sequence[object] | str,
    shared: Iterable[str] = (),
    schemas: Sequence[str] | None = None,
) -> None:
    """Tenants are isolated for ``role``: no row one tenant sees is seen by another, every table
    the role reads has row-level security unless listed in ``shared``, and no cross-tenant write
    gets through (tried in rolled-back savepoints).  See
    :func:`pytest_clinicdb.tenants.check_tenant_isolation`.
    """
    __tracebackhide__ = True
    from .tenants import check_tenant_isolation

    findings = check_tenant_isolation(
        conn, role=role, setting=setting, tenants=tenants, shared=shared, schemas=schemas
    )
    _fail_on(f"tenant isolation of {role} by {setting}", findings)
