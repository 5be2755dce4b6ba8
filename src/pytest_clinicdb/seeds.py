"""Seed loading and server notices (no pytest import).

``load_seed`` runs a seed file in one transaction, statement by statement, with
session settings (e.g. ``app.environment``) set locally for that transaction
only, and returns the NOTICE/WARNING messages the server sent while it ran:
psycopg drops them unless a handler is installed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from .errors import ClinicDBError, DevSeedRefusedError, SeedError
from .sqlfile import execute_file, read_sql_file

SYSTEM_SEED_PATTERN = "001_*.sql"
DEV_SEED_PATTERN = "002_*.sql"


@dataclass(frozen=True)
class Notice:
    """A NOTICE/WARNING/INFO message the server sent."""

    severity: str
    message: str
    source: str = ""

    def __str__(self) -> str:
        where = f" [{self.source}]" if self.source else ""
        return f"{self.severity}: {self.message}{where}"

    def to_dict(self) -> dict[str, str]:
        return {"severity": self.severity, "message": self.message, "source": self.source}


@contextmanager
def capture_notices(conn: psycopg.Connection[Any], source: str = "") -> Iterator[list[Notice]]:
    """Collect the server messages sent on ``conn`` inside the block."""
    notices: list[Notice] = []

    def handler(diag: psycopg.errors.Diagnostic) -> None:
        notices.append(
            Notice(
                diag.severity_nonlocalized or diag.severity or "NOTICE",
                diag.message_primary or "",
                source,
            )
        )

    conn.add_notice_handler(handler)
    try:
        yield notices
    finally:
        conn.remove_notice_handler(handler)


def find_seed(directory: Path, pattern: str, what: str) -> Path:
    """The one file of ``directory`` that matches ``pattern`` (e.g. ``001_*.sql``)."""
    if not directory.is_dir():
        raise ClinicDBError(
            f"seeds directory {directory} does not exist",
            hint="set --clinicdb-seeds DIR (ini clinicdb_seeds, env CLINICDB_SEEDS), "
            "or --clinicdb-seeds none to run without seeds",
        )
    matches = sorted(directory.glob(pattern))
    if not matches:
        raise ClinicDBError(
            f"no {what} ({pattern}) in seeds directory {directory}",
            hint=f"add the {what} file or point --clinicdb-seeds at the right directory",
        )
    if len(matches) > 1:
        names = ", ".join(p.name for p in matches)
        raise ClinicDBError(f"several {what} files match {pattern} in {directory}: {names}")
    return matches[0]


_SETTING = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")


def load_seed(
    conn: psycopg.Connection[Any],
    path: Path,
    *,
    settings: Mapping[str, str] | None = None,
) -> list[Notice]:
    """Run the seed file ``path`` in one transaction; return the server's notices.

    ``settings`` are custom settings (``app.environment`` ...) set with
    ``set_config(name, value, true)``: they last for this transaction only.
    A failing statement rolls the whole seed back and raises :class:`SeedError`
    naming the file, line and column.
    """
    seed = read_sql_file(path, what="seed")
    with capture_notices(conn, path.name) as notices, conn.transaction():
        for name, value in (settings or {}).items():
            if not _SETTING.match(name):
                raise ClinicDBError(f"invalid setting name {name!r} (expected prefix.name)")
            conn.execute("SELECT set_config(%s, %s, true)", (name, value))
        execute_file(conn, seed, SeedError)
    return list(notices)


# --------------------------------------------------------------------------- dev seed (002)

DEV_ENVIRONMENTS = ("development", "test")
TRIGGER_MODES = ("audit", "user", "all")
_WRITES = re.compile(
    r"\b(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+((?:\"[^\"]+\"|\w+)\s*\.\s*(?:\"[^\"]+\"|\w+))",
    re.IGNORECASE,
)


@dataclass
class DevSeedReport:
    """What the dev-seed wrapper did (shown in the pytest summary and by the CLI)."""

    seed: str
    environment: str
    mode: str
    disabled: list[str]
    unaudited_rows: dict[str, int]
    notices: list[Notice]

    def summary(self) -> str:
        unaudited = sum(self.unaudited_rows.values())
        return (
            f"dev seed {self.seed} loaded (DEV/TEST ONLY, app.environment={self.environment}, "
            f"mode {self.mode}: {len(self.disabled)} trigger(s) disabled for the seed and "
            f"re-enabled; {unaudited} row(s) seeded without audit)"
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "seed": self.seed,
            "environment": self.environment,
            "mode": self.mode,
            "disabled": self.disabled,
            "unaudited_rows": self.unaudited_rows,
            "notices": [n.to_dict() for n in self.notices],
        }


def seed_tables(conn: psycopg.Connection[Any], text: str, schemas: Sequence[str]) -> list[str]:
    """Tables of ``schemas`` the seed writes to (INSERT/UPDATE/DELETE targets), as regclass text."""
    found: dict[str, None] = {}
    for m in _WRITES.finditer(text):
        row = conn.execute(
            "SELECT c.oid::regclass::text, n.nspname FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)",
            (m.group(1),),
        ).fetchone()
        if row and row[1] in schemas:
            found.setdefault(str(row[0]), None)
    return list(found)


def resolve_tables(conn: psycopg.Connection[Any], tables: Sequence[str]) -> list[str]:
    """``tables`` as regclass text; one error naming every table that does not exist."""
    found, missing = [], []
    for name in tables:
        row = conn.execute("SELECT to_regclass(%s)::text", (name,)).fetchone()
        if row and row[0]:
            found.append(str(row[0]))
        else:
            missing.append(name)
    if missing:
        raise ClinicDBError(
            f"dev seed tables not found: {', '.join(missing)}",
            hint="name existing tables, schema-qualified (e.g. clinic.patients), or leave the "
            "list out to use the tables the seed writes to",
        )
    return found


def _triggers(
    conn: psycopg.Connection[Any], tables: Sequence[str], mode: str
) -> list[tuple[str, str]]:
    """(table, trigger) pairs to disable: audit triggers, every user trigger, or all of them."""
    if not tables:
        return []
    where = {
        "audit": "NOT t.tgisinternal AND fn.pronamespace = 'audit'::regnamespace",
        "user": "NOT t.tgisinternal",
        "all": "true",
    }[mode]
    rows = conn.execute(
        "SELECT t.tgrelid::regclass::text, t.tgname FROM pg_trigger t "
        "JOIN pg_proc fn ON fn.oid = t.tgfoid "
        f"WHERE t.tgrelid = ANY(%s::regclass[]) AND t.tgenabled <> 'D' AND {where} "
        "ORDER BY 1, 2",
        (list(tables),),
    ).fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


def _count(conn: psycopg.Connection[Any], table: str) -> int:
    row = conn.execute(
        sql.SQL("SELECT count(*) FROM {}").format(sql.SQL(table))  # regclass text, quoted by PG
    ).fetchone()
    return int(row[0]) if row else 0


def disabled_triggers(conn: psycopg.Connection[Any], schemas: Sequence[str]) -> list[str]:
    """Every disabled trigger on tables of ``schemas`` (internal FK triggers included)."""
    rows = conn.execute(
        "SELECT c.oid::regclass::text || '.' || t.tgname FROM pg_trigger t "
        "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE t.tgenabled = 'D' AND n.nspname = ANY(%s) ORDER BY 1",
        (list(schemas),),
    ).fetchall()
    return [str(r[0]) for r in rows]


def foreign_key_violations(
    conn: psycopg.Connection[Any], tables: Sequence[str], sample: int = 5
) -> list[str]:
    """Rows of ``tables`` whose foreign keys point nowhere (checked by query, not by trigger)."""
    found = []
    cons = conn.execute(
        "SELECT conname, conrelid::regclass::text, confrelid::regclass::text, "
        "ARRAY(SELECT attname FROM unnest(conkey) WITH ORDINALITY k(n, i) "
        "      JOIN pg_attribute a ON a.attrelid = conrelid AND a.attnum = k.n ORDER BY i), "
        "ARRAY(SELECT attname FROM unnest(confkey) WITH ORDINALITY k(n, i) "
        "      JOIN pg_attribute a ON a.attrelid = confrelid AND a.attnum = k.n ORDER BY i) "
        "FROM pg_constraint WHERE contype = 'f' AND conrelid = ANY(%s::regclass[]) ORDER BY 1",
        (list(tables),),
    ).fetchall()
    for name, child, parent, cols, refcols in cons:
        child_cols = [sql.SQL("c.") + sql.Identifier(c) for c in cols]
        query = sql.SQL(
            "SELECT {cols} FROM {child} c WHERE {notnull} AND NOT EXISTS "
            "(SELECT 1 FROM {parent} p WHERE {match}) LIMIT {n}"
        ).format(
            cols=sql.SQL(", ").join(child_cols),
            child=sql.SQL(child),
            parent=sql.SQL(parent),
            notnull=sql.SQL(" AND ").join(c + sql.SQL(" IS NOT NULL") for c in child_cols),
            match=sql.SQL(" AND ").join(
                sql.SQL("p.") + sql.Identifier(r) + sql.SQL(" = c.") + sql.Identifier(c)
                for c, r in zip(cols, refcols, strict=True)
            ),
            n=sql.Literal(sample),
        )
        for row in conn.execute(query).fetchall():
            values = ", ".join(f"{c}={v!r}" for c, v in zip(cols, row, strict=True))
            found.append(f"{child} ({values}) violates {name}: no such row in {parent}")
    return found


def load_dev_seed(
    conn: psycopg.Connection[Any],
    path: Path,
    *,
    environment: str = "test",
    mode: str = "audit",
    schemas: Sequence[str] = ("clinic",),
    tables: Sequence[str] | None = None,
    external: bool = False,
    allow_external: bool = False,
) -> DevSeedReport:
    """Load the DEV/TEST ONLY seed 002 safely, in one transaction.

    ``app.environment`` is set for the transaction, the triggers of the tables
    the seed writes to are disabled (``mode``: ``audit`` — only audit triggers,
    foreign keys stay enforced; ``user`` — every user trigger; ``all`` — the
    playbook's ``DISABLE TRIGGER ALL``, followed by an explicit foreign-key
    check), the seed runs, the triggers are enabled again, and it commits.  Any
    error rolls everything back, trigger state included.  After the commit no
    trigger of ``schemas`` may be disabled: that is checked, not assumed.

    The wrapper refuses by itself — whatever the seed's own guard says — unless
    ``environment`` is development or test, and refuses external servers unless
    ``allow_external``.
    """
    if environment not in DEV_ENVIRONMENTS:
        shown = environment if environment else "<unset>"
        raise DevSeedRefusedError(
            f"refusing to load the DEV/TEST ONLY seed {path.name}: target environment is "
            f"{shown!r}, not development or test",
            hint="002 never runs outside development and test; set the environment accordingly",
        )
    if external and not allow_external:
        raise DevSeedRefusedError(
            f"refusing to load the DEV/TEST ONLY seed {path.name} into an external server",
            hint="allow it explicitly (pytest: --clinicdb-allow-external-dev-seed; library: "
            "allow_external=True) only if that server is a disposable development or test server",
        )
    if mode not in TRIGGER_MODES:
        raise ClinicDBError(
            f"unknown trigger mode {mode!r}", hint="valid values: " + ", ".join(TRIGGER_MODES)
        )
    seed = read_sql_file(path, what="seed")
    if mode == "all":
        row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
        if not row or not row[0]:
            raise DevSeedRefusedError(
                f"dev seed mode all needs a superuser: DISABLE TRIGGER ALL also disables the "
                f"system foreign-key triggers, which only a superuser may touch ({path.name})",
                hint="use mode audit (the default) or user: foreign keys stay enforced",
            )
    if tables is not None:
        targets = resolve_tables(conn, tables)
    else:
        targets = seed_tables(conn, seed.text, schemas)
    with capture_notices(conn, path.name) as notices, conn.transaction():
        conn.execute("SELECT set_config('app.environment', %s, true)", (environment,))
        triggers = _triggers(conn, targets, mode)
        audited = {t for t, _ in _triggers(conn, targets, "audit")}
        before = {t: _count(conn, t) for t in audited}
        for table, trigger in triggers:
            conn.execute(
                sql.SQL("ALTER TABLE {} DISABLE TRIGGER {}").format(
                    sql.SQL(table), sql.Identifier(trigger)
                )
            )
        execute_file(conn, seed, SeedError)
        # Pending deferred constraint checks would make ENABLE TRIGGER fail (55006).
        conn.execute("SET CONSTRAINTS ALL IMMEDIATE")
        for table, trigger in triggers:
            conn.execute(
                sql.SQL("ALTER TABLE {} ENABLE TRIGGER {}").format(
                    sql.SQL(table), sql.Identifier(trigger)
                )
            )
        if mode == "all":
            violations = foreign_key_violations(conn, targets)
            if violations:
                raise SeedError(
                    path,
                    1,
                    1,
                    "23503",
                    "foreign keys violated by rows loaded with DISABLE TRIGGER ALL:\n    "
                    + "\n    ".join(violations),
                    hint="fix the seed's references; nothing was committed",
                )
        disabled_audit = {t for t, _ in triggers if t in audited}
        unaudited = {t: _count(conn, t) - before[t] for t in sorted(disabled_audit)}
    left = disabled_triggers(conn, schemas)
    if left:
        raise ClinicDBError(
            "triggers are disabled after the dev seed committed: " + ", ".join(left),
            hint="enable them with ALTER TABLE … ENABLE TRIGGER …; something else disabled them",
        )
    return DevSeedReport(
        path.name,
        environment,
        mode,
        [f"{t}.{g}" for t, g in triggers],
        {t: n for t, n in unaudited.items() if n},
        list(notices),
    )
