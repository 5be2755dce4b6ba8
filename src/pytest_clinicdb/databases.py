"""The test databases of one process on one server: naming, clone, pool, drop, keep.

Every name is ``clinicdb_<kind>_<run>_<worker>_<n>`` and is journaled in the
run directory *before* ``CREATE DATABASE``, so a run killed between creating
and marking a clone still has it collected.  Every clone is marked (its owner
run) and gets the template's database-level settings and grants again, which
``CREATE DATABASE … TEMPLATE`` does not copy.
"""

from __future__ import annotations

import itertools
import time
from typing import TYPE_CHECKING, Any

from .connect import DROP_WAIT, close_session, wait_for_no_sessions
from .marker import PREFIX, Marker, write_marker

if TYPE_CHECKING:
    import psycopg

    from .pool import ClonePool
    from .recycle import TemplateFacts
    from .runs import Run
    from .server import ServerInfo
    from .templates import TemplateInfo


def create_database(
    admin: psycopg.Connection[Any], name: str, template: str | None, major: int
) -> None:
    """``CREATE DATABASE name [TEMPLATE t]`` (FILE_COPY where available: fastest with fsync off)."""
    from psycopg import sql

    if template is None:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return
    strategy = sql.SQL(" STRATEGY FILE_COPY") if major >= 15 else sql.SQL("")
    admin.execute(
        sql.SQL("CREATE DATABASE {} TEMPLATE {}{}").format(
            sql.Identifier(name), sql.Identifier(template), strategy
        )
    )


def apply_carry(admin: psycopg.Connection[Any], name: str, carry: dict[str, Any]) -> None:
    """Give ``name`` the database-level settings and grants recorded in a template's marker."""
    from .templates import carry_statements

    for statement in carry_statements(name, carry):
        admin.execute(statement)


def drop_database(
    admin: psycopg.Connection[Any],
    name: str,
    *,
    only_if_not_template: bool = False,
    wait: float = DROP_WAIT,
) -> bool:
    """Drop a database of ours (name prefix checked); True if it existed.

    Waits for the backends of closed connections to leave first: ``DROP
    DATABASE`` would otherwise sleep 100 ms for them.
    """
    from psycopg import sql

    if not name.startswith(PREFIX):
        raise ValueError(f"refusing to drop {name!r}: not a pytest-clinicdb database")
    row = admin.execute(
        "SELECT datistemplate FROM pg_database WHERE datname = %s", (name,)
    ).fetchone()
    if not row:
        return False
    if only_if_not_template and row[0]:
        return False
    wait_for_no_sessions(admin, name, wait)
    if row[0]:
        admin.execute(
            sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE false").format(sql.Identifier(name))
        )
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    return True


class Databases:
    """This process's databases on one server (one instance per run, worker and server)."""

    def __init__(self, run: Run, server: ServerInfo, *, recycle: bool = False) -> None:
        from .recycle import MIN_MAJOR

        self.run = run
        self.server = server
        self._may_recycle = recycle and server.major >= MIN_MAJOR
        self._recycle_asked = False
        self.recycled = 0
        #: Of the recycled clones, those whose test's inserts were deleted.
        self.undone = 0
        self._counter = itertools.count(1)
        self._admin: psycopg.Connection[Any] | None = None
        self._pools: dict[str, ClonePool] = {}
        #: Per template: what deleting a test's inserts restores or checks (see ``recycle``).
        self._facts: dict[str, TemplateFacts | None] = {}
        self.clone_times: list[float] = []
        self.drop_times: list[float] = []

    @property
    def recycling(self) -> bool:
        """Whether unchanged fresh clones go back to the pool (see :mod:`pytest_clinicdb.recycle`).

        Only where the role may reset a database's statistics (``pg_stat_reset()``: a
        superuser, or a role granted EXECUTE on it); asked of the server on first use.
        """
        if self._may_recycle and not self._recycle_asked:
            self._recycle_asked = True
            row = (
                self.admin()
                .execute("SELECT has_function_privilege('pg_stat_reset()', 'EXECUTE')")
                .fetchone()
            )
            self._may_recycle = bool(row and row[0])
        return self._may_recycle

    def admin(self) -> psycopg.Connection[Any]:
        """An autocommit connection to the maintenance database (one per process and server).

        It holds the run's liveness lock for as long as the process lives (see
        :func:`pytest_clinicdb.gc.hold_run_lock`): a run on another host tells this
        run's databases from a dead run's by asking the server.
        """
        from .connect import connect
        from .gc import hold_run_lock

        if self._admin is None or self._admin.closed or self._admin.broken:
            self._admin = connect(self.server.dsn, autocommit=True)
            hold_run_lock(self._admin, self.run.id)
        return self._admin

    def new_name(self, kind: str) -> str:
        name = f"{PREFIX}{kind}_{self.run.id}_{self.run.worker}_{next(self._counter)}"
        self.run.journal(name)
        return name

    # ------------------------------------------------------------ clone

    def clone(
        self, template: TemplateInfo, kind: str, admin: psycopg.Connection[Any] | None = None
    ) -> str:
        """A new marked clone of ``template``; its name."""
        import psycopg

        admin = admin or self.admin()
        name = self.new_name(kind)
        t0 = time.perf_counter()
        try:
            create_database(admin, name, template.name, self.server.major)
        except psycopg.errors.InvalidCatalogName:
            # The template went away under us (another run's --clinicdb-rebuild or its
            # garbage collection): ensure it again, once.
            if template.renew is None:
                raise
            template.replace_with(template.renew())
            create_database(admin, name, template.name, self.server.major)
        write_marker(
            admin,
            name,
            Marker(
                "clone",
                owner=self.run.ref.to_dict(),
                worker=self.run.worker,
                template=template.name,
            ),
        )
        if template.carry:
            apply_carry(admin, name, template.carry)
        self.clone_times.append(time.perf_counter() - t0)
        return name

    def fresh(self, template: TemplateInfo, *, connection: bool = False) -> str:
        """A clone for one test; after the first, made ahead by a background pool.

        ``connection``: the test wants a connection to it (``clinic_db_fresh``); recycled
        clones then come with one (see :meth:`connection`), as the next test likely wants too.
        """
        from .pool import ClonePool

        kind = "f" if template.variant == "base" else "fd"
        pool = self._pools.get(template.name)
        if pool is not None:
            pool.keep_sessions = connection
            name = pool.take()
            if name is not None:
                return name
        name = self.clone(template, kind)
        if pool is None:
            if self.recycling and self.server.superuser:  # deleting inserts needs one
                self._facts[template.name] = self._read_facts(name)
            self._pools[template.name] = pool = ClonePool(
                admin_dsn=self.server.dsn,
                dsn_for=self.server.dsn_for,
                make=lambda admin: self.clone(template, kind, admin),
                drop=self._drop_on,
                inspect=self._inspect if self.recycling else None,
                recycle=(
                    lambda admin, name, state: self._recycle(
                        admin, name, kind, state, self._facts.get(template.name)
                    )
                )
                if self.recycling
                else None,
            )
            pool.keep_sessions = connection
        return name

    def connection(self, template: TemplateInfo, name: str) -> psycopg.Connection[Any] | None:
        """The connection that came with the recycled clone ``name``, if any: the session
        that proved it unchanged (or deleted its inserts), now as a new connection is (not
        in autocommit mode, no setting changed), handed to its next test."""
        pool = self._pools.get(template.name)
        return pool.connection(name) if pool is not None else None

    def release(self, template: TemplateInfo, name: str) -> None:
        """A test is done with its fresh clone: drop it (in the background when pooled)."""
        pool = self._pools.get(template.name)
        if pool is not None and pool.error is None:
            pool.give_back(name)
        else:
            self.drop(name)

    # ------------------------------------------------------------ recycle

    @staticmethod
    def _inspect(admin: psycopg.Connection[Any], name: str) -> object:
        from .recycle import CloneState

        return CloneState.of_new(admin, name)

    def _read_facts(self, name: str) -> TemplateFacts | None:
        """What a new clone (so its template) holds, or None if it cannot be read."""
        import psycopg

        from .connect import connect
        from .recycle import TemplateFacts

        try:
            conn = connect(self.server.dsn_for(name), autocommit=True)
            try:
                return TemplateFacts.read(conn)
            finally:
                close_session(conn, self.admin())  # the clone goes to a test next
        except psycopg.Error:
            return None

    def _recycle(
        self,
        admin: psycopg.Connection[Any],
        name: str,
        kind: str,
        handed_out: object,
        facts: TemplateFacts | None = None,
    ) -> tuple[str, object, psycopg.Connection[Any] | None] | None:
        """``name`` under a new name if its test changed nothing, or only inserted rows
        (deleted here) and used sequences (put back), its state and the connection that
        proved it (open, for its next test); else None (it is dropped).  Without the
        template's ``facts`` a clone whose test inserted rows is dropped."""
        import dataclasses

        import psycopg
        from psycopg import sql

        from .connect import connect
        from .recycle import CloneState, NotUndone, reset_counters, undo_inserts

        assert isinstance(handed_out, CloneState)
        if not wait_for_no_sessions(admin, name, wait=1.0):  # a connection the test kept open
            self._drop_on(admin, name, wait=0.0)
            return None
        new = self.new_name(kind)
        try:
            # Refused while any backend is attached; a backend leaves only after its
            # statistics are flushed, so the counters read below are complete.
            admin.execute(
                sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                    sql.Identifier(name), sql.Identifier(new)
                )
            )
        except psycopg.Error:
            self._drop_on(admin, name)
            return None
        try:
            # What any session sees first, from this warm one: a test that updated or
            # deleted rows is dropped without a connection to its clone.
            shared = CloneState.of_new(admin, new)
            inserts = facts is not None
            if shared.changed_since(handed_out, local=False, inserts=inserts) is None:
                conn = connect(self.server.dsn_for(new), autocommit=True)
                try:
                    state = shared.with_local(conn)
                    if state.changed_since(handed_out, inserts=inserts) is None:
                        written = undo_inserts(conn, state, handed_out, facts) if facts else []
                        undone = state.wrote_since(handed_out)
                        state = reset_counters(conn, state)
                        # After the reset: a VACUUM or ANALYZE that ended before it (an
                        # autovacuum worker's, drawn by the inserts) left its mark here.
                        if facts is None or facts.tables_changed(conn, written) is None:
                            self.recycled += 1
                            self.undone += undone
                            state = dataclasses.replace(
                                state,
                                next_xid=handed_out.next_xid,
                                undone=handed_out.undone + undone,
                            )
                            # Its next test may get this session, as psycopg.connect
                            # gives one (the pool decides).
                            conn.autocommit = False
                            kept, conn = conn, None
                            return new, state, kept
                finally:
                    if conn is not None:
                        conn.close()
        except (psycopg.Error, LookupError, NotUndone):
            pass
        self._drop_on(admin, new)
        return None

    # ------------------------------------------------------------ drop, keep

    def _drop_on(self, admin: psycopg.Connection[Any], name: str, wait: float = DROP_WAIT) -> None:
        t0 = time.perf_counter()
        drop_database(admin, name, wait=wait)
        self.drop_times.append(time.perf_counter() - t0)

    def drop(self, name: str) -> None:
        self._drop_on(self.admin(), name)

    def keep(self, name: str, nodeid: str) -> str:
        """Keep a failed test's database (``--clinicdb-keep-failed``); return its DSN."""
        write_marker(self.admin(), name, Marker("kept", owner=self.run.ref.to_dict(), test=nodeid))
        dsn = self.server.dsn_for(name)
        kept = [*self.run.report().get("kept", []), {"test": nodeid, "dsn": dsn}]
        self.run.write_report(kept=kept)
        return dsn

    # ------------------------------------------------------------ end

    def close(self) -> None:
        """Stop making clones ahead, finish the pending drops, report timings, disconnect."""
        import contextlib

        import psycopg

        errors: list[str] = []
        for pool in self._pools.values():
            errors += pool.close()
        self._pools.clear()
        if errors:
            self.run.write_report(drop_errors=errors)
        if self.clone_times or self.drop_times or self.recycled:
            report = self.run.report()
            self.run.write_report(
                clones=[*report.get("clones", []), *self.clone_times],
                drops=[*report.get("drops", []), *self.drop_times],
                recycled=int(report.get("recycled", 0)) + self.recycled,
                undone=int(report.get("undone", 0)) + self.undone,
            )
            self.clone_times, self.drop_times, self.recycled, self.undone = [], [], 0, 0
        if self._admin is not None:
            with contextlib.suppress(psycopg.Error):
                self._admin.close()
            self._admin = None
