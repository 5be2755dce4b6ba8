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

from ._sql import qualified
from .errors import (
    BootstrapError,
    CheckError,
    ConfigError,
    DevSeedRefusedError,
    SeedError,
    TriggersLeftDisabledError,
)
from .sqlfile import execute_file, read_sql_file


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
    for name in settings or {}:
        if not _SETTING.match(name):
            raise CheckError(f"invalid setting name {name!r} (expected prefix.name)")
    with capture_notices(conn, path.name) as notices, conn.transaction():
        # The file starts from the session's defaults (nothing an earlier file set leaks in).
        execute_file(conn, seed, SeedError, settings=dict(settings or {}))
    return list(notices)


def run_bootstrap(conn: psycopg.Connection[Any], path: Path) -> list[Notice]:
    """Run a bootstrap file (what the platform provides) in one transaction; not in the ledger."""
    bootstrap = read_sql_file(path, what="bootstrap file")
    with capture_notices(conn, path.name) as notices, conn.transaction():
        execute_file(conn, bootstrap, BootstrapError, settings={})
    return list(notices)


# --------------------------------------------------------------------------- schemas, triggers

#: Schemas that are never the application's: the catalogs and the runner's ledger.
_SYSTEM_SCHEMAS = (
    "n.nspname NOT IN ('pg_catalog', 'information_schema', 'clinicdb') "
    "AND n.nspname NOT LIKE 'pg\\_%%'"
)


def user_schemas(conn: psycopg.Connection[Any]) -> list[str]:
    """Every schema of the database except the catalogs, the ledger and extension-owned ones."""
    rows = conn.execute(
        "SELECT n.nspname FROM pg_namespace n "
        f"WHERE {_SYSTEM_SCHEMAS} AND NOT EXISTS (SELECT 1 FROM pg_depend d "
        "  WHERE d.classid = 'pg_namespace'::regclass AND d.objid = n.oid AND d.deptype = 'e') "
        "ORDER BY 1"
    ).fetchall()
    return [str(r[0]) for r in rows]


def schemas_or_all(conn: psycopg.Connection[Any], schemas: Sequence[str] | None) -> list[str]:
    """``schemas`` (each must exist), or every user schema when None."""
    if schemas is None:
        return user_schemas(conn)
    rows = conn.execute(
        "SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)", (list(schemas),)
    ).fetchall()
    missing = sorted(set(schemas) - {str(r[0]) for r in rows})
    if missing:
        raise ConfigError(
            f"schema(s) not found: {', '.join(missing)} (--clinicdb-schemas)",
            hint="name schemas the migrations create, or leave the option out for all of them",
        )
    return list(schemas)


def audit_triggers(
    conn: psycopg.Connection[Any],
    schemas: Sequence[str],
    audit_tables: Sequence[str] = (),
) -> list[tuple[str, str]]:
    """(table, trigger) pairs of the triggers that write the audit trail, on ``schemas``' tables.

    A trigger counts as an audit trigger when its function lives in the schema
    of an audit table or in a schema named ``audit*``, when its function's
    source writes to an audit table, or when the trigger's or the function's
    name says ``audit``.  No statement of the seed is parsed: the answer is the
    same however the seed spells its tables (search_path, quoting, DO blocks).
    """
    names = [t.rsplit(".", 1)[-1].strip('"') for t in audit_tables]
    rows = conn.execute(
        f"SELECT {qualified('t.tgrelid')}, t.tgname FROM pg_trigger t "
        "JOIN pg_proc fn ON fn.oid = t.tgfoid JOIN pg_namespace fns ON fns.oid = fn.pronamespace "
        "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE NOT t.tgisinternal AND c.relkind IN ('r', 'p') AND NOT c.relispartition "
        "AND n.nspname = ANY(%(schemas)s) AND ("
        "  fns.nspname ILIKE 'audit%%' OR fn.proname ILIKE '%%audit%%'"
        "  OR t.tgname ILIKE '%%audit%%'"
        "  OR fn.pronamespace IN (SELECT relnamespace FROM pg_class "
        "                         WHERE oid = ANY(%(tables)s::regclass[]))"
        "  OR EXISTS (SELECT 1 FROM unnest(%(names)s::text[]) a(name) "
        "             WHERE fn.prosrc ILIKE '%%' || a.name || '%%')"
        ") ORDER BY 1, 2",
        {"schemas": list(schemas), "tables": list(audit_tables), "names": names},
    ).fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


def resolve_tables(conn: psycopg.Connection[Any], tables: Sequence[str]) -> list[str]:
    """``tables`` as regclass text; one error naming every table that does not exist."""
    found, missing = [], []
    for name in tables:
        row = conn.execute(f"SELECT {qualified('to_regclass(%s)')}", (name,)).fetchone()
        if row and row[0]:
            found.append(str(row[0]))
        else:
            missing.append(name)
    if missing:
        raise ConfigError(
            f"dev seed tables not found: {', '.join(missing)}",
            hint="name existing tables, schema-qualified (e.g. clinic.patients), or leave the "
            "list out to use every table that carries an audit trigger",
        )
    return found


def _triggers(
    conn: psycopg.Connection[Any], tables: Sequence[str], mode: str, audited: set[tuple[str, str]]
) -> list[tuple[str, str]]:
    """(table, trigger) pairs to disable: audit triggers, every user trigger, or all of them."""
    if not tables:
        return []
    if mode == "audit":
        return sorted(pair for pair in audited if pair[0] in set(tables))
    where = "NOT t.tgisinternal" if mode == "user" else "true"
    rows = conn.execute(
        f"SELECT {qualified('t.tgrelid')}, t.tgname FROM pg_trigger t "
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


def disabled_triggers(
    conn: psycopg.Connection[Any], schemas: Sequence[str] | None = None
) -> list[str]:
    """Every disabled trigger on tables of ``schemas`` (default: every user schema)."""
    rows = conn.execute(
        f"SELECT {qualified('c.oid')} || '.' || quote_ident(t.tgname) FROM pg_trigger t "
        "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE t.tgenabled = 'D' AND n.nspname = ANY(%s) ORDER BY 1",
        (schemas_or_all(conn, schemas),),
    ).fetchall()
    return [str(r[0]) for r in rows]


# --------------------------------------------------------------------------- dev seed (002)

DEV_ENVIRONMENTS = ("development", "test")
TRIGGER_MODES = ("audit", "user", "all")


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

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DevSeedReport:
        return cls(
            str(data["seed"]),
            str(data["environment"]),
            str(data["mode"]),
            list(data.get("disabled", [])),
            dict(data.get("unaudited_rows", {})),
            [Notice(**n) for n in data.get("notices", [])],
        )


def foreign_key_violations(
    conn: psycopg.Connection[Any], tables: Sequence[str], sample: int = 5
) -> list[str]:
    """Rows of ``tables`` whose foreign keys point nowhere (checked by query, not by trigger)."""
    found = []
    cons = conn.execute(
        f"SELECT conname, {qualified('conrelid')}, {qualified('confrelid')}, "
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
    schemas: Sequence[str] | None = None,
    tables: Sequence[str] | None = None,
    audit_tables: Sequence[str] | None = None,
    external: bool = False,
    allow_external: bool = False,
) -> DevSeedReport:
    """Load the DEV/TEST ONLY seed 002 safely, in one transaction.

    Which triggers: by default those of every table of ``schemas`` (all user
    schemas when None) that carries an audit trigger (see :func:`audit_triggers`)
    — decided from the catalog, never from the seed's text, so unqualified
    names, ``search_path``, quoting and DO blocks make no difference.
    ``tables`` narrows it to a list.  ``mode``: ``audit`` disables only the
    audit triggers (foreign keys stay enforced); ``user`` every user trigger of
    those tables; ``all`` the playbook's ``DISABLE TRIGGER ALL``, followed by an
    explicit foreign-key check.

    ``app.environment`` is set for the transaction, the triggers are disabled,
    the seed runs, the triggers are enabled again, and it commits.  Any error
    rolls everything back, trigger state included.  After the commit no
    trigger may be disabled: that is checked, not assumed.  The wrapper refuses
    by itself — whatever the seed's own guard says — unless ``environment`` is
    development or test, and refuses external servers unless ``allow_external``.
    """
    from .partitions import resolve_audit_tables

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
        raise ConfigError(
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
    in_schemas = schemas_or_all(conn, schemas)
    audited = set(audit_triggers(conn, in_schemas, resolve_audit_tables(conn, audit_tables)))
    if tables is not None:
        targets = resolve_tables(conn, tables)
    elif mode == "audit":
        targets = sorted({t for t, _ in audited})
    else:
        targets = [t for t in _user_tables(conn, in_schemas)]
    with capture_notices(conn, path.name) as notices, conn.transaction():
        triggers = _triggers(conn, targets, mode, audited)
        disabled_audit = sorted({t for pair in triggers if pair in audited for t in [pair[0]]})
        before = {t: _count(conn, t) for t in disabled_audit}
        for table, trigger in triggers:
            conn.execute(
                sql.SQL("ALTER TABLE {} DISABLE TRIGGER {}").format(
                    sql.SQL(table), sql.Identifier(trigger)
                )
            )
        execute_file(conn, seed, SeedError, settings={"app.environment": environment})
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
        unaudited = {t: _count(conn, t) - before[t] for t in disabled_audit}
    left = disabled_triggers(conn, in_schemas)
    if left:
        raise TriggersLeftDisabledError(left)
    return DevSeedReport(
        path.name,
        environment,
        mode,
        [f"{t}.{g}" for t, g in triggers],
        {t: n for t, n in unaudited.items() if n},
        list(notices),
    )


def _user_tables(conn: psycopg.Connection[Any], schemas: Sequence[str]) -> list[str]:
    rows = conn.execute(
        f"SELECT {qualified('c.oid')} FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1",
        (list(schemas),),
    ).fetchall()
    return [str(r[0]) for r in rows]
