"""A database's catalog and data as comparable digests (no pytest import).

Two databases built from the same files by different routes — from scratch, or
resumed from a checkpoint — must be the same database.  :func:`fingerprint`
reads what a user could observe (schemas, tables, columns, constraints,
indexes, functions, triggers, policies, views, sequences, privileges, enum
labels, extensions, database-level settings, and every row of every table)
into sorted text, section by section, so a difference names its section.  OIDs
and the runner's own timings (``clinicdb.migrations.applied_at`` …) are left out.
"""

from __future__ import annotations

import hashlib
from typing import Any

from psycopg import sql

from ._sql import qualified

_USER = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'"

_SECTIONS = {
    "schemas": f"SELECT n.nspname, pg_get_userbyid(n.nspowner), n.nspacl::text "
    f"FROM pg_namespace n WHERE {_USER}",
    "relations": f"SELECT {qualified('c.oid')}, c.relkind, c.relpersistence, "
    "c.relrowsecurity, c.relforcerowsecurity, c.reloptions::text, c.relacl::text, "
    "pg_get_userbyid(c.relowner) "
    f"FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {_USER}",
    "columns": f"SELECT {qualified('a.attrelid')}, a.attnum, a.attname, "
    "format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attidentity, a.attgenerated, "
    "pg_get_expr(d.adbin, d.adrelid), a.attacl::text "
    "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
    f"WHERE a.attnum > 0 AND NOT a.attisdropped AND {_USER}",
    "constraints": f"SELECT {qualified('co.conrelid')}, co.conname, "
    "pg_get_constraintdef(co.oid) FROM pg_constraint co "
    f"JOIN pg_namespace n ON n.oid = co.connamespace WHERE {_USER}",
    "indexes": "SELECT schemaname, tablename, indexname, indexdef FROM pg_indexes n "
    "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
    "functions": "SELECT n.nspname, p.proname, pg_get_function_identity_arguments(p.oid), "
    "md5(pg_get_functiondef(p.oid)), p.proacl::text FROM pg_proc p "
    f"JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {_USER} AND p.prokind IN ('f', 'p', 'w')",
    "triggers": f"SELECT {qualified('t.tgrelid')}, t.tgname, pg_get_triggerdef(t.oid), "
    "t.tgenabled FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
    f"JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT t.tgisinternal AND {_USER}",
    "policies": "SELECT schemaname, tablename, policyname, permissive, roles::text, cmd, "
    "qual, with_check FROM pg_policies",
    "views": f"SELECT {qualified('c.oid')}, pg_get_viewdef(c.oid) FROM pg_class c "
    f"JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('v', 'm') AND {_USER}",
    "sequences": "SELECT schemaname, sequencename, data_type::text, start_value, "
    "increment_by, last_value FROM pg_sequences",
    "types": "SELECT n.nspname, t.typname, e.enumsortorder, e.enumlabel FROM pg_enum e "
    "JOIN pg_type t ON t.oid = e.enumtypid JOIN pg_namespace n ON n.oid = t.typnamespace",
    "extensions": "SELECT extname, extversion FROM pg_extension",
    "comments": f"SELECT {qualified('d.objoid')}, d.objsubid, d.description FROM pg_description d "
    "JOIN pg_class c ON c.oid = d.objoid AND d.classoid = 'pg_class'::regclass "
    f"JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {_USER}",
    "database settings": "SELECT coalesce(r.rolname, ''), s.setconfig::text "
    "FROM pg_db_role_setting s LEFT JOIN pg_roles r ON r.oid = s.setrole "
    "WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())",
}

#: The runner's ledger: what was applied is compared, not when or how fast.
_LEDGER = "clinicdb.migrations"
_LEDGER_COLUMNS = ("name", "checksum")


def _digest(rows: list[Any]) -> str:
    text = "\n".join(sorted(repr(tuple(r)) for r in rows))
    return hashlib.sha256(text.encode()).hexdigest()


def fingerprint(conn: Any, *, exclude_columns: tuple[str, ...] = ()) -> dict[str, str]:
    """Digests of the database's catalog sections and of each table's rows.

    ``exclude_columns`` leaves columns out of the rows (e.g. ``created_at`` set
    by ``now()``: two builds at two moments differ there by design).
    """
    found: dict[str, str] = {}
    for section, text in _SECTIONS.items():
        found[section] = _digest(conn.execute(text).fetchall())
    tables = conn.execute(
        f"SELECT {qualified('c.oid')} FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE c.relkind IN ('r', 'm') AND {_USER} ORDER BY 1"
    ).fetchall()
    for (table,) in tables:
        query: sql.Composable
        if table == _LEDGER:
            columns = sql.SQL(", ").join(map(sql.Identifier, _LEDGER_COLUMNS))
            query = sql.SQL("SELECT {} FROM {}").format(columns, sql.SQL(table))
        else:
            drop = sql.SQL(", ").join(map(sql.Literal, exclude_columns))
            query = sql.SQL("SELECT (to_jsonb(t) - ARRAY[{}]::text[])::text FROM {} t").format(
                drop, sql.SQL(table)
            )
        found[f"rows of {table}"] = _digest(conn.execute(query).fetchall())
    return found


def differences(a: dict[str, str], b: dict[str, str]) -> list[str]:
    """The sections two fingerprints disagree on."""
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
