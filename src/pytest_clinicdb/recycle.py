"""Recycling a fresh clone that its test left unchanged, or only inserted into (no pytest import).

A ``clinic_db_fresh`` / ``clinic_dsn`` test gets a new clone of the template;
making one costs a ``CREATE DATABASE``, a first connection and a ``DROP
DATABASE``.  Many such tests only read, and many more only insert rows.  After
such a test its clone goes back to the pool instead of being dropped — *only*
when the server itself says that nothing else in it changed.  The evidence, all
of it from the server:

1. **No session is left.**  ``ALTER DATABASE … RENAME`` refuses while any
   backend is still attached to the database (the same check ``DROP DATABASE``
   makes, on the process array, which a backend leaves only *after* it has
   flushed its statistics).  The clone gets a new name on the way, so a
   connection string the test kept cannot reach the next test's database.
2. **No row of any table was updated or deleted**, system catalogs included,
   and **rows were inserted only into the database's own tables** (and their
   TOAST tables), never into a system catalog (so no ``CREATE``, ``ALTER``,
   ``DROP``, ``COMMENT``, ``GRANT``, ``TRUNCATE``, temporary table or large
   object): per relation, ``pg_stat_get_tuples_inserted/updated/deleted``, and
   the inserts add up to the database's own ``tup_inserted``.  Since PostgreSQL
   15 a backend adds its counts to the shared statistics before it exits —
   committed, rolled back, or aborted alike — so the counts are exact once the
   rename succeeded.  (On 14 the statistics collector receives them later, over
   UDP: no recycling there.)
3. **No table was vacuumed or analyzed** (both change ``pg_class`` in place,
   which the row counts do not see).
4. **The statistics were not reset** (``pg_stat_reset()`` would zero the counts
   above): ``stats_reset`` is what it was when the clone was handed out.
5. **The database itself is as made**: its settings (``ALTER DATABASE … SET``,
   ``pg_db_role_setting``), its ``pg_database`` row (owner, connection limit,
   ``datallowconn``, privileges), its comment (the pytest-clinicdb marker), no
   prepared transaction and no replication slot in it.

If the test inserted rows, :func:`undo_inserts` deletes them: every row of a
written table whose ``xmin`` is the transaction ID the clone was handed out at
or later (the template's rows are older), in one transaction of a superuser
session with ``session_replication_role = replica``, so no trigger, rule or
foreign-key action fires (a table with a DELETE trigger or rule enabled
``ALWAYS`` or ``REPLICA`` is not undone; a table that yields more such rows
than the test inserted aborts it).  Each sequence the test used (its block was
read) is set back to the template's value with ``setval``.  After the statistics
reset the written tables must still read as in a new clone (:data:`TABLE_FACTS`:
``pg_class``'s sizes, ``relfrozenxid``, their ``pg_statistic`` rows), so a VACUUM
or ANALYZE by an autovacuum worker, drawn by the inserts, is seen even when the
reset zeroed its counts.  The template's sequences and table facts are read once
per process, from its first clone.

Any doubt — a session still attached, a query error, any counter that does not
fit — and the clone is dropped as before.  The recycled clone's activity
statistics are reset (``pg_stat_reset()``), so ``pg_stat_user_tables`` reads as
on a new clone; what still tells it from a new one is its ``stats_reset``
timestamp, its OID, the ``xmax`` a ``SELECT … FOR UPDATE`` leaves on the rows
it locked (a row lock writes no row), and, after deleted inserts, what is on
disk: the deleted rows stay as dead rows until a VACUUM (which would change the
catalog), so a new row's ``ctid``, a table's size on disk and the planner's
size estimates can differ, and a sequence's ``log_cnt`` reads 0.  A clone goes
back this way at most :data:`MAX_UNDONE` times.  A superuser test that turns
``track_counts`` off in its own session hides its writes from the counters:
don't.  (A server, database or role with ``track_counts`` off gets no
recycling at all.)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

#: What the server knows of a database from any connection (``%s``: its name).
DATABASE_STATE = """
SELECT d.tup_inserted + d.tup_updated + d.tup_deleted,
       d.stats_reset,
       row(db.datdba, db.datconnlimit, db.datallowconn, db.datistemplate,
           db.datacl::text, db.dattablespace,
           (SELECT array_agg(s.setrole::text || ':' || array_to_string(s.setconfig, ','))
              FROM pg_db_role_setting s WHERE s.setdatabase = db.oid),
           shobj_description(db.oid, 'pg_database'),
           (SELECT count(*) FROM pg_prepared_xacts x WHERE x.database = db.datname),
           (SELECT count(*) FROM pg_replication_slots r WHERE r.database = db.datname))::text,
       -- Counting at all: no session of any role may have turned the counters off.
       current_setting('track_counts')::bool AND NOT EXISTS (
           SELECT FROM pg_db_role_setting s
            WHERE array_to_string(s.setconfig, ',') ~* 'track_counts'),
       d.tup_updated + d.tup_deleted,
       -- The next transaction ID: every row a test writes has this one or a later one.
       pg_snapshot_xmax(pg_current_snapshot())::text::bigint
  FROM pg_stat_database d JOIN pg_database db ON db.oid = d.datid
 WHERE d.datname = %s
"""

#: What only a connection to the database itself can read.
LOCAL_STATE = """
SELECT coalesce(sum(pg_stat_get_blocks_fetched(c.oid))
                  FILTER (WHERE c.relkind = 'S'), 0),
       coalesce(sum(pg_stat_get_vacuum_count(c.oid) + pg_stat_get_autovacuum_count(c.oid)
                    + pg_stat_get_analyze_count(c.oid) + pg_stat_get_autoanalyze_count(c.oid))
                  FILTER (WHERE c.relkind IN ('r', 'm', 't', 'p')), 0)
  FROM pg_class c
 WHERE NOT c.relisshared  -- shared catalogs are vacuumed from every database
"""

#: The first PostgreSQL whose backends flush their statistics before they leave.
MIN_MAJOR = 15


@dataclass(frozen=True)
class CloneState:
    """What a clone looked like when it was handed out (see :data:`DATABASE_STATE`)."""

    writes: int
    stats_reset: object
    sequence_reads: int
    maintenance: int
    database: str
    counting: bool = True
    #: Of ``writes``, the rows updated or deleted (the rest were inserted).
    rewrites: int = 0
    #: The next transaction ID when the clone was first handed out.
    next_xid: int = 0
    #: How many times the inserts of a test were deleted from this clone.
    undone: int = 0

    @classmethod
    def read(cls, conn: Any) -> CloneState:
        """The state of the database ``conn`` is connected to."""
        return cls.of_new(conn, conn.info.dbname).with_local(conn)

    @classmethod
    def of_new(cls, admin: Any, name: str) -> CloneState:
        """What any connection (``admin``) sees of database ``name``; what only a connection
        to it can see reads 0 (so this is all of a clone nobody has connected to yet)."""
        row = admin.execute(DATABASE_STATE, (name,)).fetchone()
        if row is None:
            raise LookupError(f"no database {name}")
        return cls(int(row[0]), row[1], 0, 0, str(row[2]), bool(row[3]), int(row[4]), int(row[5]))

    def with_local(self, conn: Any) -> CloneState:
        """This state completed with what ``conn``, connected to the database, reads."""
        local = conn.execute(LOCAL_STATE).fetchone()
        return replace(self, sequence_reads=int(local[0]), maintenance=int(local[1]))

    def wrote_since(self, handed_out: CloneState) -> bool:
        """Whether rows were written or a sequence used since ``handed_out`` (what
        :func:`undo_inserts` deletes and puts back, when those are all)."""
        return self.writes != handed_out.writes or self.sequence_reads != handed_out.sequence_reads

    def changed_since(
        self, handed_out: CloneState, *, local: bool = True, inserts: bool = False
    ) -> str | None:
        """None if nothing changed since ``handed_out``; else what did.  With ``local=False``
        only what any connection sees is compared (a cheap first look); with
        ``inserts=True`` inserted rows and used sequences are not changes (``undo_inserts``
        deletes and resets them)."""
        if not (self.counting and handed_out.counting):
            return "the server does not count writes (track_counts is off somewhere)"
        if self.rewrites != handed_out.rewrites:
            return f"{self.rewrites - handed_out.rewrites} row(s) updated or deleted"
        if not inserts and self.writes != handed_out.writes:
            return f"{self.writes - handed_out.writes} row(s) written"
        if self.stats_reset != handed_out.stats_reset:
            return "its statistics were reset"
        if self.database != handed_out.database:
            return "the database's settings, privileges or comment changed"
        if local and not inserts and self.sequence_reads != handed_out.sequence_reads:
            return "a sequence was used"
        if local and self.maintenance != handed_out.maintenance:
            return "a table was vacuumed or analyzed"
        return None


#: Per table (and TOAST table) of the database's own: what VACUUM and ANALYZE change in
#: the catalog, in place, where the row counts do not see it (``%s``: the OIDs, or NULL for all).
TABLE_FACTS = """
SELECT c.oid,
       concat_ws(':', c.relpages, c.reltuples, c.relallvisible, c.relfrozenxid, c.relminmxid,
                 (SELECT count(*) FROM pg_statistic s WHERE s.starelid = c.oid))
  FROM pg_class c
 WHERE c.relkind IN ('r', 't') AND NOT c.relisshared AND (%s::oid[] IS NULL OR c.oid = ANY(%s))
"""


@dataclass(frozen=True)
class TemplateFacts:
    """What a new clone of a template holds that deleting a test's inserts restores or
    must find as it was: its sequences (OID → value, is_called) and :data:`TABLE_FACTS`."""

    sequences: dict[int, tuple[int, bool]]
    tables: dict[int, str]

    @classmethod
    def read(cls, conn: Any) -> TemplateFacts:
        """The facts of the database ``conn`` is connected to (a new clone)."""
        from psycopg import sql

        rows = conn.execute(
            "SELECT c.oid, n.nspname, c.relname FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'S'"
        ).fetchall()
        sequences: dict[int, tuple[int, bool]] = {}
        if rows:
            query = sql.SQL(" UNION ALL ").join(
                sql.SQL("SELECT {}::oid, last_value, is_called FROM {}").format(
                    sql.Literal(oid), sql.Identifier(nsp, rel)
                )
                for oid, nsp, rel in rows
            )
            sequences = {int(o): (int(v), bool(c)) for o, v, c in conn.execute(query)}
        tables = {int(o): str(f) for o, f in conn.execute(TABLE_FACTS, (None, None))}
        return cls(sequences, tables)

    def tables_changed(self, conn: Any, oids: list[int]) -> str | None:
        """None if the tables ``oids`` read as in a new clone; else which one does not (a
        VACUUM or ANALYZE, autovacuum's too, whose counts a statistics reset zeroed)."""
        for oid, facts in conn.execute(TABLE_FACTS, (oids, oids)):
            if self.tables.get(int(oid)) != facts:
                return f"table {oid} was vacuumed or analyzed"
        return None


#: What the tests wrote, per relation of the database (shared catalogs are not its own).
WRITTEN = """
SELECT c.oid, c.relkind, format('%I.%I', n.nspname, c.relname),
       pg_stat_get_tuples_inserted(c.oid),
       pg_stat_get_tuples_updated(c.oid) + pg_stat_get_tuples_deleted(c.oid),
       n.nspname IN ('pg_catalog', 'information_schema')
         OR (c.relkind = 't' AND NOT EXISTS (
               SELECT FROM pg_class o WHERE o.reltoastrelid = c.oid
                  AND o.relnamespace NOT IN ('pg_catalog'::regnamespace,
                                             'information_schema'::regnamespace))),
       -- a DELETE trigger or rule that fires even for a replica session (ENABLE ALWAYS or
       -- ENABLE REPLICA): deleting the rows could write elsewhere
       EXISTS (SELECT FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgenabled IN ('A', 'R')
                  AND t.tgtype & 8 <> 0)
         OR EXISTS (SELECT FROM pg_rewrite r WHERE r.ev_class = c.oid
                       AND r.ev_enabled IN ('A', 'R') AND r.ev_type = '4')
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE NOT c.relisshared
   AND CASE WHEN c.relkind = 'S' THEN pg_stat_get_blocks_fetched(c.oid) > 0
            ELSE pg_stat_get_tuples_inserted(c.oid) + pg_stat_get_tuples_updated(c.oid)
                 + pg_stat_get_tuples_deleted(c.oid) > 0 END
"""

#: A clone whose inserts were deleted this many times is dropped: the deleted rows stay
#: on disk as dead rows until a VACUUM, which would change the catalog.
MAX_UNDONE = 20
#: The first ordinary transaction ID; 0 to 2 are special (a wrapped counter).
_FIRST_NORMAL_XID = 3


class NotUndone(Exception):
    """The inserts of a test cannot be deleted (or, afterwards, the clone is not as new)."""


def undo_inserts(
    conn: Any, state: CloneState, handed_out: CloneState, facts: TemplateFacts
) -> list[int]:
    """Delete the rows inserted into the clone ``conn`` is connected to since it was
    handed out, and put back the sequences used; return the OIDs of the tables written
    (none for a test that only read).  Raises :class:`NotUndone` (nothing deleted) unless
    the test did nothing but insert rows into the database's own tables and use its
    sequences (``changed_since(..., inserts=True)`` said so of the rest).
    """
    if not state.wrote_since(handed_out):
        return []  # read only
    if handed_out.undone >= MAX_UNDONE:
        raise NotUndone(f"its inserts were deleted {MAX_UNDONE} times already")
    xid = handed_out.next_xid % 2**32
    if xid < _FIRST_NORMAL_XID:
        raise NotUndone("the transaction ID counter wrapped")
    tables: list[tuple[str, int]] = []
    written: list[int] = []
    reset: list[int] = []
    inserted = 0
    for oid, kind, name, ins, rewritten, system, fires in conn.execute(WRITTEN).fetchall():
        if kind == "S":
            if int(oid) not in facts.sequences:
                raise NotUndone(f"sequence {name} is not the template's")
            reset.append(int(oid))
        elif rewritten or system or kind not in ("r", "t"):
            raise NotUndone(f"{name} was written to")
        elif fires:
            raise NotUndone(f"{name} has a DELETE trigger or rule that fires in replica sessions")
        else:
            inserted += int(ins)
            written.append(int(oid))
            if kind == "r":
                tables.append((name, int(ins)))
    if inserted != state.writes - handed_out.writes:
        raise NotUndone("the rows written do not add up to the database's count")
    from psycopg import sql

    values = [facts.sequences[o] for o in reset]
    with conn.transaction():
        # As superuser and replica: no trigger, rule or foreign-key action fires.
        conn.execute("SET LOCAL session_replication_role = replica")
        for name, ins in tables:
            cur = conn.execute(
                sql.SQL("DELETE FROM ONLY {} WHERE age(xmin) <= age(%s::text::xid)").format(
                    sql.SQL(name)
                ),
                (xid,),
            )
            if cur.rowcount > ins:  # rolls the deletes back
                raise NotUndone(f"{name}: {cur.rowcount} rows newer than the clone")
        if reset:
            conn.execute(
                "SELECT setval(s, v, c) FROM unnest(%s::oid[], %s::bigint[], %s::bool[]) "
                "AS x(s, v, c)",
                (reset, [v for v, _ in values], [c for _, c in values]),
            )
    # This session's own counts (the deletes) go to the statistics now, before the reset.
    conn.execute("SELECT pg_stat_force_next_flush()")
    return written


#: After ``pg_stat_reset()``: the counters that changed (the database's row did not).
AFTER_RESET = f"""
SELECT d.tup_inserted + d.tup_updated + d.tup_deleted, d.stats_reset, local.*,
       d.tup_updated + d.tup_deleted
  FROM pg_stat_database d, ({LOCAL_STATE}) local
 WHERE d.datname = current_database()
"""


def reset_counters(conn: Any, state: CloneState) -> CloneState:
    """Zero the activity statistics of the clone ``conn`` is connected to, whose state
    is ``state``; return its state as the next test gets it."""
    conn.execute("SELECT pg_stat_reset()")
    # The reset is immediate; the counters read 0 from here on.
    row = conn.execute(AFTER_RESET).fetchone()
    return replace(
        state, writes=int(row[0]), stats_reset=row[1], sequence_reads=int(row[2]),
        maintenance=int(row[3]), rewrites=int(row[4]),
    )  # fmt: skip
