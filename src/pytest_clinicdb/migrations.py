"""The migration runner: discovery, ordering, checksums, ledger, apply.

Plain library code (no pytest import): the plugin, the ``clinicdb`` command and
the tests all call it.

* Files are ``<number>_<name>.sql``, ordered by the number (``10_x`` after
  ``9_x``); two files with the same number are refused.
* Each file runs in its own transaction, statement by statement, and is
  recorded in the ledger table ``clinicdb.migrations`` (name, checksum,
  applied_at) in that same transaction: a failing file leaves nothing behind,
  a second run applies nothing, an edited applied file is refused by name.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from .errors import (
    ExtensionsMissingError,
    MigrationDiscoveryError,
    MigrationEditedError,
    MigrationError,
)
from .sqlfile import SQLFile, execute_file, read_sql_file

LEDGER_SCHEMA = "clinicdb"
LEDGER_TABLE = "migrations"

_NAME = re.compile(r"^(\d+)[_-].*\.sql$")
_CREATE_EXTENSION = re.compile(
    r"^\s*CREATE\s+EXTENSION\s+(?:IF\s+NOT\s+EXISTS\s+)?(\"[^\"]+\"|[A-Za-z0-9_-]+)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    number: int
    name: str
    path: Path
    file: SQLFile

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.file.data).hexdigest()

    def extensions(self) -> list[str]:
        """Extensions this file creates (``CREATE EXTENSION [IF NOT EXISTS] x``)."""
        found = []
        for stmt in self.file.statements:
            m = _CREATE_EXTENSION.match(stmt.text)
            if m:
                found.append(m.group(1).strip('"'))
        return found


@dataclass
class MigrationReport:
    """What :func:`apply_migrations` did."""

    applied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def discover(directory: Path) -> list[Migration]:
    """Find and order the migrations of ``directory``.

    Raises :class:`MigrationDiscoveryError` for a missing directory, a file that
    does not follow ``<number>_<name>.sql``, a non-SQL file and duplicate numbers,
    and the errors of :func:`read_sql_file` for unreadable, empty or non-UTF-8 files.
    """
    if not directory.exists():
        raise MigrationDiscoveryError(
            f"migrations directory {directory} does not exist",
            hint="set --clinicdb-migrations DIR (ini clinicdb_migrations, env CLINICDB_MIGRATIONS)",
        )
    if not directory.is_dir():
        raise MigrationDiscoveryError(f"migrations path {directory} is not a directory")
    migrations: list[Migration] = []
    by_number: dict[int, Path] = {}
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or path.is_dir():
            continue
        if path.suffix != ".sql":
            raise MigrationDiscoveryError(
                f"{path.name} in {directory} is not a .sql file",
                hint="the migrations directory holds only NNN_name.sql files; move other files out",
            )
        m = _NAME.match(path.name)
        if not m:
            raise MigrationDiscoveryError(
                f"migration {path.name} has no numeric prefix",
                hint="name migrations <number>_<what>.sql, e.g. 020_add_invoices.sql",
            )
        number = int(m.group(1))
        if number in by_number:
            raise MigrationDiscoveryError(
                f"migrations {by_number[number].name} and {path.name} share the number {number}",
                hint="give each migration its own number; renumber the newer, unapplied one",
            )
        by_number[number] = path
        migrations.append(Migration(number, path.name, path, read_sql_file(path, what="migration")))
    if not migrations:
        raise MigrationDiscoveryError(
            f"migrations directory {directory} holds no .sql file",
            hint="point --clinicdb-migrations at the directory with your NNN_name.sql files",
        )
    migrations.sort(key=lambda mig: mig.number)
    return migrations


def ensure_ledger(conn: psycopg.Connection[Any]) -> None:
    """Create the ledger table if it does not exist (in its own transaction)."""
    with conn.transaction():
        conn.execute(
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(LEDGER_SCHEMA))
        )
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}.{} ("
                " name text PRIMARY KEY,"
                " checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now(),"
                " duration_ms integer)"
            ).format(sql.Identifier(LEDGER_SCHEMA), sql.Identifier(LEDGER_TABLE))
        )


def applied(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """Ledger contents: migration name -> checksum (empty when there is no ledger)."""
    row = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL", (f"{LEDGER_SCHEMA}.{LEDGER_TABLE}",)
    ).fetchone()
    if not row or not row[0]:
        return {}
    rows = conn.execute(
        sql.SQL("SELECT name, checksum FROM {}.{}").format(
            sql.Identifier(LEDGER_SCHEMA), sql.Identifier(LEDGER_TABLE)
        )
    ).fetchall()
    return {str(name): str(checksum) for name, checksum in rows}


def edited(migrations: Iterable[Migration], ledger: dict[str, str]) -> list[str]:
    """Names of applied migrations whose bytes changed since they were applied."""
    return [m.name for m in migrations if m.name in ledger and ledger[m.name] != m.checksum]


def pending(migrations: Iterable[Migration], ledger: dict[str, str]) -> list[Migration]:
    return [m for m in migrations if m.name not in ledger]


def required_extensions(migrations: Iterable[Migration]) -> list[str]:
    seen: dict[str, None] = {}
    for m in migrations:
        for ext in m.extensions():
            seen.setdefault(ext, None)
    return list(seen)


def preflight_extensions(
    conn: psycopg.Connection[Any],
    migrations: Iterable[Migration],
    *,
    binaries_note: str = "",
    alternatives: Callable[[list[str]], list[str]] | None = None,
) -> None:
    """Refuse to start when the server lacks an extension the migrations create.

    ``alternatives(missing)`` may return descriptions of other installed builds
    that do ship them; they are listed in the error.
    """
    wanted = required_extensions(migrations)
    if not wanted:
        return
    rows = conn.execute(
        "SELECT name FROM pg_available_extensions WHERE name = ANY(%s)", (wanted,)
    ).fetchall()
    available = {r[0] for r in rows}
    missing = [e for e in wanted if e not in available]
    if not missing:
        return
    message = (
        f"the migrations need extension(s) {', '.join(missing)}, "
        "which this PostgreSQL build does not ship"
    )
    if binaries_note:
        message += f"\n  binaries in use: {binaries_note}"
    others = alternatives(missing) if alternatives else []
    if others:
        message += "\n  installed builds that have them:\n" + "\n".join(f"    {o}" for o in others)
        hint = "choose one of those with --clinicdb-pg-bin DIR or --clinicdb-pg-version N"
    else:
        hint = (
            "install a PostgreSQL build with these extensions (e.g. the distribution's "
            "postgresql-contrib package), or change the migration to avoid them"
        )
    raise ExtensionsMissingError(missing, message, hint=hint)


def apply_migrations(
    conn: psycopg.Connection[Any],
    migrations: list[Migration],
    *,
    progress: Callable[[Migration], None] | None = None,
) -> MigrationReport:
    """Apply the pending ``migrations`` in order, each in its own transaction.

    ``conn`` must not be inside a transaction.  Raises
    :class:`MigrationEditedError` before applying anything when an applied file
    changed, and :class:`MigrationError` (file, line, column, SQLSTATE) when a
    file fails — that file's statements are rolled back, earlier files stay.
    """
    ensure_ledger(conn)
    ledger = applied(conn)
    changed = edited(migrations, ledger)
    if changed:
        raise MigrationEditedError(changed)
    report = MigrationReport()
    for mig in migrations:
        if mig.name in ledger:
            report.skipped.append(mig.name)
            continue
        if progress is not None:
            progress(mig)
        started = time.perf_counter()
        with conn.transaction():
            execute_file(conn, mig.file, MigrationError)
            elapsed = time.perf_counter() - started
            conn.execute(
                sql.SQL(
                    "INSERT INTO {}.{} (name, checksum, duration_ms) VALUES (%s, %s, %s)"
                ).format(sql.Identifier(LEDGER_SCHEMA), sql.Identifier(LEDGER_TABLE)),
                (mig.name, mig.checksum, round(elapsed * 1000)),
            )
        report.applied.append(mig.name)
        report.timings[mig.name] = elapsed
    return report
