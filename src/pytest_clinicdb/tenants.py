"""Tenant isolation: act as the application's role for one tenant, and check the tenants apart.

A multi-tenant application connects as a role (``clinic_app``) and names its
tenant in a session setting (``app.current_clinic_id``); row-level security
does the rest.  Tests usually connect as the owner of the tables, which
row-level security does not apply to, so a suite can pass while production
leaks.  This module gives tests the application's view:

* :func:`acting_as` runs a block as a role, with transaction-local settings,
  and restores the previous role and settings afterwards;
* :func:`check_tenant_isolation` measures, table by table, what the role sees
  and may write acting for each tenant, without knowing the tenant columns
  (rows are compared by primary key, or ``ctid``), and returns
  :class:`~pytest_clinicdb.checks.Finding` objects like the other checks.
  :func:`probe_tenant_isolation` returns the same findings with what was
  probed, for reports.

Everything the check does happens in savepoints that are rolled back: it
leaves no row and no setting behind (sequences it touched may have advanced).
It needs a connection as the tables' owner or a superuser, allowed to
``SET ROLE`` to the role; it reads every key of every table the role may read,
which is meant for test databases.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from .checks import Finding
from .errors import CheckError

CHECK = "tenant-isolation"

#: Schemas never checked: PostgreSQL's own and the migration runner's ledger.
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "clinicdb")

_SAMPLES = 3

Conn = psycopg.Connection[Any]
AsyncConn = psycopg.AsyncConnection[Any]


# ------------------------------------------------------------------------------------ acting_as


def _setting_values(
    settings: Mapping[str, object] | None, more: Mapping[str, object]
) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, value in {**(settings or {}), **more}.items():
        if not name:
            raise CheckError("acting_as: a setting needs a name")
        # None means "unset": an empty string, which a NULL-safe policy treats as no tenant.
        values[name] = "" if value is None else str(value)
    return values


def _apply_sql(role: str | None, values: Mapping[str, str]) -> tuple[sql.Composed, list[str]]:
    """One statement that sets the role (when given) and the settings, transaction-locally."""
    parts: list[sql.Composable] = []
    params: list[str] = []
    if role is not None:
        parts.append(sql.SQL("set_config('role', %s, true)"))
        params.append(role)
    for name, value in values.items():
        parts.append(sql.SQL("set_config(%s, %s, true)"))
        params += [name, value]
    return sql.SQL("SELECT ") + sql.SQL(", ").join(parts), params


def _previous_sql(names: Iterable[str]) -> tuple[sql.Composed, list[str]]:
    parts: list[sql.Composable] = [sql.SQL("current_setting('role')")]
    params: list[str] = []
    for name in names:
        parts.append(sql.SQL("coalesce(current_setting(%s, true), '')"))
        params.append(name)
    return sql.SQL("SELECT ") + sql.SQL(", ").join(parts), params


@contextmanager
def acting_as(
    conn: Conn,
    role: str | None = None,
    /,
    settings: Mapping[str, object] | None = None,
    **more: object,
) -> Iterator[Conn]:
    """Run the block as ``role`` with transaction-local ``settings``; restore both afterwards.

    Setting names contain dots, so pass them as a mapping or unpack one::

        with acting_as(conn, "clinic_app", settings={"app.current_clinic_id": clinic_id}):
            ...
        with acting_as(conn, "clinic_app", **{"app.current_clinic_id": clinic_id}):
            ...

    ``role=None`` changes only the settings; a value of ``None`` sets the
    setting to ``''`` (unset, for a NULL-safe policy).  The role is set with
    ``SET LOCAL ROLE`` semantics and the settings with
    ``set_config(name, value, true)``, inside a savepoint:

    * in a transaction (inside ``clinic_db`` too), the block's writes stay in
      that transaction, and the previous role and settings are back after the
      block; if the block raises, its savepoint is rolled back (with its
      writes, as ``with conn.transaction():`` does);
    * on an idle connection that is not autocommit, a transaction is begun and
      left open for the caller to commit or roll back;
    * on an autocommit connection, the block runs in a transaction of its own,
      committed when the block ends (rolled back if it raises).
    """
    values = _setting_values(settings, more)
    if role is None and not values:
        yield conn  # nothing to set, nothing to restore
        return
    if conn.autocommit:
        with conn.transaction():
            conn.execute(*_apply_sql(role, values))
            yield conn
        return
    # A statement begins the transaction on an idle connection (psycopg sends BEGIN), so the
    # savepoint below does not become a transaction that commits when the block ends.
    previous = conn.execute(*_previous_sql(values)).fetchone()
    assert previous is not None
    with conn.transaction():
        conn.execute(*_apply_sql(role, values))
        try:
            yield conn
        finally:
            # RELEASE SAVEPOINT keeps what SET LOCAL did inside the savepoint: restore by hand.
            if conn.info.transaction_status == TransactionStatus.INTRANS:
                restored = dict(zip(values, previous[1:], strict=True))
                conn.execute(*_apply_sql(previous[0] if role is not None else None, restored))


@asynccontextmanager
async def acting_as_async(
    conn: AsyncConn,
    role: str | None = None,
    /,
    settings: Mapping[str, object] | None = None,
    **more: object,
) -> AsyncIterator[AsyncConn]:
    """:func:`acting_as` for ``psycopg.AsyncConnection`` (``clinic_db_async``)."""
    values = _setting_values(settings, more)
    if role is None and not values:
        yield conn
        return
    if conn.autocommit:
        async with conn.transaction():
            await conn.execute(*_apply_sql(role, values))
            yield conn
        return
    cur = await conn.execute(*_previous_sql(values))
    previous = await cur.fetchone()
    assert previous is not None
    async with conn.transaction():
        await conn.execute(*_apply_sql(role, values))
        try:
            yield conn
        finally:
            if conn.info.transaction_status == TransactionStatus.INTRANS:
                restored = dict(zip(values, previous[1:], strict=True))
                await conn.execute(*_apply_sql(previous[0] if role is not None else None, restored))


# ------------------------------------------------------------------------------- the catalog


@dataclass(frozen=True)
class _Column:
    name: str
    type: str
    generated: bool
    identity_always: bool


@dataclass(frozen=True)
class _Table:
    oid: int
    schema: str
    name: str
    rls: bool
    forced: bool
    owned_by_role: bool
    can_select: bool
    can_insert: bool
    can_update: bool
    can_delete: bool
    can_truncate: bool
    key: tuple[str, ...]  # primary key columns; () means rows are told apart by ctid
    columns: tuple[_Column, ...]

    @property
    def label(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)

    @property
    def key_label(self) -> str:
        if not self.key:
            return "ctid"
        return self.key[0] if len(self.key) == 1 else "(" + ", ".join(self.key) + ")"

    def column(self, name: str) -> _Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def writable_columns(self) -> list[_Column]:
        return [c for c in self.columns if not c.generated]


@dataclass(frozen=True)
class _ForeignKey:
    child: int
    child_columns: tuple[str, ...]
    parent_columns: tuple[str, ...]


_TABLES_SQL = """
SELECT c.oid, n.nspname, c.relname, c.relrowsecurity, c.relforcerowsecurity,
       pg_has_role(%(role)s, c.relowner, 'USAGE'),
       has_schema_privilege(%(role)s, n.oid, 'USAGE')
           AND has_any_column_privilege(%(role)s, c.oid, 'SELECT'),
       has_schema_privilege(%(role)s, n.oid, 'USAGE')
           AND has_any_column_privilege(%(role)s, c.oid, 'INSERT'),
       has_schema_privilege(%(role)s, n.oid, 'USAGE')
           AND has_any_column_privilege(%(role)s, c.oid, 'UPDATE'),
       has_schema_privilege(%(role)s, n.oid, 'USAGE')
           AND has_table_privilege(%(role)s, c.oid, 'DELETE'),
       has_schema_privilege(%(role)s, n.oid, 'USAGE')
           AND has_table_privilege(%(role)s, c.oid, 'TRUNCATE'),
       coalesce((SELECT array_agg(a.attname::text ORDER BY k.i)
                   FROM pg_index x
                   CROSS JOIN LATERAL unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, i)
                   JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
                  WHERE x.indrelid = c.oid AND x.indisprimary), ARRAY[]::text[]),
       (SELECT array_agg(array[a.attname::text, format_type(a.atttypid, a.atttypmod),
                               (a.attgenerated <> '')::text, (a.attidentity = 'a')::text]
                         ORDER BY a.attnum)
          FROM pg_attribute a
         WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p')
   AND NOT c.relispartition
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_namespace'::regclass AND d.objid = n.oid
                      AND d.deptype = 'e')
   AND {schemas}
 ORDER BY n.nspname, c.relname
"""

_DEFAULT_SCHEMAS = (
    "n.nspname <> ALL(%(system)s) AND n.nspname NOT LIKE 'pg\\_toast%%'"
    " AND n.nspname NOT LIKE 'pg\\_temp\\_%%'"
)

_FOREIGN_KEYS_SQL = """
SELECT c.conrelid, c.confrelid,
       array(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, i)
               JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
              ORDER BY k.i),
       array(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY AS k(attnum, i)
               JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum
              ORDER BY k.i)
  FROM pg_constraint c
 WHERE c.contype = 'f' AND c.conparentid = 0
"""

_RELATION_SQL = """
SELECT c.oid, n.nspname, c.relname, false, false, false, false, false, false, false, false,
       ARRAY[]::text[],
       (SELECT array_agg(array[a.attname::text, format_type(a.atttypid, a.atttypmod),
                               (a.attgenerated <> '')::text, (a.attidentity = 'a')::text]
                         ORDER BY a.attnum)
          FROM pg_attribute a
         WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.oid = %s
"""


def _table_of(row: Sequence[Any]) -> _Table:
    columns = tuple(
        _Column(name, typ, generated == "true", ident == "true")
        for name, typ, generated, ident in (row[12] or [])
    )
    return _Table(
        oid=row[0],
        schema=row[1],
        name=row[2],
        rls=row[3],
        forced=row[4],
        owned_by_role=row[5],
        can_select=row[6],
        can_insert=row[7],
        can_update=row[8],
        can_delete=row[9],
        can_truncate=row[10],
        key=tuple(row[11]),
        columns=columns,
    )


class _Catalog:
    """Tables, columns and foreign keys, read once (relations outside the check on demand)."""

    def __init__(self, conn: Conn, role: str, schemas: Sequence[str] | None) -> None:
        self.conn = conn
        if schemas is None:
            where = sql.SQL(_DEFAULT_SCHEMAS)
        else:
            where = sql.SQL("n.nspname = ANY(%(schemas)s)")
        query = sql.SQL(_TABLES_SQL).format(schemas=where)
        params = {"role": role, "system": list(SYSTEM_SCHEMAS), "schemas": list(schemas or ())}
        self.tables = [_table_of(r) for r in conn.execute(query, params).fetchall()]
        self._by_oid = {t.oid: t for t in self.tables}
        self.referencing: dict[int, list[_ForeignKey]] = {}
        for child, parent, child_cols, parent_cols in conn.execute(_FOREIGN_KEYS_SQL).fetchall():
            self.referencing.setdefault(parent, []).append(
                _ForeignKey(child, tuple(child_cols), tuple(parent_cols))
            )

    def relation(self, oid: int) -> _Table:
        if oid not in self._by_oid:
            row = self.conn.execute(_RELATION_SQL, (oid,)).fetchone()
            assert row is not None
            self._by_oid[oid] = _table_of(row)
        return self._by_oid[oid]


# ----------------------------------------------------------------------------- SQL builders


def _where(table: _Table, columns: Sequence[str]) -> sql.Composable:
    """``col = CAST(%s AS type) AND ...``: values travel as text, cast to each column's type."""
    return sql.SQL(" AND ").join(
        sql.SQL("{} = CAST(%s AS {})").format(
            sql.Identifier(name), sql.SQL(table.column(name).type)
        )
        for name in columns
    )


def _key_where(table: _Table) -> sql.Composable:
    if table.key:
        return _where(table, table.key)
    return sql.SQL("ctid = CAST(%s AS tid)")


def _key_select(table: _Table) -> sql.Composable:
    if not table.key:
        return sql.SQL("ctid::text")
    return sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(k)) for k in table.key)


def _row_source(table: _Table) -> sql.Composable:
    """A one-row relation with the stored row image's values, typed as the table's row."""
    return sql.SQL("jsonb_populate_record(NULL::{}, CAST(%s AS jsonb))").format(table.ident)


Key = tuple[str, ...]


def _show_key(table: _Table, key: Key) -> str:
    values = ", ".join(key)
    return f"{table.key_label}={values if len(key) == 1 else '(' + values + ')'}"


# ------------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class Probe:
    """One write attempt: which, for which tenants, and what happened."""

    table: str
    probe: str  # read | insert | update | update-reach | delete-reach
    acting_for: str
    other: str
    outcome: str  # "crossed" (a finding), "refused: <SQLSTATE> ...", "no effect", "untested: ..."


@dataclass
class IsolationReport:
    """What :func:`probe_tenant_isolation` measured."""

    role: str
    setting: str
    tenants: list[str]
    findings: list[Finding] = field(default_factory=list)
    #: rows visible per table and tenant ("" for the setting unset or empty)
    visible: dict[str, dict[str, int]] = field(default_factory=dict)
    probes: list[Probe] = field(default_factory=list)
    seconds: float = 0.0

    def untested(self) -> list[Probe]:
        return [p for p in self.probes if p.outcome.startswith("untested")]


# ------------------------------------------------------------------------------- the check


def _tenant_values(conn: Conn, tenants: Sequence[object] | str) -> list[str]:
    if isinstance(tenants, str):
        with conn.transaction(force_rollback=True):
            rows = conn.execute(tenants).fetchall()
        raw: list[object] = [r[0] for r in rows]
        source = f"the query {tenants!r}"
    else:
        raw = list(tenants)
        source = "tenants="
    values: list[str] = []
    for value in raw:
        if value is None or str(value) == "":
            raise CheckError(
                f"check_tenant_isolation: {source} gave an empty tenant value",
                hint="a tenant is a non-empty value of the setting (e.g. a clinic id)",
            )
        if str(value) not in values:
            values.append(str(value))
    if len(values) < 2:
        raise CheckError(
            f"check_tenant_isolation needs at least two tenants to compare, {source} gave "
            f"{len(values)}: {values}",
            hint="give two or more values of the setting (e.g. two clinic ids), or a query "
            "returning them (e.g. 'SELECT id FROM clinic.clinics ORDER BY id')",
        )
    return values


def _role_bypass(conn: Conn, role: str) -> str | None:
    row = conn.execute(
        "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %s", (role,)
    ).fetchone()
    if row is None:
        raise CheckError(
            f"check_tenant_isolation: role {role!r} does not exist",
            hint="name the role the application connects as (or SET ROLEs to)",
        )
    if row[0]:
        return "SUPERUSER"
    if row[1]:
        return "BYPASSRLS"
    return None


class _Checker:
    def __init__(
        self,
        conn: Conn,
        catalog: _Catalog,
        role: str,
        setting: str,
        tenants: list[str],
        report: IsolationReport,
    ) -> None:
        self.conn = conn
        self.catalog = catalog
        self.role = role
        self.setting = setting
        self.tenants = tenants
        self.report = report

    # -- acting, inside the caller's savepoint

    def act(self, tenant: str | None) -> None:
        """Become the role for ``tenant`` (None: leave the setting as it is) until rollback."""
        self.conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(self.role)))
        if tenant is not None:
            self.conn.execute("SELECT set_config(%s, %s, true)", (self.setting, tenant))

    def show(self, tenant: str) -> str:
        return f"{self.setting}={tenant}" if tenant else f"{self.setting} unset"

    def finding(self, problem: str, fix: str) -> None:
        self.report.findings.append(Finding(CHECK, problem, fix))

    # -- reads

    def visible_keys(self, tables: Sequence[_Table], tenant: str | None) -> dict[str, set[Key]]:
        """Keys of each table's rows the role sees for ``tenant``; tables it cannot read: absent."""
        seen: dict[str, set[Key]] = {}
        with self.conn.transaction(force_rollback=True):
            self.act(tenant)
            for table in tables:
                query = sql.SQL("SELECT {} FROM {}").format(_key_select(table), table.ident)
                try:
                    with self.conn.transaction():
                        rows = self.conn.execute(query).fetchall()
                except psycopg.Error as exc:
                    # e.g. a policy that casts an empty setting: nothing is visible, but say so
                    message = (exc.diag.message_primary or str(exc)).strip()
                    outcome = f"untested: reading failed ({exc.sqlstate or '?'} {message})"
                    self.report.probes.append(Probe(table.label, "read", tenant or "", "", outcome))
                    continue
                seen[table.label] = {tuple(r) for r in rows}
        return seen

    # -- writes

    def purge(
        self,
        table: _Table,
        where: sql.Composable,
        params: Sequence[str],
        *,
        keep: bool = False,
        path: tuple[int, ...] = (),
    ) -> None:
        """Delete the rows of ``table`` matching ``where`` and, first, every row referencing them.

        Set-based: a child's rows are those whose foreign key is IN the parent's matching rows,
        whatever the key's ON DELETE action (RESTRICT/NO ACTION children would stop the delete).
        ``keep`` deletes only what references the rows.  A cycle of foreign keys (a table that
        references itself) is not followed: if such rows exist, the delete fails and the probe
        says it could not clear the way.
        """
        for fk in self.catalog.referencing.get(table.oid, []):
            if fk.child in (*path, table.oid):
                continue
            child = self.catalog.relation(fk.child)
            child_where = sql.SQL("({}) IN (SELECT {} FROM {} WHERE {})").format(
                sql.SQL(", ").join(sql.Identifier(c) for c in fk.child_columns),
                sql.SQL(", ").join(sql.Identifier(c) for c in fk.parent_columns),
                table.ident,
                where,
            )
            self.purge(child, child_where, params, path=(*path, table.oid))
        if not keep:
            self.conn.execute(
                sql.SQL("DELETE FROM {} WHERE {}").format(table.ident, where), list(params)
            )

    def purge_row(self, table: _Table, key: Key, *, keep_row: bool = False) -> None:
        """Delete a row and everything referencing it (``keep_row``: only the latter)."""
        self.purge(table, _key_where(table), key, keep=keep_row)

    def purge_all_but(self, table: _Table, key: Key) -> None:
        """Leave ``table`` with one row: delete every other row and what references them."""
        self.purge(table, sql.SQL("NOT ({})").format(_key_where(table)), key)

    def row_image(self, table: _Table, key: Key) -> str:
        """The row as jsonb text, without its generated columns (a write cannot set them)."""
        generated = [c.name for c in table.columns if c.generated]
        row = self.conn.execute(
            sql.SQL("SELECT (to_jsonb(t) - CAST(%s AS text[]))::text FROM {} AS t WHERE {}").format(
                table.ident, _key_where(table)
            ),
            [generated, *key],
        ).fetchone()
        if row is None:
            raise CheckError(
                f"{table.label}: the session cannot read its row {_show_key(table, key)}",
                hint="run the check as the tables' owner or a superuser",
            )
        image: str = row[0]
        return image

    def sees(
        self, table: _Table, tenant: str, key: Key | None, image: str, columns: Sequence[str]
    ) -> bool:
        """Does the role, acting for ``tenant``, see the row: by key, or (no key) by the values
        of ``columns`` in ``image``?"""
        self.conn.execute("SELECT set_config(%s, %s, true)", (self.setting, tenant))
        if key is not None:
            query = sql.SQL("SELECT count(*) FROM {} WHERE {}").format(
                table.ident, _where(table, table.key)
            )
            params: list[object] = list(key)
        else:
            query = sql.SQL(
                "SELECT count(*) FROM {} AS t WHERE to_jsonb(t) @> (SELECT jsonb_object_agg(k, v)"
                " FROM jsonb_each(CAST(%s AS jsonb)) AS e(k, v) WHERE k = ANY(%s))"
            ).format(table.ident)
            params = [image, list(columns)]
        try:
            with self.conn.transaction():
                row = self.conn.execute(query, params).fetchone()
        except psycopg.Error:
            return False
        return bool(row and row[0])

    def attempt(self, query: sql.Composed, params: Sequence[object]) -> tuple[int, str | None]:
        """Run a write as the role: (rows affected, None) or (0, "SQLSTATE message")."""
        try:
            with self.conn.transaction():
                cur = self.conn.execute(query, list(params))
        except psycopg.Error as exc:
            message = (exc.diag.message_primary or str(exc)).strip()
            return 0, f"{exc.sqlstate or '?'} {message}"
        return cur.rowcount, None

    def probe(self, table: _Table, kind: str, a: str, b: str, run: Callable[[], str]) -> None:
        """Run one probe in a savepoint rolled back afterwards; record its outcome."""
        try:
            with self.conn.transaction(force_rollback=True):
                outcome = run()
        except (psycopg.Error, CheckError) as exc:
            state = getattr(exc, "sqlstate", None) or "?"
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            outcome = f"untested: could not clear the way ({state} {first_line})"
        self.report.probes.append(Probe(table.label, kind, a, b, outcome))

    def skip(self, table: _Table, kind: str, a: str, b: str, why: str) -> None:
        self.report.probes.append(Probe(table.label, kind, a, b, f"untested: {why}"))

    def write_probes(
        self, table: _Table, a: str, b: str, only_a: set[Key], only_b: set[Key]
    ) -> None:
        """Acting for ``a``: put a row where ``b`` sees it, or reach a row only ``b`` sees.

        The rows used are real: a row only ``b`` sees (copied, or reached) and a row only ``a``
        sees (changed into the copy).  Each probe first clears the way, as the session's user:
        the copied row is deleted before its copy is inserted, and the update probes leave the
        table with the one row they use, each time with every row that references the deleted
        ones, so unique and exclusion constraints do not refuse the write for another reason.
        Every trigger and constraint stays on, and the probe's savepoint is rolled back.
        """
        b_key = min(only_b) if only_b else None
        a_key = min(only_a) if only_a else None
        if table.can_insert:
            if b_key is None:
                self.skip(table, "insert", a, b, f"no row only {self.show(b)} sees")
            else:
                self.probe(table, "insert", a, b, lambda: self.insert_copy(table, a, b, b_key))
        if table.can_update:
            if a_key is None or b_key is None:
                whose = self.show(a) if a_key is None else self.show(b)
                self.skip(table, "update", a, b, f"no row only {whose} sees")
            else:
                self.probe(
                    table, "update", a, b, lambda: self.update_into(table, a, b, a_key, b_key)
                )
        if b_key is None:
            return
        if table.can_update:
            self.probe(
                table, "update-reach", a, b, lambda: self.reach(table, "UPDATE", a, b, b_key)
            )
        if table.can_delete:
            self.probe(
                table, "delete-reach", a, b, lambda: self.reach(table, "DELETE", a, b, b_key)
            )

    def insert_copy(self, table: _Table, a: str, b: str, key: Key) -> str:
        """Acting for ``a``, insert a copy of ``b``'s row (``b``'s row deleted first)."""
        image = self.row_image(table, key)
        self.purge_row(table, key)
        columns = table.writable_columns
        names = sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
        overriding = sql.SQL(
            " OVERRIDING SYSTEM VALUE" if any(c.identity_always for c in columns) else ""
        )
        self.act(a)
        _, error = self.attempt(
            sql.SQL("INSERT INTO {} ({}){} SELECT {} FROM {}").format(
                table.ident, names, overriding, names, _row_source(table)
            ),
            [image],
        )
        if error:
            return f"refused: {error}"
        if not self.sees(table, b, key if table.key else None, image, [c.name for c in columns]):
            return "no effect"
        self.finding(
            f"{table.label}: {self.role} acting for {self.show(a)} inserted a row that "
            f"{self.show(b)} then sees (a copy of its row {_show_key(table, key)})",
            f"give the INSERT policy of {table.label} for {self.role} a WITH CHECK keyed on "
            f"{self.setting} (WITH CHECK (true), or a permissive policy without a tenant "
            f"condition, lets any row in); see {self.policies_hint(table)}",
        )
        return "crossed"

    def set_all(self, table: _Table, image: str) -> tuple[int, str | None, list[str]]:
        """Acting as the role: UPDATE every row it may update to the values of ``image``.

        No WHERE, and no column read on the right-hand side: a statement that reads a column
        of the table (a WHERE on the key, even on ctid) has the SELECT policies applied to the
        old and the new row, which would hide what the UPDATE policy alone lets through.  The
        caller leaves one row in the table first.
        """
        settable = [
            c for c in table.writable_columns if c.name not in table.key and not c.identity_always
        ]
        if not settable:
            return 0, None, []
        names = sql.SQL(", ").join(sql.Identifier(c.name) for c in settable)
        count, error = self.attempt(
            sql.SQL("UPDATE {} SET ({}) = (SELECT {} FROM {})").format(
                table.ident, names, names, _row_source(table)
            ),
            [image],
        )
        return count, error, [c.name for c in settable]

    def update_into(self, table: _Table, a: str, b: str, a_key: Key, b_key: Key) -> str:
        """Acting for ``a``, turn ``a``'s row into a copy of ``b``'s (the only row left)."""
        image = self.row_image(table, b_key)
        self.purge_all_but(table, a_key)
        # The changed row may carry new values of keys that its own dependents reference.
        self.purge_row(table, a_key, keep_row=True)
        self.act(a)
        count, error, changed = self.set_all(table, image)
        if error:
            return f"refused: {error}"
        if count == 0:
            return "no effect"
        if not self.sees(table, b, a_key if table.key else None, image, changed):
            return "no effect"
        self.finding(
            f"{table.label}: {self.role} acting for {self.show(a)} updated its row "
            f"{_show_key(table, a_key)} into one that {self.show(b)} then sees",
            f"give the UPDATE policy of {table.label} for {self.role} a WITH CHECK keyed on "
            f"{self.setting}, not only a USING; see {self.policies_hint(table)}",
        )
        return "crossed"

    def reach(self, table: _Table, command: str, a: str, b: str, key: Key) -> str:
        """Acting for ``a``, UPDATE (to its own values) or DELETE ``b``'s row, the only one left.

        No WHERE, for the reason :meth:`set_all` gives: ``UPDATE t SET x = 1`` or
        ``DELETE FROM t`` touch every row the UPDATE or DELETE policy lets through.
        """
        image = self.row_image(table, key)
        self.purge_all_but(table, key)
        self.act(a)
        if command == "UPDATE":
            count, error, changed = self.set_all(table, image)
            if not changed:
                return "no effect: no column to update"
        else:
            count, error = self.attempt(sql.SQL("DELETE FROM {}").format(table.ident), [])
        # A row the policies hide is simply not touched: no row, no error. Any other error
        # means the row was reached: "new row violates row-level security policy" (only the
        # WITH CHECK stopped this unchanged row; a changed one may pass), a foreign key of rows
        # referencing it, a trigger.
        refused = error is not None and error.startswith("42501") and "new row" not in error
        if not count and (error is None or refused):
            return f"refused: {error}" if error else "no effect"
        verb = "update" if command == "UPDATE" else "delete"
        self.finding(
            f"{table.label}: {self.role} acting for {self.show(a)} can {verb} a row that only "
            f"{self.show(b)} sees ({_show_key(table, key)})",
            f"key the USING of the {command} policy of {table.label} for {self.role} on "
            f"{self.setting}; see {self.policies_hint(table)}",
        )
        return "crossed" if count else f"crossed (then stopped: {error})"

    # -- fixes

    def policies_hint(self, table: _Table) -> str:
        return (
            "SELECT policyname, cmd, roles, qual, with_check FROM pg_policies "
            f"WHERE schemaname = '{table.schema}' AND tablename = '{table.name}'"
        )

    def rls_fix(self, table: _Table) -> str:
        return (
            f"ALTER TABLE {table.label} ENABLE ROW LEVEL SECURITY; "
            f"CREATE POLICY {table.name}_tenant_isolation ON {table.label} FOR ALL TO {self.role} "
            "USING (<tenant column> = "
            f"nullif(current_setting('{self.setting}', true), '')::<type>) "
            "WITH CHECK (<the same condition>); or REVOKE ALL ON "
            f"{table.label} FROM {self.role} if the role has no business with it; or list it in "
            "shared if every tenant may see every row"
        )


def _samples(table: _Table, keys: Iterable[Key]) -> str:
    chosen = sorted(keys)[:_SAMPLES]
    return ", ".join(_show_key(table, k) for k in chosen)


def _resolve_shared(conn: Conn, shared: Iterable[str]) -> dict[int, str]:
    resolved: dict[int, str] = {}
    for name in shared:
        row = conn.execute("SELECT to_regclass(%s)::oid", (name,)).fetchone()
        if row is None or row[0] is None:
            raise CheckError(
                f"check_tenant_isolation: shared table {name!r} does not exist",
                hint="name it schema.table (or as the search_path finds it)",
            )
        resolved[row[0]] = name
    return resolved


def probe_tenant_isolation(
    conn: Conn,
    *,
    role: str,
    setting: str,
    tenants: Sequence[object] | str,
    shared: Iterable[str] = (),
    schemas: Sequence[str] | None = None,
) -> IsolationReport:
    """:func:`check_tenant_isolation`, returning what was measured and probed with the findings."""
    started = time.perf_counter()
    # One savepoint (a transaction, on an autocommit connection) around everything: whatever a
    # probe does, nothing stays.
    with conn.transaction(force_rollback=True):
        bypass = _role_bypass(conn, role)
        # Called inside acting_as(conn, role): the check itself works as the session's user
        # (the owner), which it needs to clear rows out of the way; the rollback restores it.
        row = conn.execute("SELECT current_user = %s", (role,)).fetchone()
        if row and row[0]:
            conn.execute("SELECT set_config('role', 'none', true)")
        try:
            with conn.transaction(force_rollback=True):
                conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
        except psycopg.errors.InsufficientPrivilege:
            user = conn.execute("SELECT current_user::text").fetchone()
            raise CheckError(
                f"check_tenant_isolation: {user[0] if user else 'this session'} may not "
                f"SET ROLE {role}",
                hint=f"run the check as a superuser, or GRANT {role} TO the tables' owner",
            ) from None
        values = _tenant_values(conn, tenants)
        report = IsolationReport(role=role, setting=setting, tenants=values)
        shared_oids = _resolve_shared(conn, shared)
        catalog = _Catalog(conn, role, schemas)
        checker = _Checker(conn, catalog, role, setting, values, report)
        if bypass:
            checker.finding(
                f"role {role} has {bypass}: row-level security never applies to it",
                f"ALTER ROLE {role} NO{bypass}; the application's role must be subject to "
                "row-level security",
            )
        tenant_tables = [
            t for t in catalog.tables if t.oid not in shared_oids and _privileges_ok(checker, t)
        ]
        for table in catalog.tables:
            if table.oid in shared_oids:
                _check_shared(checker, table)

        # Acting for no tenant: the never-set state (NULL) if this session never set the
        # setting, then the empty string (what RESET, or a pooled connection, leaves).
        no_tenant: dict[str, set[Key]] = {}
        row = conn.execute("SELECT current_setting(%s, true)", (setting,)).fetchone()
        for state in ([None] if row is None or row[0] is None else []) + [""]:
            for label, keys in checker.visible_keys(tenant_tables, state).items():
                no_tenant.setdefault(label, set()).update(keys)
        per_tenant = {t: checker.visible_keys(tenant_tables, t) for t in values}

        for table in tenant_tables:
            sets = {t: per_tenant[t].get(table.label, set()) for t in values}
            _check_reads(checker, table, sets, no_tenant.get(table.label, set()), bypass)
            if not table.rls or (table.owned_by_role and not table.forced) or bypass:
                continue  # every write crosses: the findings above say so already
            for i, a in enumerate(values):
                b = values[(i + 1) % len(values)]
                checker.write_probes(table, a, b, sets[a] - sets[b], sets[b] - sets[a])
    # One table's findings together, in table order; a finding about the role itself first.
    report.findings.sort(key=lambda f: (not f.problem.startswith("role "), f.problem.split(":")[0]))
    report.seconds = time.perf_counter() - started
    return report


def _privileges_ok(checker: _Checker, table: _Table) -> bool:
    """Privilege findings of a tenant table; True when the role may read it (check its rows)."""
    role = checker.role
    if table.can_truncate:
        checker.finding(
            f"{table.label}: {role} may TRUNCATE it, which ignores row-level security and "
            "empties it for every tenant",
            f"REVOKE TRUNCATE ON {table.label} FROM {role}",
        )
    if not table.can_select:
        return False
    if not table.rls:
        checker.finding(
            f"{table.label}: {role} may read it (SELECT) but row-level security is not "
            "enabled, and it is not listed as shared",
            checker.rls_fix(table),
        )
    elif table.owned_by_role and not table.forced:
        checker.finding(
            f"{table.label}: row-level security does not apply to {role}, which owns it (or is "
            "a member of its owner), and it is not forced",
            f"ALTER TABLE {table.label} OWNER TO <another role>; or ALTER TABLE {table.label} "
            "FORCE ROW LEVEL SECURITY",
        )
    return True


def _check_shared(checker: _Checker, table: _Table) -> None:
    writes = [
        name
        for name, ok in (
            ("INSERT", table.can_insert),
            ("UPDATE", table.can_update),
            ("DELETE", table.can_delete),
            ("TRUNCATE", table.can_truncate),
        )
        if ok
    ]
    if writes and (not table.rls or table.can_truncate):
        checker.finding(
            f"{table.label}: listed as shared, and {checker.role} may {', '.join(writes)} it "
            "without row-level security: a write acting for one tenant changes what every "
            "tenant sees",
            f"REVOKE {', '.join(writes)} ON {table.label} FROM {checker.role}; or enable "
            "row-level security with policies for the writes",
        )


def _check_reads(
    checker: _Checker,
    table: _Table,
    sets: Mapping[str, set[Key]],
    no_tenant: set[Key],
    bypass: str | None,
) -> None:
    label, role, setting = table.label, checker.role, checker.setting
    report = checker.report
    report.visible[label] = {t: len(keys) for t, keys in sets.items()}
    report.visible[label][""] = len(no_tenant)
    owners: dict[Key, list[str]] = {}
    for tenant, keys in sets.items():
        for key in keys:
            owners.setdefault(key, []).append(tenant)
    overlap = {k: ts for k, ts in owners.items() if len(ts) > 1}
    if overlap:
        a, b = overlap[min(overlap)][:2]
        checker.finding(
            f"{label}: {len(overlap)} row(s) visible to {role} acting for more than one tenant, "
            f"e.g. {checker.show(a)} and {checker.show(b)} both see {_samples(table, overlap)}",
            f"enable row-level security on {label}, with a policy keyed on {setting}"
            if not table.rls
            else f"key the policies of {label} for {role} on {setting} so that a row passes "
            f"for one tenant only; see {checker.policies_hint(table)}",
        )
    leaked = no_tenant & set(owners)
    # Without row-level security (for this role), every session sees every row: said above.
    if leaked and table.rls and not bypass and not (table.owned_by_role and not table.forced):
        checker.finding(
            f"{label}: {len(leaked)} row(s) of tenants visible to {role} with {setting} unset or "
            f"empty, e.g. {_samples(table, leaked)}",
            f"make the policies of {label} match no row when {setting} is unset or empty: "
            f"compare with nullif(current_setting('{setting}', true), '') (NULL never matches); "
            f"see {checker.policies_hint(table)}",
        )


def check_tenant_isolation(
    conn: Conn,
    *,
    role: str,
    setting: str,
    tenants: Sequence[object] | str,
    shared: Iterable[str] = (),
    schemas: Sequence[str] | None = None,
) -> list[Finding]:
    """Findings where tenants are not isolated from each other for ``role``.

    ``role`` is the application's database role, ``setting`` the session
    setting naming the tenant (e.g. ``app.current_clinic_id``), ``tenants``
    two or more values of it — or a SQL query returning them in its first
    column.  ``shared`` lists tables (``schema.table``) every tenant may see
    by design; ``schemas`` narrows the check (default: every schema but
    PostgreSQL's own, extensions' and ``clinicdb``).

    For every table the role may read: rows visible acting for one tenant
    must be invisible acting for any other, and acting for none (setting unset
    or empty); the table must have row-level security (that applies to the
    role) unless it is shared; the role may not TRUNCATE it.  Then, acting for
    each tenant towards the next one in the list, it tries — in savepoints
    rolled back — to insert a copy of the other tenant's row (cleared out of
    the way first, with what references it), to turn one of its own rows into
    the other tenant's, and to update or delete a row only the other tenant
    sees.  A shared table the role may write without row-level security is a
    finding too.
    """
    return probe_tenant_isolation(
        conn, role=role, setting=setting, tenants=tenants, shared=shared, schemas=schemas
    ).findings
