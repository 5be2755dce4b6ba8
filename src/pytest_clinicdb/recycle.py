"""Recycling a fresh clone that its test left unchanged (no pytest import).

A ``clinic_db_fresh`` / ``clinic_dsn`` test gets a new clone of the template;
making one costs a ``CREATE DATABASE``, a first connection and a ``DROP
DATABASE``.  Many such tests only read.  After such a test its clone goes back
to the pool instead of being dropped — *only* when the server itself says that
nothing in it changed.  The evidence, all of it from the server:

1. **No session is left.**  ``ALTER DATABASE … RENAME`` refuses while any
   backend is still attached to the database (the same check ``DROP DATABASE``
   makes, on the process array, which a backend leaves only *after* it has
   flushed its statistics).  The clone gets a new name on the way, so a
   connection string the test kept cannot reach the next test's database.
2. **No row of any table changed**, system catalogs included (so no ``CREATE``,
   ``ALTER``, ``DROP``, ``COMMENT``, ``GRANT``, ``TRUNCATE``, temporary table or
   large object): the database's ``tup_inserted + tup_updated + tup_deleted``
   is 0.  Since PostgreSQL 15 a backend adds its counts to the shared
   statistics before it exits — committed, rolled back, or aborted alike — so
   the count is exact once the rename succeeded.  (On 14 the statistics
   collector receives them later, over UDP: no recycling there.)
3. **No sequence was touched**: ``nextval``, ``setval`` and even reading a
   sequence fetch its block, and ``pg_statio_all_sequences`` counts it.
4. **No table was vacuumed or analyzed** (both change ``pg_class`` in place,
   which the row counts do not see).
5. **The statistics were not reset** (``pg_stat_reset()`` would zero the counts
   above): ``stats_reset`` is what it was when the clone was handed out.
6. **The database itself is as made**: its settings (``ALTER DATABASE … SET``,
   ``pg_db_role_setting``), its ``pg_database`` row (owner, connection limit,
   ``datallowconn``, privileges), its comment (the pytest-clinicdb marker), no
   prepared transaction and no replication slot in it.

Any doubt — a session still attached, a query error, any counter not zero —
and the clone is dropped as before.  The recycled clone's activity statistics
are reset (``pg_stat_reset()``), so ``pg_stat_user_tables`` reads as on a new
clone; what still tells it from a new one is its ``stats_reset`` timestamp, its
OID, and the ``xmax`` a ``SELECT … FOR UPDATE`` leaves on the rows it locked
(a row lock writes no row).  A superuser test that turns ``track_counts`` off in
its own session hides its writes from the counters: don't.  (A server, database
or role with ``track_counts`` off gets no recycling at all.)
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
            WHERE array_to_string(s.setconfig, ',') ~* 'track_counts')
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
        return cls(int(row[0]), row[1], 0, 0, str(row[2]), bool(row[3]))

    def with_local(self, conn: Any) -> CloneState:
        """This state completed with what ``conn``, connected to the database, reads."""
        local = conn.execute(LOCAL_STATE).fetchone()
        return replace(self, sequence_reads=int(local[0]), maintenance=int(local[1]))

    def changed_since(self, handed_out: CloneState, *, local: bool = True) -> str | None:
        """None if nothing changed since ``handed_out``; else what did.  With ``local=False``
        only what any connection sees is compared (a cheap first look)."""
        if not (self.counting and handed_out.counting):
            return "the server does not count writes (track_counts is off somewhere)"
        if self.writes != handed_out.writes:
            return f"{self.writes - handed_out.writes} row(s) written"
        if self.stats_reset != handed_out.stats_reset:
            return "its statistics were reset"
        if self.database != handed_out.database:
            return "the database's settings, privileges or comment changed"
        if local and self.sequence_reads != handed_out.sequence_reads:
            return "a sequence was used"
        if local and self.maintenance != handed_out.maintenance:
            return "a table was vacuumed or analyzed"
        return None


#: After ``pg_stat_reset()``: the counters that changed (the database's row did not).
AFTER_RESET = f"""
SELECT d.tup_inserted + d.tup_updated + d.tup_deleted, d.stats_reset, local.*
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
        maintenance=int(row[3]),
    )  # fmt: skip
