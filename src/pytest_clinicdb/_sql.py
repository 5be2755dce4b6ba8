"""SQL fragments shared by the catalog queries (no pytest or psycopg import)."""

from __future__ import annotations


def qualified(oid: str) -> str:
    """SQL for the schema-qualified, quoted name of relation ``oid`` (an SQL expression).

    ``oid::regclass::text`` leaves out schemas on the session's search_path, so
    the same table would be spelled two ways in two sessions (a project's
    ``ALTER ROLE … SET search_path`` is enough): names built by this are always
    ``schema.table``, whatever the search_path.
    """
    return (
        "(SELECT quote_ident(qn.nspname) || '.' || quote_ident(qc.relname) "
        f"FROM pg_class qc JOIN pg_namespace qn ON qn.oid = qc.relnamespace WHERE qc.oid = {oid})"
    )
